import Foundation
import FuzzTargets

#if FUZZING
import CFuzzerDriver
#endif

/// `switchyard-fuzz TARGET FILE…` (or SWITCHYARD_FUZZ_TARGET=TARGET) replays files through a fuzz target. Built with
/// `-Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING`, `switchyard-fuzz TARGET [libFuzzer
/// options] [CORPUS…]` runs libFuzzer on that target instead.
@main
enum SwitchyardFuzz {
    static func main() {
        var arguments = CommandLine.arguments
        // libFuzzer re-runs itself (minimizing, merging) with its own arguments: the target
        // named first is also kept in the environment those runs inherit.
        if let name = ProcessInfo.processInfo.environment["SWITCHYARD_FUZZ_TARGET"], arguments.count < 2 || FuzzTargets.all[arguments[1]] == nil {
            arguments.insert(name, at: 1)
        }
        guard arguments.count >= 2, let target = FuzzTargets.all[arguments[1]] else {
            print("usage: switchyard-fuzz TARGET FILE…  (targets: \(FuzzTargets.names.joined(separator: ", ")))")
            exit(2)
        }
        #if FUZZING
        Selected.target = target
        setenv("SWITCHYARD_FUZZ_TARGET", arguments[1], 1)
        arguments.remove(at: 1)
        exit(runLibFuzzer(arguments))
        #else
        for path in arguments.dropFirst(2) {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("cannot read \(path)")
                exit(1)
            }
            target(data)
        }
        print("\(arguments.count - 2) inputs through \(arguments[1]): no crash")
        #endif
    }
}

#if FUZZING
enum Selected {
    nonisolated(unsafe) static var target: (@Sendable (Data) -> Void)?
}

func runLibFuzzer(_ arguments: [String]) -> Int32 {
    var argc = Int32(arguments.count)
    var cStrings: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    return cStrings.withUnsafeMutableBufferPointer { buffer in
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
        return LLVMFuzzerRunDriver(&argc, &argv) { bytes, count in
            Selected.target?(bytes.map { Data(bytes: $0, count: count) } ?? Data())
            return 0
        }
    }
}
#endif
