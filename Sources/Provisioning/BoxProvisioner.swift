import Foundation

/// What a run may do and how patiently.
public struct ProvisionOptions: Sendable {
    /// Report what would change; change nothing.
    public var check = false
    /// Show a unified diff of each configuration change.
    public var diff = false
    /// Boxes worked on at the same time.
    public var forks = 5
    /// Extra attempts at connecting when the network fails (not when a key or a check fails).
    public var retries = 2
    /// First wait before a retry, doubled each time.
    public var backoffS = 0.5
    /// Limit of each remote step (except uploads).
    public var stepTimeoutS = 60.0
    /// Limit of each upload.
    public var uploadTimeoutS = 600.0
    /// A classbox binary or update bundle to install, verified by its SHA-256.
    public var install: InstallFile?
    /// Run `classbox diagnose --json` on each reachable box and collect the report.
    public var diagnose = false
    /// Record first-seen host keys (`StrictHostKeyChecking=accept-new`); changed keys are still refused.
    public var acceptNewHostKeys = false
    /// Only these box ids (nil: all).
    public var limit: Set<String>?

    /// Defaults: apply changes, 5 boxes at a time, 2 retries.
    public init() {}
}

/// A file to install on every box, with the SHA-256 it must have on both ends.
public struct InstallFile: Sendable, Equatable {
    /// Local path.
    public var path: String
    /// Expected SHA-256, lowercase hex.
    public var sha256: String

    /// A file and its expected checksum.
    public init(path: String, sha256: String) {
        self.path = path
        self.sha256 = sha256
    }
}

/// The end state of one box after a run.
public struct BoxOutcome: Sendable, Codable, Equatable {
    /// The recap's four states.
    public enum Status: String, Sendable, Codable, CaseIterable {
        /// Reached; nothing differed.
        case ok
        /// Reached; changed (or, with --check, would change).
        case changed
        /// Could not be reached, or the connection was lost; nothing was committed.
        case unreachable
        /// Reached, but a step failed; the box was left as it was (or rolled back).
        case failed
    }
    /// Box id.
    public var box: String
    /// Address connected to.
    public var address: String
    /// School name.
    public var school: String
    /// Classroom name.
    public var classroom: String
    /// Final state.
    public var status: Status
    /// What changed (or would): `config`, `hostname`, `timezone`, `keys:USER`, `binary`.
    public var changes: [String] = []
    /// Why the box failed or was unreachable.
    public var reason: String?
    /// Remarks that are not failures (e.g. diagnose not available on this box).
    public var notes: [String] = []
    /// Unified diff of the configuration (with --diff).
    public var diff: String?
    /// The box's hostname, time zone and classbox version before the run.
    public var facts: Facts?
    /// `classbox diagnose --json` as the box printed it.
    public var diagnose: DiagnoseResult?
    /// Connection attempts made.
    public var attempts: Int = 0
    /// Seconds spent on this box.
    public var seconds: Double = 0

    /// What the box said about itself.
    public struct Facts: Sendable, Codable, Equatable {
        /// Hostname before the run.
        public var hostname: String?
        /// Time zone before the run.
        public var timezone: String?
        /// `classbox --version` on the box.
        public var version: String?
    }

    /// One box's diagnose report.
    public struct DiagnoseResult: Sendable, Codable, Equatable {
        /// Its exit status (0 ok, 1 warnings, 2 not available / configuration error).
        public var exitCode: Int32
        /// Its JSON output, when it printed valid JSON.
        public var json: String?
        /// What else to know (not available, invalid output).
        public var note: String?
    }
}

/// Provisions one box: read, compare, stage, validate on the box, commit, restart, verify, roll back.
struct BoxProvisioner {
    let box: InventoryBox
    let options: ProvisionOptions
    let runner: any CommandRunner
    let controlDirectory: String
    let scratchDirectory: String
    let progress: @Sendable (String) -> Void

    var paths: BoxPaths { box.paths }

    /// A file the run manages: its path on the box, wanted contents (or a local file), and mode.
    struct ManagedFile {
        var change: String
        var target: String
        var localFile: String
        var sha256: String
        var mode: String
        var staged: String { target + ".cbx-new" }
        var prev: String { target + ".prev" }
    }

    func run() -> BoxOutcome {
        let started = Date()
        var outcome = BoxOutcome(box: box.id, address: box.address, school: box.config.identity.school,
                                 classroom: box.config.identity.classroom, status: .ok)
        let ssh = SSHConnection(address: box.address, settings: box.ssh, runner: runner, controlDirectory: controlDirectory,
                                boxId: box.id, acceptNewHostKeys: options.acceptNewHostKeys)
        // Connect, retrying only network failures, with exponential backoff.
        var failure: SSHFailure?
        for attempt in 0...max(0, options.retries) {
            outcome.attempts = attempt + 1
            progress("\(box.id): connecting to \(box.address)" + (attempt > 0 ? " (attempt \(attempt + 1))" : ""))
            failure = ssh.open(timeout: Double(box.ssh.connectTimeoutS) + 10)
            guard let f = failure, f.isRetryable, attempt < options.retries else { break }
            Thread.sleep(forTimeInterval: options.backoffS * pow(2, Double(attempt)))
        }
        if let failure {
            outcome.status = failure.isRetryable ? .unreachable : .failed
            outcome.reason = failure.description + (failure.isRetryable && outcome.attempts > 1 ? " (after \(outcome.attempts) attempts)" : "")
            outcome.seconds = Date().timeIntervalSince(started)
            return outcome
        }
        defer { ssh.close() }
        do throws(Stop) {
            try provision(ssh, &outcome)
        } catch {
            outcome.status = error.status
            outcome.reason = error.reason
        }
        if options.diagnose && outcome.status != .unreachable { outcome.diagnose = collectDiagnose(ssh, &outcome) }
        outcome.seconds = Date().timeIntervalSince(started)
        return outcome
    }

    /// Ends a box's run with a state and a reason.
    struct Stop: Error { var status: BoxOutcome.Status; var reason: String }

    /// Runs a remote step; a lost connection ends the run as unreachable, naming the step.
    func step(_ ssh: SSHConnection, _ name: String, _ command: String, stdinFile: String? = nil, timeout: Double? = nil,
              committed: Bool = false) throws(Stop) -> CommandResult {
        progress("\(box.id): \(name)")
        let result = ssh.run(command, stdinFile: stdinFile, timeout: timeout ?? options.stepTimeoutS)
        if let failure = ssh.transportFailure(result) {
            let state = committed ? "the box finishes or rolls back the commit by itself; run again to see its state"
                                  : "nothing was committed, the box is as it was"
            throw Stop(status: .unreachable, reason: "connection lost during \(name) (\(failure)); \(state)")
        }
        return result
    }

    func provision(_ ssh: SSHConnection, _ outcome: inout BoxOutcome) throws(Stop) {
        // 1. Read what the box has.
        let facts = try readFacts(ssh)
        outcome.facts = .init(hostname: facts["hostname"].map { trimmed($0) }, timezone: facts["timezone"].map { trimmed($0) },
                              version: facts["version"].map { trimmed($0) })
        // 2. Compare with what it should have.
        let rendered = ConfigRenderer.render(box.config)
        var files: [ManagedFile] = []
        let configCurrent = facts["config"]
        if configCurrent != rendered {
            files.append(try localFile("config", target: paths.onBox(paths.config), text: rendered, mode: "644"))
            if options.diff || options.check {
                outcome.diff = UnifiedDiff.diff(old: configCurrent ?? "", new: rendered,
                                                oldName: "\(box.id):\(paths.config)" + (configCurrent == nil ? " (absent)" : ""),
                                                newName: "\(box.id):\(paths.config) (inventory)")
            }
        }
        for user in box.users {
            let text = user.keys.joined(separator: "\n") + "\n"
            if facts["keys:\(user.name)"] != text {
                files.append(try localFile("keys:\(user.name)", target: paths.authorizedKeys(of: user.name), text: text, mode: "600"))
            }
        }
        if let install = options.install, trimmed(facts["binary"] ?? "") != install.sha256 {
            files.append(ManagedFile(change: "binary", target: paths.onBox(paths.classbox), localFile: install.path,
                                     sha256: install.sha256, mode: "755"))
        }
        let hostnameChange = outcome.facts?.hostname != box.id
        let timezone = box.config.identity.timezone
        let timezoneChange = timezone != nil && outcome.facts?.timezone != timezone
        outcome.changes = files.map(\.change) + (hostnameChange ? ["hostname"] : []) + (timezoneChange ? ["timezone"] : [])
        // Leftovers of an interrupted earlier run are removed, whatever else happens.
        let leftovers = files.map(\.staged)
        if outcome.changes.isEmpty { outcome.status = .ok; return }
        outcome.status = .changed
        if options.check { return }

        // 3. Stage every file beside its target, in one stream and one remote step, each verified by size
        //    and SHA-256: if the stream breaks anywhere, that step removes every staged file, so a lost
        //    connection leaves nothing behind.
        func discard() {
            let rm = "rm -f " + leftovers.map(shellQuote).joined(separator: " ")
            _ = ssh.run(rm, timeout: options.stepTimeoutS)
        }
        let stream = scratchDirectory + "/" + box.id + ".upload"
        guard FileManager.default.createFile(atPath: stream, contents: nil), let out = FileHandle(forWritingAtPath: stream) else {
            throw Stop(status: .failed, reason: "cannot write the local file \(stream)")
        }
        var sizes: [Int] = []
        for file in files {
            guard let input = FileHandle(forReadingAtPath: file.localFile) else {
                try? out.close()
                throw Stop(status: .failed, reason: "cannot read \(file.localFile)")
            }
            var size = 0
            while let chunk = try? input.read(upToCount: 1 << 20), !chunk.isEmpty { out.write(chunk); size += chunk.count }
            try? input.close()
            sizes.append(size)
        }
        try? out.close()
        defer { try? FileManager.default.removeItem(atPath: stream) }
        var upload = "set -u; umask 077\nclean() { rm -f " + leftovers.map(shellQuote).joined(separator: " ") + "; }\n"
        for (file, size) in zip(files, sizes) {
            let t = shellQuote(file.target), n = shellQuote(file.staged)
            upload += """
                mkdir -p "$(dirname \(t))" || { clean; exit 73; }
                head -c \(size) > \(n) || { clean; exit 74; }
                [ "$(stat -c %s \(n))" = \(size) ] || { clean; echo "\(file.change): the upload stopped early" >&2; exit 75; }
                s=$(sha256sum < \(n) | cut -c1-64)
                [ "$s" = \(shellQuote(file.sha256)) ] || { clean; echo "\(file.change): checksum after upload is $s" >&2; exit 65; }
                chmod \(file.mode) \(n)
                \(userCheck(file))
                if [ -e \(t) ]; then chown --reference=\(t) \(n) 2>/dev/null; chmod --reference=\(t) \(n); fi

                """
        }
        let total = sizes.reduce(0, +)
        let uploaded = try step(ssh, "uploading \(files.map(\.change).joined(separator: ", ")) (\(total) bytes)", upload, stdinFile: stream,
                                timeout: files.contains { $0.change == "binary" } ? options.uploadTimeoutS : options.stepTimeoutS)
        guard uploaded.status == 0 else {
            discard()
            throw Stop(status: .failed, reason: "upload failed: \(lastLine(uploaded.stderr)); nothing was committed")
        }
        let staged = files

        // 4. Validate on the box, with the classbox that will read it (the new one when installing).
        let binary = staged.first { $0.change == "binary" }?.staged ?? paths.onBox(paths.classbox)
        let configToCheck = staged.first { $0.change == "config" }?.staged ?? paths.onBox(paths.config)
        if staged.contains(where: { $0.change == "config" || $0.change == "binary" }) {
            let boardPath = paths.boards.map { paths.onBox($0) }.joined(separator: ":")
            let check = try step(ssh, "checking the configuration on the box",
                                 "cd / && CLASSBOX_BOARD_PATH=\(shellQuote(boardPath)) \(shellQuote(binary)) config check --config \(shellQuote(configToCheck)) 2>&1")
            guard check.status == 0 else {
                discard()
                let said = check.text.split(separator: "\n").map { $0.replacingOccurrences(of: configToCheck, with: paths.config) }
                throw Stop(status: .failed, reason: "the box rejected the new configuration (classbox config check, exit \(check.status)): \(said.joined(separator: "; ")); nothing was committed")
            }
        }

        // 5. Commit: keep each previous file as .prev, rename into place; undo all of it if any step fails.
        var commit = "set -u\nrollback() {\n"
        for file in staged.reversed() {
            commit += "  if [ -e \(shellQuote(file.prev)) ]; then mv -f \(shellQuote(file.prev)) \(shellQuote(file.target)); else rm -f \(shellQuote(file.target)); fi\n"
        }
        if hostnameChange, let old = outcome.facts?.hostname, !old.isEmpty {
            commit += "  [ -z \"${hn:-}\" ] || \(paths.expand(paths.hostnameCommand)) \(shellQuote(old))\n"
        }
        commit += "  rm -f " + leftovers.map(shellQuote).joined(separator: " ") + "\n  :\n}\n"
        for file in staged {
            commit += "rm -f \(shellQuote(file.prev)); if [ -e \(shellQuote(file.target)) ]; then cp -p \(shellQuote(file.target)) \(shellQuote(file.prev)) || { rollback; exit 70; }; fi\n"
        }
        for file in staged {
            commit += "mv -f \(shellQuote(file.staged)) \(shellQuote(file.target)) || { rollback; exit 71; }\n"
        }
        if hostnameChange { commit += "\(paths.expand(paths.hostnameCommand)) \(shellQuote(box.id)) || { rollback; exit 72; }\nhn=1\n" }
        if timezoneChange, let timezone { commit += "\(paths.expand(paths.timezoneCommand)) \(shellQuote(timezone)) || { rollback; exit 72; }\n" }
        let committed = try step(ssh, "committing", commit, committed: true)
        guard committed.status == 0 else {
            throw Stop(status: .failed, reason: "commit failed (exit \(committed.status): \(lastLine(committed.stderr))); rolled back to the previous files")
        }

        // 6. Restart the service and see it come back; otherwise put everything back.
        guard staged.contains(where: { $0.change == "config" || $0.change == "binary" }) else { return }
        let tries = max(1, paths.restartTimeoutS * 5)
        let restart = """
            \(paths.expand(paths.restartCommand)) || exit 80
            i=0; until \(paths.expand(paths.statusCommand)); do i=$((i+1)); [ $i -ge \(tries) ] && exit 81; sleep 0.2; done
            """
        let restarted = try step(ssh, "restarting the service", restart, timeout: Double(paths.restartTimeoutS) + options.stepTimeoutS, committed: true)
        guard restarted.status != 0 else { return }
        var undo = ""
        for file in staged {
            undo += "if [ -e \(shellQuote(file.prev)) ]; then mv -f \(shellQuote(file.prev)) \(shellQuote(file.target)); else rm -f \(shellQuote(file.target)); fi\n"
        }
        if hostnameChange, let old = outcome.facts?.hostname, !old.isEmpty { undo += "\(paths.expand(paths.hostnameCommand)) \(shellQuote(old))\n" }
        if timezoneChange, let old = outcome.facts?.timezone, !old.isEmpty { undo += "\(paths.expand(paths.timezoneCommand)) \(shellQuote(old))\n" }
        undo += "\(paths.expand(paths.restartCommand))\n"
        let undone = try step(ssh, "rolling back", undo, committed: true)
        let what = restarted.status == 80 ? "the restart command failed" : "the service did not come back within \(paths.restartTimeoutS) s"
        throw Stop(status: .failed, reason: "\(what) after the change; " + (undone.status == 0 ? "rolled back to the previous configuration and restarted" : "ROLLBACK FAILED (exit \(undone.status)): \(lastLine(undone.stderr))"))
    }

    /// On a real box (no root prefix), keys are only installed for users that exist there; a new
    /// file is given to its user.
    func userCheck(_ file: ManagedFile) -> String {
        guard paths.root.isEmpty, file.change.hasPrefix("keys:") else { return "" }
        let user = shellQuote(String(file.change.dropFirst(5)))
        return "id -u \(user) >/dev/null 2>&1 || { clean; echo \"user \"\(user)\" does not exist on the box; create it (or remove it from the inventory)\" >&2; exit 76; }; [ -e \(shellQuote(file.target)) ] || chown \(user) \(shellQuote(file.staged)) \"$(dirname \(shellQuote(file.target)))\""
    }

    /// Reads the managed files, hostname, time zone, version and binary checksum in one step.
    func readFacts(_ ssh: SSHConnection) throws(Stop) -> [String: String] {
        var script = "f() { if [ -e \"$2\" ]; then printf '%s ' \"$1\"; base64 -w0 < \"$2\" || exit 90; echo; fi; }\n"
        script += "f config \(shellQuote(paths.onBox(paths.config)))\n"
        script += "f hostname \(shellQuote(paths.onBox(paths.hostnameFile)))\n"
        // Debian before trixie keeps /etc/timezone; trixie has only the /etc/localtime link.
        let timezoneFile = shellQuote(paths.onBox(paths.timezoneFile))
        script += "if [ -e \(timezoneFile) ]; then f timezone \(timezoneFile); "
        script += "elif l=$(readlink \(shellQuote(paths.onBox("/etc/localtime"))) 2>/dev/null); then printf 'timezone '; printf '%s\\n' \"${l#*zoneinfo/}\" | base64 -w0; echo; fi\n"
        for user in box.users { script += "f keys:\(user.name) \(shellQuote(paths.authorizedKeys(of: user.name)))\n" }
        let binary = shellQuote(paths.onBox(paths.classbox))
        script += "if [ -x \(binary) ]; then printf 'version '; \(binary) --version 2>/dev/null | base64 -w0; echo; printf 'binary '; sha256sum < \(binary) | cut -c1-64 | base64 -w0; echo; fi\n"
        let result = try step(ssh, "reading its configuration", script)
        guard result.status == 0 else {
            throw Stop(status: .failed, reason: "could not read the box's files (exit \(result.status)): \(lastLine(result.stderr))")
        }
        var facts: [String: String] = [:]
        for line in result.text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            let value = parts.count > 1 ? String(parts[1]) : ""
            guard let data = Data(base64Encoded: value) else { continue }
            facts[key] = String(decoding: data, as: UTF8.self)
        }
        return facts
    }

    func collectDiagnose(_ ssh: SSHConnection, _ outcome: inout BoxOutcome) -> BoxOutcome.DiagnoseResult? {
        progress("\(box.id): running classbox diagnose --json")
        // The same board profiles the configuration was checked against; the report is saved under the
        // box's data directory (inside `root` in a test layout) so a later run can fetch it again.
        let boardPath = paths.boards.map { paths.onBox($0) }.joined(separator: ":")
        let command = "cd / && CLASSBOX_BOARD_PATH=\(shellQuote(boardPath)) \(shellQuote(paths.onBox(paths.classbox))) diagnose --json"
            + " --config \(shellQuote(paths.onBox(paths.config))) --report-dir \(shellQuote(paths.onBox("/var/lib/classbox/diagnose")))"
        let result = ssh.run(command, timeout: options.stepTimeoutS)
        if let failure = ssh.transportFailure(result) {
            outcome.notes.append("diagnose: connection lost (\(failure))")
            return nil
        }
        let text = result.text.trimmingCharacters(in: .whitespacesAndNewlines)
        let isJSON = !text.isEmpty && (try? JSONSerialization.jsonObject(with: Data(text.utf8))) != nil
        var note: String?
        if result.status == 2 && result.stderr.contains("not yet available") {
            note = "diagnose is not yet available in this box's Classbox (\(outcome.facts?.version ?? "unknown version"))"
        } else if !isJSON {
            note = "diagnose printed no JSON (exit \(result.status))" + (result.stderr.isEmpty ? "" : ": \(lastLine(result.stderr))")
        }
        if let note { outcome.notes.append(note) }
        return .init(exitCode: result.status, json: isJSON ? text : nil, note: note)
    }

    func localFile(_ change: String, target: String, text: String, mode: String) throws(Stop) -> ManagedFile {
        let path = scratchDirectory + "/" + box.id + "-" + change.replacingOccurrences(of: ":", with: "-")
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw Stop(status: .failed, reason: "cannot write the local file \(path)")
        }
        return ManagedFile(change: change, target: target, localFile: path, sha256: SHA256.hex(Data(text.utf8)), mode: mode)
    }
}

func trimmed(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }

func lastLine(_ s: String) -> String {
    s.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init) ?? "no message"
}
