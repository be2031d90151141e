import ArgumentParser
import Console
import Foundation
import LocalCluster
import PostgresClient
import Switchyard

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the local cluster, load sample data once, run light site traffic, and open the console.",
        discussion: """
            The site traffic reads through the router in the public context, so the side pane \
            shows replica reads next to the console's primary-only statements. The cluster \
            keeps running after you quit.
            """)

    @OptionGroup var directory: ClusterDirectoryOption
    @Option(help: "Port of pg1; replicas take the following ports.") var port = 55432
    @Flag(help: "Do not run the background public read traffic.") var noTraffic = false
    @Option(help: "Theme name (Themes/NAME.toml) or path to a theme file.") var theme: String?
    @Option(help: "Open this table at once, as SCHEMA.TABLE.") var table: String?
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap(fullScreen: true)
        let theme = try loadTheme(self.theme ?? "default")
        let cluster = directory.cluster
        print("starting the local cluster in \(cluster.directory.path)…")
        let statuses = try await cluster.up(basePort: port, replicas: 2) { print("  \($0)") }
        guard let primary = statuses.first(where: { $0.role == .primary }) else {
            throw LocalClusterError(.notRunning, "no running primary in \(cluster.directory.path)")
        }
        try await DemoData.loadIfMissing(conninfo: cluster.conninfo(for: primary.node)) { print("  \($0)") }
        var configuration = try ClusterConfiguration.load(path: cluster.configURL.path)
        configuration.name = "demo"
        let startTraffic: @Sendable (Cluster) -> Task<Void, Never> = { DemoData.publicTraffic(on: $0) }
        let traffic = noTraffic ? nil : startTraffic
        try await runConsole(configuration: configuration, theme: theme, table: table, beside: traffic)
        print("The demo cluster keeps running. Stop it with: switchyard cluster down --dir \(cluster.directory.path)")
    }
}

/// The sample schema and the light public traffic of `switchyard demo`.
enum DemoData {
    static func loadIfMissing(conninfo: String, progress: @Sendable (String) -> Void) async throws {
        let connection = try await PostgresConnection.connect(conninfo, label: "pg1", options: ConnectOptions(connectTimeout: .seconds(5)))
        try await connection.closing { connection in
            let done = try await connection.query("select to_regclass('demo.loaded_at') is not null").scalar(Bool.self) ?? false
            if done {
                progress("sample data already loaded (schema demo)")
                return
            }
            progress("loading sample data (schema demo, 1 000 000 events; once)…")
            let started = ContinuousClock.now
            _ = try await connection.execute(script: schema)
            progress("sample data loaded in \(ContinuousClock.now - started)")
        }
    }

    /// Reads of products and customers in the public context, ten a second, and a page
    /// view counted now and then: enough to see replica routing in the side pane.
    static func publicTraffic(on cluster: Cluster) -> Task<Void, Never> {
        Task {
            var tick = 0
            while !Task.isCancelled {
                tick += 1
                await RoutingContext.public.run {
                    do {
                        _ = try await cluster.query(
                            "select id, name, price from demo.products where id = $1", [Int.random(in: 1...2000)], table: "demo.products")
                        if tick % 3 == 0 {
                            _ = try await cluster.query(
                                "select id, name, country from demo.customers where id = $1", [Int.random(in: 1...20000)],
                                table: "demo.customers")
                        }
                        if tick % 25 == 0 {
                            try await cluster.execute(
                                "update demo.products set views = views + 1 where id = $1", [Int.random(in: 1...2000)],
                                table: "demo.products")
                        }
                    } catch {
                        // The pane shows failures; the traffic just goes on.
                    }
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    static let schema = """
        begin;
        create schema demo;
        create table demo.customers (
            id serial primary key,
            name text not null,
            email text unique,
            country char(2),
            vip boolean not null default false,
            credit_limit numeric(10, 2),
            born_on date,
            created_at timestamptz not null default now(),
            notes text
        );
        create table demo.products (
            id serial primary key,
            sku uuid not null default gen_random_uuid(),
            name text not null,
            price numeric(10, 2) not null check (price >= 0),
            stock integer not null default 0,
            views integer not null default 0,
            attributes jsonb,
            released_on date
        );
        create table demo.orders (
            id serial primary key,
            customer_id integer not null references demo.customers,
            ordered_at timestamptz not null default now(),
            status text not null default 'new' check (status in ('new', 'paid', 'shipped', 'cancelled')),
            total numeric(12, 2)
        );
        create table demo.order_items (
            order_id integer not null references demo.orders on delete cascade,
            product_id integer not null references demo.products,
            quantity integer not null check (quantity > 0),
            unit_price numeric(10, 2) not null,
            primary key (order_id, product_id)
        );
        create table demo.events (
            id bigint primary key,
            occurred_at timestamptz not null,
            kind text not null,
            customer_id integer,
            payload jsonb
        );
        create table demo.audit_log (
            at timestamptz not null default now(),
            actor text,
            action text
        );

        insert into demo.customers (name, email, country, vip, credit_limit, born_on, created_at, notes)
        select (array['Zoë', 'Ångström', 'Nguyễn', 'Müller', 'Søren', 'Chloé', '山田', 'Olu', 'Ana', 'Björk'])[1 + g % 10]
                   || ' ' || (array['Smith', 'García', 'Kowalski', 'Okafor', 'Tanaka', 'Dubois', 'Rossi', 'Khan'])[1 + g % 8]
                   || ' ' || g,
               case when g % 17 = 0 then null else 'customer' || g || '@example.com' end,
               (array['DE', 'FR', 'JP', 'NG', 'BR', 'US', 'SE', 'VN'])[1 + g % 8],
               g % 23 = 0,
               case when g % 5 = 0 then null else (g % 50) * 100.00 end,
               date '1950-01-01' + (g * 37 % 20000),
               now() - (g || ' minutes')::interval,
               case when g % 11 = 0 then '' when g % 7 = 0 then null else 'prefers e-mail' end
        from generate_series(1, 20000) g;

        insert into demo.products (name, price, stock, attributes, released_on)
        select (array['Lamp', 'Chair', 'Desk', 'Mug', 'Kettle', 'Rug', 'Shelf', 'Clock'])[1 + g % 8] || ' ' || g,
               round((5 + (g * 7919 % 50000) / 100.0)::numeric, 2),
               g * 13 % 500,
               case when g % 4 = 0 then null
                    else jsonb_build_object('colour', (array['red', 'oak', 'white', 'black'])[1 + g % 4], 'weight_kg', g % 30) end,
               date '2015-01-01' + g % 3000
        from generate_series(1, 2000) g;

        insert into demo.orders (customer_id, ordered_at, status, total)
        select 1 + g * 7 % 20000, now() - (g || ' hours')::interval,
               (array['new', 'paid', 'shipped', 'cancelled'])[1 + g % 4], null
        from generate_series(1, 30000) g;

        insert into demo.order_items (order_id, product_id, quantity, unit_price)
        select o, 1 + (o * 31 + i * 17) % 2000, 1 + (o + i) % 4, 9.99 + (o % 40)
        from generate_series(1, 30000) o, generate_series(1, 2) i;

        update demo.orders o set total = s.total
        from (select order_id, sum(quantity * unit_price) as total from demo.order_items group by order_id) s
        where s.order_id = o.id;

        insert into demo.events (id, occurred_at, kind, customer_id, payload)
        select g, now() - (g || ' seconds')::interval,
               (array['view', 'search', 'cart', 'checkout', 'login'])[1 + g % 5],
               case when g % 3 = 0 then null else 1 + g % 20000 end,
               case when g % 10 = 0 then jsonb_build_object('query', 'lamp ' || g) else null end
        from generate_series(1, 1000000) g;

        insert into demo.audit_log (at, actor, action)
        select now() - (g || ' minutes')::interval, 'staff' || g % 5, 'edited order ' || g
        from generate_series(1, 1000) g;

        create table demo.loaded_at (at timestamptz primary key default now());
        insert into demo.loaded_at default values;
        commit;
        analyze;
        """
}
