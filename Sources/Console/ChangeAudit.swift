import Foundation
import PostgresClient
import Switchyard

/// The console's change history: one row in `switchyard.changes` per insert, update and
/// delete, written in the same transaction as the change itself, so there is never an
/// edit without its record nor a record without its edit.
public enum ChangeAudit {
    public static let table = "switchyard.changes"

    /// Creates the schema, the table and its indexes (idempotent). Needs the right to
    /// create a schema in the database, or an existing `switchyard` schema one may use.
    public static let setupSQL = [
        "create schema if not exists switchyard",
        """
        create table if not exists switchyard.changes (
            id bigint generated always as identity primary key,
            changed_at timestamptz not null default now(),
            db_role text not null default current_user,
            os_user text,
            client_host text,
            client_addr inet default inet_client_addr(),
            application_name text default current_setting('application_name'),
            table_name text not null,
            row_key jsonb not null,
            action text not null check (action in ('insert', 'update', 'delete')),
            before jsonb,
            after jsonb
        )
        """,
        // The SQL prompt's writes name their statement; one without rows of its own is
        // recorded once, as a `statement`.
        "alter table switchyard.changes add column if not exists statement text",
        // A revert names the change it undid.
        "alter table switchyard.changes add column if not exists reverts bigint",
        "alter table switchyard.changes drop constraint if exists changes_action_check",
        "alter table switchyard.changes add constraint changes_action_check check (action in ('insert', 'update', 'delete', 'statement'))",
        "create index if not exists changes_by_row on switchyard.changes (table_name, row_key, id desc)",
        "create index if not exists changes_by_table on switchyard.changes (table_name, id desc)",
        // Where a change came from: NULL the console, 'trigger' a tracked table's trigger
        // (any client: an app, psql).
        "alter table switchyard.changes add column if not exists source text",
        // Tamper evidence: each row's hash covers its content and the previous row's hash,
        // in `seq` order (no gaps). `switchyard audit verify` recomputes the chain.
        "alter table switchyard.changes add column if not exists seq bigint",
        "alter table switchyard.changes add column if not exists hash text",
        "create unique index if not exists changes_by_seq on switchyard.changes (seq)",
        """
        create or replace function switchyard.change_content(c switchyard.changes) returns text
        language sql stable set search_path = pg_catalog as $body$
            select jsonb_build_array(c.seq, c.changed_at at time zone 'UTC', c.db_role, c.os_user, c.client_host, c.client_addr::text, c.application_name,
                                     c.table_name, c.row_key, c.action, c.before, c.after, c.statement, c.reverts, c.source)::text
        $body$
        """,
        """
        create or replace function switchyard.chain_change() returns trigger
        language plpgsql security definer set search_path = pg_catalog as $body$
        declare
            last record;
        begin
            -- One writer of the chain at a time, until its transaction ends.
            perform pg_advisory_xact_lock(7293461, 1);
            select c.seq, c.hash into last from switchyard.changes c where c.seq is not null order by c.seq desc limit 1;
            new.seq := coalesce(last.seq, 0) + 1;
            new.hash := encode(sha256(convert_to(coalesce(last.hash, '') || switchyard.change_content(new), 'UTF8')), 'hex');
            return new;
        end
        $body$
        """,
        "drop trigger if exists chain on switchyard.changes",
        "create trigger chain before insert on switchyard.changes for each row execute function switchyard.chain_change()",
        // Append-only: rows are never updated or deleted, the table never truncated.
        """
        create or replace function switchyard.refuse_change() returns trigger
        language plpgsql as $body$
        begin
            raise exception 'switchyard.changes is append-only: % refused', tg_op using errcode = '42501',
                hint = 'the history is evidence; `switchyard audit verify` checks it';
        end
        $body$
        """,
        "drop trigger if exists append_only on switchyard.changes",
        "create trigger append_only before update or delete on switchyard.changes for each row execute function switchyard.refuse_change()",
        "drop trigger if exists append_only_truncate on switchyard.changes",
        "create trigger append_only_truncate before truncate on switchyard.changes for each statement execute function switchyard.refuse_change()",
        // `switchyard audit track T`: a row trigger on T that records changes from any
        // client — skipped for the console's own writes, which it records itself.
        """
        create or replace function switchyard.track(target regclass) returns void
        language plpgsql set search_path = pg_catalog as $body$
        declare
            keys text;
            columns text;
            fn text := format('switchyard.%I', 'track_' || target::oid);
        begin
            select string_agg(format('%L, r.%I::text', a.attname, a.attname), ', ' order by array_position(i.indkey::int2[], a.attnum))
              into keys
              from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
             where i.indrelid = target and i.indisprimary;
            if keys is null then
                raise exception '% has no primary key: its changes cannot be told apart', target using errcode = '42P10';
            end if;
            -- jsonb_build_object takes at most 100 arguments: 50 columns a call.
            select string_agg(part, ' || ') into columns from (
                select 'jsonb_build_object(' || string_agg(format('%L, r.%I::text', attname, attname), ', ' order by attnum) || ')' as part
                  from (select attname, attnum, (row_number() over (order by attnum) - 1) / 50 as chunk
                          from pg_attribute where attrelid = target and attnum > 0 and not attisdropped) a
                 group by chunk) p;
            execute format($f$
                create or replace function %s() returns trigger language plpgsql security definer set search_path = pg_catalog as $t$
                declare
                    old_values jsonb; new_values jsonb; row_key_values jsonb; r record;
                begin
                    if current_setting('switchyard.console', true) = 'on' then return null; end if;
                    if tg_op <> 'INSERT' then r := old; old_values := %s; row_key_values := jsonb_build_object(%s); end if;
                    if tg_op <> 'DELETE' then r := new; new_values := %s; row_key_values := jsonb_build_object(%s); end if;
                    if tg_op = 'UPDATE' then
                        select jsonb_object_agg(n.key, o.value), jsonb_object_agg(n.key, n.value) into old_values, new_values
                          from jsonb_each(new_values) n join jsonb_each(old_values) o on o.key = n.key where n.value is distinct from o.value;
                        if old_values is null then return null; end if;
                    end if;
                    -- The session's role: inside this function current_user is its owner.
                    insert into switchyard.changes (db_role, table_name, row_key, action, before, after, source)
                    values (session_user, %L, row_key_values, lower(tg_op), old_values, new_values, 'trigger');
                    return null;
                end
                $t$
            $f$, fn, columns, keys, columns, keys,
                (select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = target));
            execute format('drop trigger if exists switchyard_track on %s', target);
            execute format('create trigger switchyard_track after insert or update or delete on %s for each row execute function %s()', target, fn);
        end
        $body$
        """,
    ]

    /// What `audit verify` found.
    public struct ChainReport: Sendable, Equatable {
        /// Rows in the chain, and the newest one's position and hash (to keep elsewhere:
        /// a chain recomputed from scratch by someone who could also disable the triggers
        /// ends in a different hash).
        public var rows: Int
        public var headSeq: Int?
        public var headHash: String?
        /// The first row where the chain breaks, and how (nil: intact).
        public var brokenAt: Int?
        public var problem: String?
    }

    /// Recomputes the hash chain on the server (nothing but the first break comes back).
    public static func verify(_ cluster: Cluster) async throws -> ChainReport {
        let summary = try await cluster.query(
            "select count(*)::int, max(seq)::int, (select hash from switchyard.changes where seq = (select max(seq) from switchyard.changes)) from switchyard.changes where seq is not null")
        var report = ChainReport(
            rows: try summary.first?.decode(0, as: Int.self) ?? 0, headSeq: try summary.first?.decode(1, as: Int?.self),
            headHash: try summary.first?.decode(2, as: String?.self))
        let broken = try await cluster.query(
            """
            select id::int, seq::int, previous::int, hash, expected from (
                select c.id, c.seq, c.hash, lag(c.seq) over w as previous,
                       encode(sha256(convert_to(coalesce(lag(c.hash) over w, '') || switchyard.change_content(c), 'UTF8')), 'hex') as expected
                from switchyard.changes c where c.seq is not null window w as (order by c.seq)) chain
            where hash is distinct from expected or (previous is null and seq <> 1) or (previous is not null and seq <> previous + 1)
            order by seq limit 1
            """)
        if let row = broken.first {
            let id = try row.decode(0, as: Int.self), seq = try row.decode(1, as: Int.self)
            let previous = try row.decode(2, as: Int?.self)
            report.brokenAt = id
            if (previous == nil && seq != 1) || (previous != nil && seq != previous! + 1) {
                report.problem = "change #\(id) (position \(seq)) follows position \(previous.map(String.init) ?? "none"): rows before it were deleted"
            } else {
                report.problem = "change #\(id) (position \(seq)) does not match its hash: it, or the row before it, was changed after it was written"
            }
            return report
        }
        // A row written while the chain's trigger was off has no place in it.
        let unchained = try await cluster.query(
            "select min(id)::int from switchyard.changes where seq is null and id > (select min(id) from switchyard.changes where seq is not null)")
        if let id = try unchained.first?.decode(0, as: Int?.self) {
            report.brokenAt = id
            report.problem = "change #\(id) is outside the chain: it was written with the history's triggers disabled"
        }
        return report
    }

    /// Staff roles may add to the history and read it, nothing else.
    public static func grantSQL(role quoted: String) -> [String] {
        ["grant usage on schema switchyard to \(quoted)", "grant select, insert on switchyard.changes to \(quoted)"]
    }

    /// How to fix a missing or unwritable history, for the messages that refuse edits.
    static let remedy = "an owner can run `switchyard audit init`, or set [console] audit = \"off\" to edit without a history"

    public enum Action: String, Sendable, Codable { case insert, update, delete, statement }

    /// One recorded change.
    public struct Entry: Sendable, Equatable, Codable {
        public var id: Int
        /// ISO 8601 with the server's offset.
        public var changedAt: String
        public var role: String
        public var osUser: String?
        public var clientHost: String?
        public var table: String
        /// Key column → value (text), as JSON.
        public var key: [String: String?]
        public var action: Action
        /// Changed columns before and after (all columns for inserts and deletes).
        public var before: [String: String?]?
        public var after: [String: String?]?
        /// The SQL prompt's statement that made the change (nil: a console edit).
        public var statement: String? = nil
        /// The change this one reverted (`u` in the history).
        public var reverts: Int? = nil
        /// Not from the console: recorded by a tracked table's trigger (`audit track`).
        public var fromTrigger = false
        /// The client's `application_name` (shown for changes not from the console).
        public var application: String? = nil

        /// `col: before → after` for each changed column, in column order of `order`.
        public func changes(order: [String] = []) -> [(column: String, before: String?, after: String?)] {
            let names = Set((before ?? [:]).keys).union((after ?? [:]).keys)
            let sorted = names.sorted { a, b in
                let ia = order.firstIndex(of: a) ?? Int.max, ib = order.firstIndex(of: b) ?? Int.max
                return ia != ib ? ia < ib : a < b
            }
            return sorted.map { ($0, before?[$0] ?? nil, after?[$0] ?? nil) }
        }

        /// `#42` or `#(1, a)`: the key as the title shows it.
        public var keyLabel: String {
            if key.isEmpty { return "-" }
            let values = key.keys.sorted().map { key[$0]! ?? "NULL" }
            return values.count == 1 ? "#\(values[0])" : "#(\(values.joined(separator: ", ")))"
        }
    }

    /// Who makes the changes, as recorded beside the database role.
    static let osUser: String = {
        if let entry = getpwuid(geteuid()) { return String(cString: entry.pointee.pw_name) }
        return ProcessInfo.processInfo.environment["USER"] ?? "?"
    }()
    static let hostName = ProcessInfo.processInfo.hostName

    /// A JSON object of text values (NULL as null), for a jsonb parameter.
    static func json(_ values: [String: String?]) -> String {
        let object = values.mapValues { $0.map { $0 as Any } ?? NSNull() }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ text: String?) -> [String: String?]? {
        guard let text, let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else { return nil }
        return object.mapValues { value -> String? in
            switch value {
            case is NSNull: return nil
            case let string as String: return string
            default:
                let data = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])) ?? Data()
                return String(decoding: data, as: UTF8.self)
            }
        }
    }

    /// Writes the record inside `transaction`. A failure aborts the change with a message
    /// that says how to fix it.
    static func record(
        in transaction: Cluster.Transaction, table: String, key: [String: String?], action: Action, before: [String: String?]?,
        after: [String: String?]?, reverts: Int? = nil
    ) async throws {
        do {
            if let reverts {
                _ = try await transaction.execute(
                    """
                    insert into switchyard.changes (os_user, client_host, table_name, row_key, action, before, after, reverts)
                    values ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7::jsonb, $8::bigint)
                    """,
                    [osUser, hostName, table, json(key), action.rawValue, before.map(json), after.map(json), String(reverts)])
                return
            }
            _ = try await transaction.execute(
                """
                insert into switchyard.changes (os_user, client_host, table_name, row_key, action, before, after)
                values ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7::jsonb)
                """,
                [osUser, hostName, table, json(key), action.rawValue, before.map(json), after.map(json)])
        } catch let error as PostgresError {
            throw DataService.WriteRefused(
                "the change history \(Self.table) cannot be written (\(error.message)\(error.sqlState.map { ", SQLSTATE \($0)" } ?? "")): "
                    + "nothing was saved; \(remedy)")
        }
    }

    /// The newest changes, of one row (`key`) or one table or all, at most `limit`.
    public static func history(
        _ cluster: Cluster, table: String? = nil, key: [String: String?]? = nil, since: String? = nil, limit: Int = 200
    ) async throws -> [Entry] {
        var conditions: [String] = []
        var parameters: [any PostgresEncodable] = []
        if let table {
            parameters.append(table)
            conditions.append("table_name = $\(parameters.count)")
        }
        if let key {
            parameters.append(json(key))
            conditions.append("row_key = $\(parameters.count)::jsonb")
        }
        if let since {
            parameters.append(since)
            conditions.append("changed_at >= $\(parameters.count)::timestamptz")
        }
        parameters.append(limit)
        let sql = """
            select id, to_char(changed_at, 'YYYY-MM-DD"T"HH24:MI:SS.MSOF'), db_role, os_user, client_host, table_name,
                   row_key::text, action, before::text, after::text, to_jsonb(changes)->>'statement', to_jsonb(changes)->>'reverts',
                   to_jsonb(changes)->>'source', application_name, client_addr::text
            from switchyard.changes \(conditions.isEmpty ? "" : "where " + conditions.joined(separator: " and "))
            order by id desc limit $\(parameters.count)
            """
        return try await cluster.query(sql, parameters, table: Self.table).rows.map { row in
            Entry(
                id: try row.decode(0, as: Int.self), changedAt: try row.decode(1, as: String.self), role: try row.decode(2, as: String.self),
                osUser: try row.decode(3, as: String?.self), clientHost: try row.decode(4, as: String?.self) ?? row.decode(14, as: String?.self),
                table: try row.decode(5, as: String.self), key: decode(try row.decode(6, as: String.self)) ?? [:],
                action: Action(rawValue: try row.decode(7, as: String.self)) ?? .update,
                before: decode(try row.decode(8, as: String?.self)), after: decode(try row.decode(9, as: String?.self)),
                statement: try row.decode(10, as: String?.self), reverts: try row.decode(11, as: String?.self).flatMap { Int($0) },
                fromTrigger: try row.decode(12, as: String?.self) == "trigger", application: try row.decode(13, as: String?.self))
        }
    }

    /// `schema.table` as `to_regclass` reads it: each part quoted (the history names tables
    /// unquoted, as the console shows them).
    public static func quotedForRegclass(_ table: String) -> String {
        let parts = table.split(separator: ".", maxSplits: 1).map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        return parts.joined(separator: ".")
    }

    /// Each table's columns and their types (`pg_type.typname`), for the tables that exist.
    public static func columnTypes(_ cluster: Cluster, tables: Set<String>) async throws -> [String: [String: String]] {
        guard !tables.isEmpty else { return [:] }
        let rows = try await cluster.query(
            """
            select n.nspname || '.' || c.relname, a.attname, t.typname
            from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
              join pg_type t on t.oid = a.atttypid
            where n.nspname || '.' || c.relname in (select jsonb_array_elements_text($1::jsonb)) and a.attnum > 0 and not a.attisdropped
            """, [String(decoding: try JSONSerialization.data(withJSONObject: tables.sorted()), as: UTF8.self)], table: Self.table)
        var types: [String: [String: String]] = [:]
        for row in rows.rows {
            types[try row.decode(0, as: String.self), default: [:]][try row.decode(1, as: String.self)] = try row.decode(2, as: String.self)
        }
        return types
    }

    /// The value PostgreSQL printed as `text`, as JSON for a column of type `type`.
    public static func typedValue(_ text: String?, type: String?) -> Any {
        guard let text else { return NSNull() }
        switch type {
        case "int2", "int4", "int8", "oid":
            if let number = Int64(text) { return NSNumber(value: number) }
        case "float4", "float8", "numeric":
            // Finite decimals only, kept digit for digit (NaN and Infinity have no JSON form).
            if text.range(of: #"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"#, options: .regularExpression) != nil,
                let number = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
            {
                return NSDecimalNumber(decimal: number)
            }
        case "bool":
            if text == "t" || text == "f" { return NSNumber(value: text == "t") }
        case "json", "jsonb":
            if let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) { return value }
        default:
            break
        }
        return text
    }

    /// An entry as one JSON object, its values typed by `types` (column → typname).
    public static func typedJSON(_ entry: Entry, types: [String: String]) -> [String: Any] {
        func typed(_ values: [String: String?]?) -> Any {
            guard let values else { return NSNull() }
            return values.reduce(into: [String: Any]()) { $0[$1.key] = typedValue($1.value, type: types[$1.key]) }
        }
        return [
            "id": entry.id, "changedAt": entry.changedAt, "role": entry.role, "osUser": entry.osUser ?? NSNull(),
            "clientHost": entry.clientHost ?? NSNull(), "table": entry.table, "key": typed(entry.key), "action": entry.action.rawValue,
            "before": typed(entry.before), "after": typed(entry.after),
        ]
    }

    /// Creates the history table (for `switchyard audit init` and the console's first edit).
    public static func initialize(_ cluster: Cluster) async throws {
        for statement in setupSQL { _ = try await cluster.execute(statement) }
    }
}
