import Foundation
import FuzzTargets
import Testing

/// Every input the fuzzer kept (its corpus) and every input that once crashed a target,
/// replayed through the same targets (`bash Tests/Fuzz/fuzz.sh` grows both). A broken
/// invariant stops the test process, as it stopped the fuzzer.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static let corpusSlice = 40

    static func inputs(_ kind: String, _ target: String) -> [URL] {
        let directory = root.appendingPathComponent(kind).appendingPathComponent(target)
        return ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.path < $1.path }
    }

    @Test(arguments: FuzzTargets.names)
    func everyKeptInputRunsThroughItsTarget(target: String) throws {
        let run = try #require(FuzzTargets.all[target])
        let corpus = Self.inputs("Corpus", target)
        #expect(corpus.count >= 3, "the corpus of \(target) is missing from \(Self.root.path)")
        // Every crash, and a fixed slice of the corpus: the whole of it (thousands of
        // inputs, unoptimised) would slow the unit suite's timing-sensitive neighbours;
        // `swift run switchyard-fuzz TARGET Tests/Fuzz/Corpus/TARGET/*` replays all of it.
        for file in Self.inputs("Crashes", target) + corpus.prefix(Self.corpusSlice) {
            run(try Data(contentsOf: file))
        }
    }

    @Test func theCrashesFoundAreKept() {
        #expect(Self.inputs("Crashes", "conninfo").count >= 1)
        #expect(Self.inputs("Crashes", "cookie").count >= 1)
    }
}
