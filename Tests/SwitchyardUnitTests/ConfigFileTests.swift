import LocalCluster
import PropertyBased
import Switchyard
import Testing

/// The one config writer: what it writes, the config reader reads back unchanged.
@Suite struct ConfigFileTests {
    @Test func writtenConfigsParseBackToTheSameValues() async {
        await propertyCheck(count: 1000, input: NastyText.name, NastyText.string, Gen.int(in: 50...600_000)) {
            name, conninfo, intervalMs in
            var file = ConfigFile(
                clusterName: name,
                nodes: [
                    ConfigFile.Node(name: "pg1", conninfo: conninfo),
                    ConfigFile.Node(name: name + "-2", conninfo: "host=x port=6432", monitorConninfo: conninfo, poolMode: "transaction"),
                ])
            file.monitorInterval = .milliseconds(intervalMs)
            file.queryLogFile = "/tmp/\(name).jsonl"
            file.header = ["about \(name)"]
            do {
                let parsed = try ClusterConfiguration.parse(file.render(), file: "generated.toml")
                #expect(parsed.name == name)
                #expect(parsed.nodes.map(\.name) == ["pg1", name + "-2"])
                #expect(parsed.nodes.first?.conninfo == conninfo)
                #expect(parsed.nodes.first?.monitorConninfo == conninfo)
                #expect(parsed.nodes.first?.poolMode == .session)
                #expect(parsed.nodes.last?.monitorConninfo == conninfo)
                #expect(parsed.nodes.last?.poolMode == .transaction)
                #expect(parsed.monitorInterval == .milliseconds(intervalMs))
                #expect(parsed.queryLogFile == "/tmp/\(name).jsonl")
            } catch {
                Issue.record("the written config does not parse: \(error)\n\(file.render())")
            }
        }
    }
}
