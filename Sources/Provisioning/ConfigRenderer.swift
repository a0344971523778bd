public import BoxConfig

/// Writes a `classbox.toml` from a configuration, in the schema the box reads (README: Configuration).
/// The text depends only on the configuration (no dates, no paths of the laptop), so rendering the same
/// inventory twice gives the same bytes and a second run changes nothing.
public enum ConfigRenderer {
    /// The configuration as TOML text, ending with a newline.
    public static func render(_ config: BoxConfiguration) -> String {
        var out = "# Written by `classbox provision` from the county inventory: change the inventory, not this file.\n"
        if let board = config.board { out += "board = \(quote(board))\n" }
        let id = config.identity
        out += "\n[box]\n"
        out += "id = \(quote(id.id))\n"
        out += "school = \(quote(id.school))\n"
        out += "classroom = \(quote(id.classroom))\n"
        out += "role = \(quote(id.role.rawValue))\n"
        if let tz = id.timezone { out += "timezone = \(quote(tz))\n" }
        for peer in config.peers {
            out += "\n[[peers]]\n"
            out += "id = \(quote(peer.id))\n"
            out += "address = \(quote(peer.address))\n"
            out += "role = \(quote(peer.role.rawValue))\n"
            out += "audio_port = \(peer.audioPort)\n"
            out += "video_port = \(peer.videoPort)\n"
        }
        let m = config.media, d = BoxConfiguration.Media()
        var media = ""
        if m.audioPort != d.audioPort { media += "audio_port = \(m.audioPort)\n" }
        if m.videoPort != d.videoPort { media += "video_port = \(m.videoPort)\n" }
        if m.frameMs != d.frameMs { media += "frame_ms = \(m.frameMs)\n" }
        if m.bitrate != d.bitrate { media += "bitrate = \(m.bitrate)\n" }
        if m.music != d.music { media += "music = \(m.music)\n" }
        if m.jitterMinMs != d.jitterMinMs { media += "jitter_min_ms = \(m.jitterMinMs)\n" }
        if m.jitterMaxMs != d.jitterMaxMs { media += "jitter_max_ms = \(m.jitterMaxMs)\n" }
        if m.security != d.security { media += "security = \(quote(m.security.rawValue))\n" }
        if m.srtpProfile != d.srtpProfile { media += "srtp_profile = \(quote(m.srtpProfile.rawValue))\n" }
        if let key = m.srtpKey { media += "srtp_key = \(quote(key))\n" }
        if m.video != d.video { media += "video = \(m.video)\n" }
        if m.videoCodec != d.videoCodec { media += "video_codec = \(quote(m.videoCodec.rawValue))\n" }
        if m.videoJPEGQuality != d.videoJPEGQuality { media += "video_jpeg_quality = \(m.videoJPEGQuality)\n" }
        if !media.isEmpty { out += "\n[media]\n" + media }
        if let c = config.control {
            out += "\n[control]\nbroker = \(quote(c.broker))\n"
            if let v = c.caFile { out += "ca_file = \(quote(v))\n" }
            if let v = c.certFile { out += "cert_file = \(quote(v))\n" }
            if let v = c.keyFile { out += "key_file = \(quote(v))\n" }
            out += "keepalive_s = \(c.keepaliveS)\n"
        }
        if let j = config.janus {
            out += "\n[janus]\nurl = \(quote(j.url))\n"
            if let room = j.audioBridgeRoom { out += "audiobridge_room = \(room)\n" }
        }
        if let level = config.logLevel { out += "\n[logging]\nlevel = \(quote(level.rawValue))\n" }
        return out
    }

    /// A TOML basic string: quotes, backslashes and control characters escaped.
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += "\\u" + String(String(scalar.value, radix: 16).reversed()).padding(toLength: 4, withPad: "0", startingAt: 0).reversed()
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// A unified diff of two texts (as `diff -u` prints it), for `--diff`.
public enum UnifiedDiff {
    /// The diff of `old` into `new` with `context` lines around each change; empty when equal.
    public static func diff(old: String, new: String, oldName: String, newName: String, context: Int = 3) -> String {
        if old == new { return "" }
        let a = splitLines(old), b = splitLines(new)
        // Longest common subsequence by dynamic programming: configuration files are small.
        let n = a.count, m = b.count
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: m + 1), count: n + 1)
        if n > 0 && m > 0 {
            for i in stride(from: n - 1, through: 0, by: -1) {
                for j in stride(from: m - 1, through: 0, by: -1) {
                    lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
                }
            }
        }
        enum Op { case same(Int, Int), del(Int), ins(Int) }
        var ops: [Op] = []
        var i = 0, j = 0
        while i < n || j < m {
            if i < n, j < m, a[i] == b[j] { ops.append(.same(i, j)); i += 1; j += 1 }
            else if i < n, j == m || lcs[i + 1][j] >= lcs[i][j + 1] { ops.append(.del(i)); i += 1 }
            else { ops.append(.ins(j)); j += 1 }
        }
        // Group changes into hunks with their context.
        var out = "--- \(oldName)\n+++ \(newName)\n"
        var k = 0
        while k < ops.count {
            guard let firstChange = ops[k...].firstIndex(where: { if case .same = $0 { return false }; return true }) else { break }
            let start = max(k, firstChange - context)
            var end = firstChange
            var lastChange = firstChange
            while end < ops.count {
                if case .same = ops[end] {
                    if end - lastChange > 2 * context { break }
                } else { lastChange = end }
                end += 1
            }
            end = min(ops.count, lastChange + context + 1)
            let hunk = ops[start..<end]
            var oldStart = 0, newStart = 0, oldCount = 0, newCount = 0
            var body = ""
            var firstOld: Int? = nil, firstNew: Int? = nil
            for op in hunk {
                switch op {
                case .same(let x, let y):
                    firstOld = firstOld ?? x; firstNew = firstNew ?? y
                    oldCount += 1; newCount += 1; body += " \(a[x])\n"
                case .del(let x):
                    firstOld = firstOld ?? x
                    oldCount += 1; body += "-\(a[x])\n"
                case .ins(let y):
                    firstNew = firstNew ?? y
                    newCount += 1; body += "+\(b[y])\n"
                }
            }
            // Where a side has no line in the hunk, diff -u names the line before it.
            let before = ops[..<start]
            let oldBefore = before.filter { if case .ins = $0 { return false }; return true }.count
            let newBefore = before.filter { if case .del = $0 { return false }; return true }.count
            oldStart = oldCount == 0 ? oldBefore : (firstOld ?? 0) + 1
            newStart = newCount == 0 ? newBefore : (firstNew ?? 0) + 1
            out += "@@ -\(range(oldStart, oldCount)) +\(range(newStart, newCount)) @@\n" + body
            k = end
        }
        return out
    }

    private static func range(_ start: Int, _ count: Int) -> String { count == 1 ? "\(start)" : "\(start),\(count)" }

    static func splitLines(_ s: String) -> [String] {
        var lines = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
}
