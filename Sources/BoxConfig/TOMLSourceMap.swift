/// Where each key of a TOML document is written, so a validation error can name its line.
///
/// TOMLKit (toml++) parses and checks the syntax but keeps no positions for values; this index is
/// built from the same text after a successful parse. It understands table headers, arrays of tables,
/// dotted and quoted keys, and skips multi-line strings, arrays and inline tables, which is all TOML
/// has that can move a key off its own line.
struct TOMLSourceMap: Sendable {
    /// Line (1-based) of each key path, e.g. `box.id`, `peers[1].address`, or a table header `media`.
    private(set) var lines: [String: Int] = [:]

    init(text: String) {
        var scanner = Scanner(lines: text.split(separator: "\n", omittingEmptySubsequences: false))
        scanner.run()
        lines = scanner.found
    }

    /// The line of `path`, or of its closest enclosing table written in the file.
    func line(of path: KeyPath) -> Int? {
        var components = path.components
        while !components.isEmpty {
            if let line = lines[KeyPath(components).description] { return line }
            components.removeLast()
        }
        return nil
    }

    private struct Scanner {
        let lines: [Substring]
        var found: [String: Int] = [:]
        var table: [KeyPath.Component] = []
        var arrayCounts: [String: Int] = [:]
        // State carried across lines by multi-line values.
        var depth = 0
        var inMultiline: String? = nil  // the closing delimiter (""" or ''')

        init(lines: [Substring]) { self.lines = lines }

        mutating func run() {
            for (index, raw) in lines.enumerated() {
                let lineNumber = index + 1
                let chars = Array(raw.utf8)
                if inMultiline != nil || depth > 0 {
                    scanValue(chars, from: 0)
                    continue
                }
                var i = skipSpaces(chars, 0)
                guard i < chars.count, chars[i] != UInt8(ascii: "#"), chars[i] != UInt8(ascii: "\r") else { continue }
                if chars[i] == UInt8(ascii: "[") {
                    let isArray = i + 1 < chars.count && chars[i + 1] == UInt8(ascii: "[")
                    i += isArray ? 2 : 1
                    let (keys, _) = parseKey(chars, from: i)
                    header(keys, isArray: isArray, line: lineNumber)
                    continue
                }
                let (keys, end) = parseKey(chars, from: i)
                guard !keys.isEmpty else { continue }
                var path = table
                for (n, key) in keys.enumerated() {
                    path.append(.key(key))
                    // Dotted keys define implicit tables; remember the first line that mentions each.
                    let text = KeyPath(path).description
                    if n < keys.count - 1 { if found[text] == nil { found[text] = lineNumber } } else { found[text] = lineNumber }
                }
                var j = skipSpaces(chars, end)
                if j < chars.count, chars[j] == UInt8(ascii: "=") { j += 1 }
                scanValue(chars, from: j)
            }
        }

        mutating func header(_ keys: [String], isArray: Bool, line: Int) {
            var resolved: [KeyPath.Component] = []
            for (n, key) in keys.enumerated() {
                resolved.append(.key(key))
                let text = KeyPath(resolved).description
                if n == keys.count - 1 && isArray {
                    let index = arrayCounts[text, default: 0]
                    arrayCounts[text] = index + 1
                    resolved.append(.index(index))
                    found[text] = found[text] ?? line
                } else if let count = arrayCounts[text] {
                    resolved.append(.index(count - 1))
                }
            }
            table = resolved
            found[KeyPath(resolved).description] = line
        }

        /// Parses `a."b c".'d'` up to `=` or `]`; returns the unquoted components and where it stopped.
        func parseKey(_ c: [UInt8], from start: Int) -> ([String], Int) {
            var keys: [String] = []
            var i = skipSpaces(c, start)
            while i < c.count {
                let ch = c[i]
                if ch == UInt8(ascii: "\"") || ch == UInt8(ascii: "'") {
                    var bytes: [UInt8] = []
                    i += 1
                    while i < c.count, c[i] != ch {
                        if ch == UInt8(ascii: "\""), c[i] == UInt8(ascii: "\\"), i + 1 < c.count {
                            i += 1
                        }
                        bytes.append(c[i])
                        i += 1
                    }
                    i += 1
                    keys.append(String(decoding: bytes, as: UTF8.self))
                } else {
                    let begin = i
                    while i < c.count, isBareKeyByte(c[i]) { i += 1 }
                    if begin == i { break }
                    keys.append(String(decoding: c[begin..<i], as: UTF8.self))
                }
                i = skipSpaces(c, i)
                if i < c.count, c[i] == UInt8(ascii: ".") { i = skipSpaces(c, i + 1); continue }
                break
            }
            return (keys, i)
        }

        /// Follows strings, brackets and braces so continuation lines are not mistaken for keys.
        mutating func scanValue(_ c: [UInt8], from start: Int) {
            var i = start
            while i < c.count {
                if let close = inMultiline {
                    let delim = Array(close.utf8)
                    if delim[0] == UInt8(ascii: "\""), c[i] == UInt8(ascii: "\\") { i += 2; continue }
                    if matches(c, i, delim) { inMultiline = nil; i += 3 } else { i += 1 }
                    continue
                }
                let ch = c[i]
                switch ch {
                case UInt8(ascii: "#"):
                    return
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    let triple = [ch, ch, ch]
                    if matches(c, i, triple) {
                        inMultiline = String(decoding: triple, as: UTF8.self)
                        i += 3
                    } else {
                        i += 1
                        while i < c.count, c[i] != ch {
                            if ch == UInt8(ascii: "\""), c[i] == UInt8(ascii: "\\") { i += 1 }
                            i += 1
                        }
                        i += 1
                    }
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    depth += 1; i += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    depth = max(0, depth - 1); i += 1
                default:
                    i += 1
                }
            }
        }

        func matches(_ c: [UInt8], _ i: Int, _ pattern: [UInt8]) -> Bool {
            guard i + pattern.count <= c.count else { return false }
            for k in 0..<pattern.count where c[i + k] != pattern[k] { return false }
            return true
        }

        func skipSpaces(_ c: [UInt8], _ start: Int) -> Int {
            var i = start
            while i < c.count, c[i] == UInt8(ascii: " ") || c[i] == UInt8(ascii: "\t") { i += 1 }
            return i
        }

        func isBareKeyByte(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
    }
}

/// A path to a value in a TOML document, printed the way a person would write it: `peers[1].address`.
public struct KeyPath: Sendable, Hashable, CustomStringConvertible {
    /// One step of a path: a key in a table or an index in an array of tables.
    public enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    /// The steps from the document root.
    public var components: [Component]

    /// A path from its steps.
    public init(_ components: [Component] = []) { self.components = components }

    /// This path extended by one key.
    public func appending(_ key: String) -> KeyPath { KeyPath(components + [.key(key)]) }
    /// This path extended by one array index.
    public func appending(index: Int) -> KeyPath { KeyPath(components + [.index(index)]) }

    /// The last key of the path, or an empty string at the root.
    public var lastKey: String {
        for component in components.reversed() { if case .key(let key) = component { return key } }
        return ""
    }

    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let key):
                if !text.isEmpty { text += "." }
                let bare = !key.isEmpty && key.utf8.allSatisfy { b in
                    (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || (b >= 48 && b <= 57) || b == 95 || b == 45
                }
                text += bare ? key : "\"\(key)\""
            case .index(let index):
                text += "[\(index)]"
            }
        }
        return text
    }
}
