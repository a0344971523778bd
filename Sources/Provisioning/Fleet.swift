import Foundation

/// Provisions every box of an inventory, a bounded number at a time, and sums up what happened.
public struct FleetProvisioner: Sendable {
    /// How to run local programs (`ssh`).
    public var runner: any CommandRunner
    /// What to do and how patiently.
    public var options: ProvisionOptions
    /// Receives one line per step of each box (for a terminal).
    public var progress: @Sendable (String) -> Void

    /// A provisioner over `runner`.
    public init(runner: any CommandRunner = ProcessRunner(), options: ProvisionOptions, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.runner = runner
        self.options = options
        self.progress = progress
    }

    /// Runs every (selected) box; returns the recap in inventory order.
    public func run(_ inventory: Inventory) -> FleetRecap {
        let started = Date()
        let options = self.options, runner = self.runner, progress = self.progress
        let boxes = inventory.boxes.filter { options.limit?.contains($0.id) ?? true }
        // Control sockets need a short path (Unix socket names are limited to about 100 bytes).
        var template = Array("/tmp/cbx-ssh.XXXXXX".utf8CString)
        let controlDirectory = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let p = mkdtemp(buffer.baseAddress!) else { return nil }
            return String(cString: p)
        } ?? NSTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: controlDirectory) }

        let results = ResultBox(count: boxes.count)
        let workers = max(1, min(options.forks, boxes.count))
        let group = DispatchGroup()
        for _ in 0..<workers {
            group.enter()
            let thread = Thread {
                while let index = results.next() {
                    let box = boxes[index]
                    let provisioner = BoxProvisioner(box: box, options: options, runner: runner, controlDirectory: controlDirectory,
                                                     scratchDirectory: controlDirectory, progress: progress)
                    let outcome = provisioner.run()
                    results.set(index, outcome)
                    let total = boxes.count
                    progress("[\(results.finished)/\(total)] \(box.id): \(outcome.status.rawValue)"
                             + (outcome.changes.isEmpty ? "" : " (\(outcome.changes.joined(separator: ", ")))")
                             + (outcome.reason.map { ": \($0)" } ?? ""))
                }
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        return FleetRecap(inventory: inventory.file, check: options.check, seconds: Date().timeIntervalSince(started),
                          boxes: results.all())
    }
}

/// Hands out box indices to the worker threads and collects their outcomes.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var nextIndex = 0
    private var outcomes: [BoxOutcome?]
    private(set) var finishedCount = 0

    init(count: Int) { outcomes = Array(repeating: nil, count: count) }

    func next() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard nextIndex < outcomes.count else { return nil }
        nextIndex += 1
        return nextIndex - 1
    }

    func set(_ index: Int, _ outcome: BoxOutcome) {
        lock.lock(); defer { lock.unlock() }
        outcomes[index] = outcome
        finishedCount += 1
    }

    var finished: Int { lock.lock(); defer { lock.unlock() }; return finishedCount }

    func all() -> [BoxOutcome] { lock.lock(); defer { lock.unlock() }; return outcomes.compactMap { $0 } }
}

/// The end of a run: one line per box, the counts, and the exit code.
public struct FleetRecap: Sendable, Codable, Equatable {
    /// The inventory file.
    public var inventory: String
    /// True when nothing was changed (`--check`).
    public var check: Bool
    /// Wall-clock seconds of the whole run.
    public var seconds: Double
    /// Each box's outcome, in inventory order.
    public var boxes: [BoxOutcome]

    /// A recap from its parts.
    public init(inventory: String, check: Bool, seconds: Double, boxes: [BoxOutcome]) {
        self.inventory = inventory
        self.check = check
        self.seconds = seconds
        self.boxes = boxes
    }

    /// How many boxes ended in each state.
    public var counts: [BoxOutcome.Status: Int] {
        var counts: [BoxOutcome.Status: Int] = [:]
        for status in BoxOutcome.Status.allCases { counts[status] = 0 }
        for box in boxes { counts[box.status, default: 0] += 1 }
        return counts
    }

    /// 0 when every box is ok or changed; 3 when any failed or was unreachable.
    public var exitCode: Int32 {
        boxes.contains { $0.status == .failed || $0.status == .unreachable } ? ProvisionExit.boxesFailed : ProvisionExit.success
    }

    /// The recap table a person reads at the end of a run.
    public var table: String {
        let header = ["BOX", "ADDRESS", "STATUS", "WHAT"]
        var rows: [[String]] = []
        for box in boxes {
            var status = box.status.rawValue
            var what: String
            switch box.status {
            case .ok: what = "no change"
            case .changed: what = (check ? "would change: " : "") + box.changes.joined(separator: ", ")
            case .unreachable, .failed: what = box.reason ?? "no reason recorded"
            }
            if check && box.status == .changed { status = "changed*" }
            if !box.notes.isEmpty { what += " [" + box.notes.joined(separator: "; ") + "]" }
            rows.append([box.box, box.address, status, what])
        }
        var widths = header.map(\.count)
        for row in rows { for i in 0..<3 { widths[i] = max(widths[i], row[i].count) } }
        func line(_ cells: [String]) -> String {
            (0..<3).map { cells[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") + "  " + cells[3]
        }
        var out = line(header) + "\n" + rows.map(line).joined(separator: "\n") + "\n"
        let c = counts
        out += "\(boxes.count) boxes in \(String(format: "%.1f", seconds)) s: \(c[.ok]!) ok, \(c[.changed]!) changed, \(c[.unreachable]!) unreachable, \(c[.failed]!) failed"
        if check { out += " (check mode: nothing was changed; * = would change)" }
        return out + "\n"
    }

    /// The recap as JSON (sorted keys, stable for scripts).
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }
}
