import Foundation
import Testing

let sourcesRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Sources").path

/// The modules each module may import (DESIGN.md §2: arrows point down the layers only). System
/// modules (Foundation, Glibc, Synchronization, Dispatch) are allowed except where noted.
let allowedImports: [String: Set<String>] = [
    "BoxConfig": ["TOMLKit"],
    "EchoCancel": [],
    "Devices": ["BoxConfig", "CAlsa", "CV4L2", "CGpiod", "Logging"],
    "Media": ["Devices", "EchoCancel", "BoxConfig", "COpus", "CCrypto", "Logging"],
    "Control": ["BoxConfig", "Logging"],
    "Box": ["BoxConfig", "Devices", "EchoCancel", "Media", "Control", "Logging"],
    "Diagnostics": ["Box", "BoxConfig", "Devices", "Media", "EchoCancel", "Logging"],
    "Provisioning": ["BoxConfig", "Logging"],
    "Bench": ["Devices", "Media"],
    "Fuzz": ["Media"],
    "LibFuzz": ["Media", "CLibFuzzer"],
    "classbox": ["Box", "BoxConfig", "Diagnostics", "Provisioning", "Media", "Logging", "ArgumentParser"],
]
let systemModules: Set<String> = ["Foundation", "FoundationEssentials", "Glibc", "Musl", "Synchronization", "Dispatch"]

func imports(ofModule module: String) -> [(file: String, module: String)] {
    let dir = sourcesRoot + "/" + module
    guard let files = FileManager.default.enumerator(atPath: dir) else { return [] }
    var result: [(String, String)] = []
    for case let file as String in files where file.hasSuffix(".swift") {
        guard let text = try? String(contentsOfFile: dir + "/" + file, encoding: .utf8) else { continue }
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ").filter { !$0.hasPrefix("@") }
            guard let i = words.firstIndex(of: "import"), i + 1 < words.count,
                  words[..<i].allSatisfy({ ["public", "internal", "package", "private", "fileprivate"].contains(String($0)) })
            else { continue }
            result.append((module + "/" + file, String(words[i + 1])))
        }
    }
    return result
}

@Suite("Module layering")
struct LayeringTests {
    @Test("every Swift module is known to this test")
    func allModulesListed() throws {
        let modules = try FileManager.default.contentsOfDirectory(atPath: sourcesRoot)
            .filter { !$0.hasPrefix("C") || $0 == "Control" }
        #expect(Set(modules) == Set(allowedImports.keys))
    }

    @Test("no module imports one above it", arguments: Array(allowedImports.keys).sorted())
    func layering(module: String) {
        let allowed = allowedImports[module]! .union(module == "EchoCancel" ? [] : systemModules)
        let found = imports(ofModule: module)
        #expect(!found.isEmpty || module == "EchoCancel" || module == "Diagnostics" || module == "Provisioning" || module == "Control")
        for (file, imported) in found {
            #expect(allowed.contains(imported), "\(file) imports \(imported)")
        }
    }

    @Test("EchoCancel imports nothing but the standard library")
    func echoCancelIsPure() {
        #expect(imports(ofModule: "EchoCancel").map(\.module) == [])
    }

    @Test("only the device layer, and Media's codec and SRTP crypto, touch C modules")
    func cModules() {
        for module in allowedImports.keys {
            for (file, imported) in imports(ofModule: module) where ["CAlsa", "CV4L2", "CGpiod", "COpus", "CCrypto"].contains(imported) {
                #expect(module == "Devices" || (module == "Media" && ["COpus", "CCrypto"].contains(imported)), "\(file) imports \(imported)")
            }
        }
    }
}
