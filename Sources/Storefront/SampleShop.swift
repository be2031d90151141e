import Foundation
import PostgresClient

/// The sample shop's schema (customers, products, orders, order items, a million events,
/// an audit log): what `switchyard demo` and the storefront run on.
public enum SampleShop {
    /// Loads the sample schema into `schema` once (a marker table says it is there).
    /// - Parameters:
    ///   - events: rows of the events table (the demo's big table).
    public static func loadIfMissing(
        conninfo: String, schema: String = "demo", events: Int = 1_000_000, progress: @Sendable (String) -> Void
    ) async throws {
        let connection = try await PostgresConnection.connect(conninfo, label: "primary", options: ConnectOptions(connectTimeout: .seconds(5)))
        try await connection.closing { connection in
            try await load(on: connection, schema: schema, events: events, progress: progress)
        }
    }

    /// As above, on an open connection to the primary.
    public static func load(on connection: PostgresConnection, schema: String, events: Int, progress: @Sendable (String) -> Void) async throws {
        let quoted = try await connection.quoteIdentifier(schema)
        func loaded() async throws -> Bool {
            try await connection.query("select to_regclass($1) is not null", ["\(quoted).loaded_at"]).scalar(Bool.self) ?? false
        }
        if try await loaded() {
            progress("sample data already loaded (schema \(schema))")
            return
        }
        progress("loading sample data (schema \(schema), \(events) events; once)…")
        let started = ContinuousClock.now
        do {
            _ = try await connection.execute(script: script(schema: quoted, events: max(events, 0)))
        } catch {
            // Another process may have loaded it meanwhile.
            _ = try? await connection.query("rollback")
            if try await loaded() { return }
            throw error
        }
        progress("sample data loaded in \(ContinuousClock.now - started)")
    }

    /// The schema script, objects in `schema` (already quoted), `events` event rows.
    static func script(schema: String, events: Int) -> String {
        """
        begin;
        create schema \(schema);
        create table \(schema).customers (
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
        create table \(schema).products (
            id serial primary key,
            sku uuid not null default gen_random_uuid(),
            name text not null,
            price numeric(10, 2) not null check (price >= 0),
            stock integer not null default 0,
            views integer not null default 0,
            attributes jsonb,
            released_on date
        );
        create table \(schema).orders (
            id serial primary key,
            customer_id integer not null references \(schema).customers,
            ordered_at timestamptz not null default now(),
            status text not null default 'new' check (status in ('new', 'paid', 'shipped', 'cancelled')),
            total numeric(12, 2)
        );
        create table \(schema).order_items (
            order_id integer not null references \(schema).orders on delete cascade,
            product_id integer not null references \(schema).products,
            quantity integer not null check (quantity > 0),
            unit_price numeric(10, 2) not null,
            primary key (order_id, product_id)
        );
        create table \(schema).events (
            id bigint primary key,
            occurred_at timestamptz not null,
            kind text not null,
            customer_id integer,
            payload jsonb
        );
        create table \(schema).audit_log (
            at timestamptz not null default now(),
            actor text,
            action text
        );

        insert into \(schema).customers (name, email, country, vip, credit_limit, born_on, created_at, notes)
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

        insert into \(schema).products (name, price, stock, attributes, released_on)
        select (array['Lamp', 'Chair', 'Desk', 'Mug', 'Kettle', 'Rug', 'Shelf', 'Clock'])[1 + g % 8] || ' ' || g,
               round((5 + (g * 7919 % 50000) / 100.0)::numeric, 2),
               g * 13 % 500,
               case when g % 4 = 0 then null
                    else jsonb_build_object('colour', (array['red', 'oak', 'white', 'black'])[1 + g % 4], 'weight_kg', g % 30) end,
               date '2015-01-01' + g % 3000
        from generate_series(1, 2000) g;

        insert into \(schema).orders (customer_id, ordered_at, status, total)
        select 1 + g * 7 % 20000, now() - (g || ' hours')::interval,
               (array['new', 'paid', 'shipped', 'cancelled'])[1 + g % 4], null
        from generate_series(1, 30000) g;

        insert into \(schema).order_items (order_id, product_id, quantity, unit_price)
        select o, 1 + (o * 31 + i * 17) % 2000, 1 + (o + i) % 4, 9.99 + (o % 40)
        from generate_series(1, 30000) o, generate_series(1, 2) i;

        update \(schema).orders o set total = s.total
        from (select order_id, sum(quantity * unit_price) as total from \(schema).order_items group by order_id) s
        where s.order_id = o.id;

        insert into \(schema).events (id, occurred_at, kind, customer_id, payload)
        select g, now() - (g || ' seconds')::interval,
               (array['view', 'search', 'cart', 'checkout', 'login'])[1 + g % 5],
               case when g % 3 = 0 then null else 1 + g % 20000 end,
               case when g % 10 = 0 then jsonb_build_object('query', 'lamp ' || g) else null end
        from generate_series(1, \(events)) g;

        insert into \(schema).audit_log (at, actor, action)
        select now() - (g || ' minutes')::interval, 'staff' || g % 5, 'edited order ' || g
        from generate_series(1, 1000) g;

        create table \(schema).loaded_at (at timestamptz primary key default now());
        insert into \(schema).loaded_at default values;
        commit;
        analyze;
        """
    }
}
