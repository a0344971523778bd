public import Foundation

/// The fleet's diagnose reports side by side: one row per box, one column per reported value, written
/// as CSV (spreadsheets), JSON (scripts) and one self-contained HTML page (people).
public struct FleetReport: Sendable {
    /// Column names: the box's own columns, then every value the diagnose reports carried.
    public var columns: [String]
    /// One row per box, aligned with `columns` (empty string where a box has no value).
    public var rows: [[String]]
    /// Status of each row's box (for colouring).
    public var statuses: [String]
    /// When the reports were collected.
    public var generated: Date

    static let fixedColumns = ["box", "school", "classroom", "address", "provision", "diagnose_exit", "note"]

    /// Builds the table from a run's recap. Diagnose JSON objects are flattened (`audio.capture.ok`);
    /// arrays of named checks (`{"name": ..., "status": ...}`) become one column per check.
    public init(recap: FleetRecap, generated: Date = Date()) {
        self.generated = generated
        var values: [[String: String]] = []
        var keys: [String] = []
        var seen: Set<String> = []
        for box in recap.boxes {
            var flat: [String: String] = [:]
            if let json = box.diagnose?.json, let object = try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)) {
                // Under "diagnose." so a report's own fields (it has a "box" too) never collide with ours.
                FleetReport.flatten(object, prefix: "diagnose", into: &flat)
            }
            for key in flat.keys.sorted() where seen.insert(key).inserted { keys.append(key) }
            values.append(flat)
        }
        columns = FleetReport.fixedColumns + keys
        statuses = recap.boxes.map(\.status.rawValue)
        rows = zip(recap.boxes, values).map { box, flat in
            let note = ([box.reason].compactMap { $0 } + box.notes).joined(separator: "; ")
            return [box.box, box.school, box.classroom, box.address, box.status.rawValue,
                    box.diagnose.map { String($0.exitCode) } ?? "", note] + keys.map { flat[$0] ?? "" }
        }
    }

    static func flatten(_ value: JSONValue, prefix: String, into out: inout [String: String]) {
        func join(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }
        switch value {
        case .object(let object):
            for (key, v) in object { flatten(v, prefix: join(key), into: &out) }
        case .array(let array):
            let named: [(String, [String: JSONValue])] = array.compactMap {
                guard case .object(let o) = $0 else { return nil }
                if case .string(let id)? = o["id"] { return (id, o.filter { $0.key != "id" }) }
                if case .string(let name)? = o["name"] { return (name, o) }
                return nil
            }
            if !named.isEmpty, named.count == array.count {
                for (name, item) in named {
                    var rest = item
                    rest["name"] = nil
                    if rest.count == 1, let only = rest.first { flatten(only.value, prefix: join(name), into: &out) }
                    else { flatten(.object(rest), prefix: join(name), into: &out) }
                }
            } else {
                out[prefix.isEmpty ? "value" : prefix] = array.map(\.text).joined(separator: " ")
            }
        default:
            out[prefix.isEmpty ? "value" : prefix] = value.text
        }
    }

    /// RFC 4180 CSV with a header row.
    public var csv: String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        return ([columns] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
    }

    /// An array of objects, one per box, keyed by column.
    public var json: String {
        let objects = rows.map { row in Dictionary(zip(columns, row).filter { !$0.1.isEmpty }, uniquingKeysWith: { first, _ in first }) }
        let data = (try? JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// One HTML page with its own styles and no scripts or external files: a summary line and the table,
    /// problems in red, warnings in amber.
    public var html: String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        func cellClass(_ column: String, _ value: String) -> String {
            let v = value.lowercased()
            if ["failed", "unreachable", "fail", "error", "false"].contains(v) { return " class=\"bad\"" }
            if ["warning", "warn", "changed"].contains(v) { return " class=\"warn\"" }
            if ["ok", "pass", "true"].contains(v) || (column == "diagnose_exit" && v == "0") { return " class=\"good\"" }
            return ""
        }
        var counts: [String: Int] = [:]
        for s in statuses { counts[s, default: 0] += 1 }
        let summary = ["ok", "changed", "unreachable", "failed"].map { "\(counts[$0] ?? 0) \($0)" }.joined(separator: " · ")
        let formatter = ISO8601DateFormatter()
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Classbox fleet report</title>
            <style>
            body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
            h1{font-size:1.3rem}p.sum{font-size:1.05rem}
            table{border-collapse:collapse;font-size:.9rem}
            th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
            th{background:#f0f0f0;position:sticky;top:0}
            tr:nth-child(even) td{background:#fafafa}
            td.bad{background:#fdd!important;color:#900;font-weight:600}
            td.warn{background:#ffe9b3!important}
            td.good{color:#176b17}
            </style></head><body>
            <h1>Classbox fleet report</h1>
            <p class="sum">\(rows.count) boxes: \(esc(summary)). Collected \(esc(formatter.string(from: generated))).</p>
            <table><thead><tr>
            """
        page += columns.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead><tbody>\n"
        for row in rows {
            page += "<tr>" + zip(columns, row).map { "<td\(cellClass($0, $1))>\(esc($1))</td>" }.joined() + "</tr>\n"
        }
        return page + "</tbody></table>\n</body></html>\n"
    }

    /// Writes `fleet.csv`, `fleet.json` and `fleet.html` into `directory` (created if needed).
    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try csv.write(toFile: directory + "/fleet.csv", atomically: true, encoding: .utf8)
        try json.write(toFile: directory + "/fleet.json", atomically: true, encoding: .utf8)
        try html.write(toFile: directory + "/fleet.html", atomically: true, encoding: .utf8)
    }
}

/// Any JSON value, decoded without assuming the diagnose report's schema (it is built elsewhere).
enum JSONValue: Decodable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    /// The value as a table cell.
    var text: String {
        switch self {
        case .null: return ""
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .string(let s): return s
        case .array(let a): return "[" + a.map(\.text).joined(separator: ", ") + "]"
        case .object(let o): return "{" + o.keys.sorted().map { "\($0): \(o[$0]!.text)" }.joined(separator: ", ") + "}"
        }
    }
}
