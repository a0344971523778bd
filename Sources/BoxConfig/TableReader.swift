internal import TOMLKit

/// Shared state of one file being read: its name, where its keys are, and the problems found so far.
package final class ReadContext {
    package let file: String
    let sourceMap: TOMLSourceMap
    private(set) var problems: [ConfigProblem] = []

    init(file: String, sourceMap: TOMLSourceMap) {
        self.file = file
        self.sourceMap = sourceMap
    }

    /// The line `path` (or its closest enclosing table) is written on.
    package func sourceMapLine(_ path: KeyPath) -> Int? { sourceMap.line(of: path) }

    package func report(_ path: KeyPath, _ message: String) {
        problems.append(ConfigProblem(file: file, line: sourceMap.line(of: path), key: path, message: message))
    }

    /// Problems sorted by line, so the output reads top to bottom like the file.
    package var sortedProblems: [ConfigProblem] {
        problems.enumerated().sorted { a, b in
            (a.element.line ?? 0, a.offset) < (b.element.line ?? 0, b.offset)
        }.map(\.element)
    }
}

/// Reads the keys of one TOML table with types and ranges checked, recording every problem with its
/// line; `finish()` then names the keys nobody asked for (typos, keys from another version).
package final class TableReader {
    let table: TOMLTable
    package let path: KeyPath
    package let context: ReadContext
    private var consumed: Set<String> = []

    init(table: TOMLTable, path: KeyPath, context: ReadContext) {
        self.table = table
        self.path = path
        self.context = context
    }

    /// Parses `text` and returns a reader for its root table, or the syntax error with its line.
    package static func parse(text: String, file: String) throws(ConfigError) -> TableReader {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, line: error.source.begin.line,
                              message: "not valid TOML: \(error.description) (column \(error.source.begin.column))")
        } catch {
            throw ConfigError(file: file, message: "not valid TOML: \(error)")
        }
        return TableReader(table: table, path: KeyPath(), context: ReadContext(file: file, sourceMap: TOMLSourceMap(text: text)))
    }

    package func report(_ key: String, _ message: String) { context.report(path.appending(key), message) }

    /// The keys written in this table, in file order is not guaranteed: sort before reporting.
    package var keys: [String] { Array(table.keys) }

    private func value(_ key: String) -> (any TOMLValueConvertible)? {
        consumed.insert(key)
        return table[key]
    }

    private func typeMismatch(_ key: String, expected: String, found: any TOMLValueConvertible) {
        report(key, "must be \(expected), but is \(describe(found))")
    }

    private func missing(_ key: String, _ what: String) {
        report(key, "is required and missing: add `\(key) = \(what)`" + (path.components.isEmpty ? "" : " under [\(path)]"))
    }

    // MARK: Scalars

    package func string(_ key: String, required: Bool = false, example: String = "\"...\"") -> String? {
        guard let v = value(key) else { if required { missing(key, example) }; return nil }
        guard v.type == .string, let s = v.string else { typeMismatch(key, expected: "a string", found: v); return nil }
        if required && s.trimmingWhitespace().isEmpty { report(key, "must not be empty"); return nil }
        return s
    }

    package func int(_ key: String, range: ClosedRange<Int>, required: Bool = false, unit: String = "") -> Int? {
        guard let v = value(key) else { if required { missing(key, "\(range.lowerBound)") }; return nil }
        guard v.type == .int, let i = v.int else { typeMismatch(key, expected: "an integer", found: v); return nil }
        guard range.contains(i) else {
            report(key, "\(i)\(unit) is out of range; use \(range.lowerBound)...\(range.upperBound)\(unit)")
            return nil
        }
        return i
    }

    package func int(_ key: String, oneOf allowed: [Int], required: Bool = false, unit: String = "") -> Int? {
        guard let v = value(key) else { if required { missing(key, "\(allowed[0])") }; return nil }
        guard v.type == .int, let i = v.int else { typeMismatch(key, expected: "an integer", found: v); return nil }
        guard allowed.contains(i) else {
            report(key, "\(i)\(unit) is not supported; use one of \(allowed.map { "\($0)\(unit)" }.joined(separator: ", "))")
            return nil
        }
        return i
    }

    package func double(_ key: String, range: ClosedRange<Double>, required: Bool = false, unit: String = "") -> Double? {
        guard let v = value(key) else { if required { missing(key, "\(range.lowerBound)") }; return nil }
        let d: Double
        if v.type == .double, let x = v.double { d = x } else if v.type == .int, let i = v.int { d = Double(i) } else {
            typeMismatch(key, expected: "a number", found: v); return nil
        }
        guard range.contains(d), d.isFinite else {
            report(key, "\(d)\(unit) is out of range; use \(range.lowerBound)...\(range.upperBound)\(unit)")
            return nil
        }
        return d
    }

    package func bool(_ key: String, required: Bool = false) -> Bool? {
        guard let v = value(key) else { if required { missing(key, "true") }; return nil }
        guard v.type == .bool, let b = v.bool else { typeMismatch(key, expected: "true or false", found: v); return nil }
        return b
    }

    package func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type = E.self, required: Bool = false) -> E?
    where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        guard let v = value(key) else {
            if required { missing(key, "\"\(names[0])\"") }
            return nil
        }
        guard v.type == .string, let s = v.string else {
            typeMismatch(key, expected: "one of \(names.map { "\"\($0)\"" }.joined(separator: ", "))", found: v)
            return nil
        }
        guard let e = E(rawValue: s) else {
            report(key, "\"\(s)\" is not one of \(names.map { "\"\($0)\"" }.joined(separator: ", "))")
            return nil
        }
        return e
    }

    package func strings(_ key: String, required: Bool = false, nonEmpty: Bool = false) -> [String]? {
        guard let v = value(key) else { if required { missing(key, "[\"...\"]") }; return nil }
        guard v.type == .array, let array = v.array else { typeMismatch(key, expected: "an array of strings", found: v); return nil }
        var result: [String] = []
        for (i, element) in array.enumerated() {
            guard element.type == .string, let s = element.string else {
                report(key, "element \(i) must be a string, but is \(describe(element))")
                return nil
            }
            result.append(s)
        }
        if nonEmpty && result.isEmpty { report(key, "must name at least one entry"); return nil }
        return result
    }

    package func ints(_ key: String, range: ClosedRange<Int>) -> [Int]? {
        guard let v = value(key) else { return nil }
        guard v.type == .array, let array = v.array else { typeMismatch(key, expected: "an array of integers", found: v); return nil }
        var result: [Int] = []
        for (i, element) in array.enumerated() {
            guard element.type == .int, let n = element.int else {
                report(key, "element \(i) must be an integer, but is \(describe(element))")
                return nil
            }
            guard range.contains(n) else {
                report(key, "element \(i) (\(n)) is out of range; use \(range.lowerBound)...\(range.upperBound)")
                return nil
            }
            result.append(n)
        }
        return result
    }

    // MARK: Tables

    package func table(_ key: String, required: Bool = false) -> TableReader? {
        guard let v = value(key) else {
            if required { context.report(path.appending(key), "table [\(path.appending(key))] is required and missing") }
            return nil
        }
        guard v.type == .table, let t = v.table else { typeMismatch(key, expected: "a table", found: v); return nil }
        return TableReader(table: t, path: path.appending(key), context: context)
    }

    package func tables(_ key: String) -> [TableReader] {
        guard let v = value(key) else { return [] }
        guard v.type == .array, let array = v.array else {
            typeMismatch(key, expected: "an array of tables ([[\(key)]])", found: v)
            return []
        }
        var result: [TableReader] = []
        for (i, element) in array.enumerated() {
            guard element.type == .table, let t = element.table else {
                context.report(path.appending(key).appending(index: i), "must be a table, but is \(describe(element))")
                continue
            }
            result.append(TableReader(table: t, path: path.appending(key).appending(index: i), context: context))
        }
        return result
    }

    /// Reports every key of this table that no reader asked for, suggesting the closest known key.
    package func finish(known extra: [String] = []) {
        let knownKeys = Array(consumed) + extra
        for key in table.keys where !consumed.contains(key) && !extra.contains(key) {
            var message = "unknown key"
            if let suggestion = closest(to: key, in: knownKeys) { message += "; did you mean '\(suggestion)'?" }
            else { message += "; remove it (known keys here: \(knownKeys.sorted().joined(separator: ", ")))" }
            report(key, message)
        }
    }

    private func closest(to key: String, in candidates: [String]) -> String? {
        var best: (String, Int)? = nil
        for candidate in candidates.sorted() {  // sorted: ties go the same way on every run
            let d = editDistance(Array(key.lowercased().utf8), Array(candidate.utf8))
            if d <= max(2, key.count / 3), d < (best?.1 ?? Int.max) { best = (candidate, d) }
        }
        return best?.0
    }
}

func describe(_ value: any TOMLValueConvertible) -> String {
    switch value.type {
    case .string: return "the string \"\(value.string ?? "")\""
    case .int: return "the integer \(value.int ?? 0)"
    case .double: return "the number \(value.double ?? 0)"
    case .bool: return value.bool == true ? "true" : "false"
    case .table: return "a table"
    case .array: return "an array"
    case .date, .time, .dateTime: return "a date/time"
    }
}

func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

extension String {
    func trimmingWhitespace() -> Substring {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}
