import ArgumentParser
import Foundation
import Switchyard

/// `--config`, shared by the commands that talk to a configured cluster.
struct ConfigOption: ParsableArguments {
    @Option(
        name: .customLong("config"),
        help: ArgumentHelp(
            "Config file (default: $SWITCHYARD_CONFIG, ./switchyard.toml, then $XDG_CONFIG_HOME/switchyard/switchyard.toml).",
            valueName: "F"))
    var path: String?

    func load() throws -> ClusterConfiguration {
        try ClusterConfiguration.load(path: try ClusterConfiguration.locate(explicit: path))
    }
}
