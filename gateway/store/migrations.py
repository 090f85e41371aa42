"""Numbered schema migrations, applied in order at start-up.

Never edit a migration that has shipped: add the next number.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

        -- The transactional outbox: one row per event, written in the transaction of the
        -- state change it reports, deleted only after the hub acknowledged it.
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, body BLOB NOT NULL);

        CREATE TABLE catalogs (
            version TEXT PRIMARY KEY, doc TEXT NOT NULL, received_at TEXT NOT NULL);
        CREATE TABLE stock (
            material TEXT NOT NULL, lot TEXT NOT NULL, qty REAL NOT NULL, expires TEXT,
            PRIMARY KEY (material, lot));

        CREATE TABLE orders (
            order_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, status TEXT NOT NULL,
            ship_by TEXT NOT NULL, priority INTEGER NOT NULL, catalog_version TEXT NOT NULL,
            doc TEXT NOT NULL, accepted_at TEXT NOT NULL, completed_at TEXT,
            units INTEGER NOT NULL, weight_g REAL, label_id TEXT, cancel_reason TEXT);
        CREATE INDEX orders_status ON orders (status, ship_by);

        CREATE TABLE work_orders (
            wo_id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL,
            line_no INTEGER NOT NULL,
            sku TEXT NOT NULL, qty INTEGER NOT NULL, routing TEXT NOT NULL,
            operations TEXT NOT NULL, sku_doc TEXT NOT NULL, personalization TEXT NOT NULL);
        CREATE INDEX work_orders_order ON work_orders (order_id);

        CREATE TABLE units (
            serial TEXT PRIMARY KEY, order_id TEXT NOT NULL, wo_id INTEGER NOT NULL,
            unit_index INTEGER NOT NULL, status TEXT NOT NULL, kitted INTEGER NOT NULL,
            replaces TEXT, created_at TEXT NOT NULL, completed_at TEXT);
        CREATE INDEX units_order ON units (order_id);

        -- Ids are never reused (AUTOINCREMENT): events name tasks and work orders by id.
        -- One task per unit per operation, and one pack task per order (serial NULL).
        CREATE TABLE tasks (
            task_id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, serial TEXT,
            wo_id INTEGER,
            op TEXT NOT NULL, op_index INTEGER NOT NULL, capability TEXT NOT NULL,
            status TEXT NOT NULL, ship_by TEXT NOT NULL, priority INTEGER NOT NULL,
            station TEXT, operator TEXT, machine TEXT, attempt INTEGER NOT NULL DEFAULT 1,
            dispatched_at TEXT, started_at TEXT, completed_at TEXT,
            work TEXT NOT NULL DEFAULT '{}');
        CREATE INDEX tasks_queue ON tasks (status, capability, ship_by, priority DESC, task_id);
        CREATE INDEX tasks_unit ON tasks (serial, op_index);
        CREATE INDEX tasks_order ON tasks (order_id);

        -- Every attempt at a task that ended (completed or failed): the genealogy.
        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, order_id TEXT NOT NULL,
            serial TEXT, op TEXT NOT NULL, attempt INTEGER NOT NULL, station TEXT,
            operator TEXT, machine TEXT, started_at TEXT, ended_at TEXT NOT NULL,
            outcome TEXT NOT NULL, lots TEXT NOT NULL, reason TEXT);
        CREATE INDEX attempts_serial ON attempts (serial);
        CREATE INDEX attempts_order ON attempts (order_id);

        CREATE TABLE reservations (
            id INTEGER PRIMARY KEY, order_id TEXT NOT NULL, serial TEXT NOT NULL,
            op TEXT NOT NULL, material TEXT NOT NULL, lot TEXT NOT NULL, qty REAL NOT NULL);
        CREATE INDEX reservations_unit ON reservations (serial, op);

        CREATE TABLE consumption (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, material TEXT NOT NULL,
            lot TEXT NOT NULL, qty REAL NOT NULL, serial TEXT, task_id INTEGER,
            order_id TEXT);
        CREATE INDEX consumption_lot ON consumption (lot);
        CREATE INDEX consumption_serial ON consumption (serial);

        CREATE TABLE quality (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, task_id INTEGER NOT NULL,
            order_id TEXT NOT NULL, serial TEXT, check_kind TEXT NOT NULL,
            passed INTEGER NOT NULL, measured TEXT NOT NULL, station TEXT, operator TEXT);
        CREATE INDEX quality_serial ON quality (serial);
        CREATE INDEX quality_order ON quality (order_id);

        CREATE TABLE defects (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, task_id INTEGER NOT NULL,
            order_id TEXT NOT NULL, serial TEXT, op TEXT NOT NULL, reason TEXT NOT NULL,
            disposition TEXT NOT NULL, station TEXT, operator TEXT);
        CREATE INDEX defects_serial ON defects (serial);

        CREATE TABLE labels (
            label_id TEXT PRIMARY KEY, kind TEXT NOT NULL, order_id TEXT NOT NULL,
            serial TEXT, printer TEXT NOT NULL, station TEXT NOT NULL, zpl TEXT NOT NULL,
            ts TEXT NOT NULL);
        CREATE INDEX labels_order ON labels (order_id);

        CREATE TABLE alarms (
            alarm_id TEXT PRIMARY KEY, kind TEXT NOT NULL, source TEXT NOT NULL,
            severity TEXT NOT NULL, message TEXT NOT NULL, raised_at TEXT NOT NULL,
            cleared_at TEXT);

        -- The raw payload of every rejected message, kept for inspection (raw_ref).
        CREATE TABLE rejections (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, topic TEXT NOT NULL, order_id TEXT,
            errors TEXT NOT NULL, raw BLOB NOT NULL);

        -- machine_state: the station's PackML-like state (IDLE, EXECUTE, HELD), synthesised
        -- from its tasks until the machine drivers report real ones.
        CREATE TABLE sessions (
            station TEXT PRIMARY KEY, operator TEXT, login_at TEXT, task_id INTEGER,
            machine_state TEXT);
        """,
    ),
    (
        2,
        """
        -- Every time a label is sent to a printer device: the first print and each reprint
        -- (with its reason). A job stays 'queued' while the printer is away or out of paper;
        -- label.printed is reported when the printer has taken it.
        CREATE TABLE print_jobs (
            job_id TEXT PRIMARY KEY, label_id TEXT NOT NULL, printer TEXT NOT NULL,
            station TEXT NOT NULL, reason TEXT, status TEXT NOT NULL, attempts INTEGER
            NOT NULL DEFAULT 0, error TEXT, created_at TEXT NOT NULL, printed_at TEXT);
        CREATE INDEX print_jobs_queue ON print_jobs (printer, status, created_at);
        CREATE INDEX print_jobs_label ON print_jobs (label_id);
        """,
    ),
    (
        3,
        """
        -- A work order's status: open while units remain to be made, done when every unit
        -- that ships is made, cancelled with its order.
        ALTER TABLE work_orders ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
        UPDATE work_orders SET status = 'cancelled'
            WHERE order_id IN (SELECT order_id FROM orders WHERE status = 'cancelled');
        UPDATE work_orders SET status = 'done' WHERE status = 'open'
            AND EXISTS (SELECT 1 FROM units u WHERE u.wo_id = work_orders.wo_id
                        AND u.status = 'done')
            AND NOT EXISTS (SELECT 1 FROM units u WHERE u.wo_id = work_orders.wo_id
                            AND u.status = 'open');
        """,
    ),
    (
        4,
        """
        -- Who may do what (gateway/access). No secret is kept in clear: a password as its
        -- argon2id hash (a PHC string), a token, a terminal's credential or pairing code
        -- and a browser session's id as their SHA-256 (they are long random strings; a
        -- pairing code lives minutes and is tried a few times at most).

        -- People who are not operators: line lead, quality, maintenance, admin, viewer.
        -- There is no account until one is added; a disabled one is kept for the audit.
        CREATE TABLE users (
            username TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
            password_hash TEXT NOT NULL, created_at TEXT NOT NULL,
            password_set_at TEXT NOT NULL, disabled_at TEXT);

        -- Programs (the office, a monitoring system): a token is shown once.
        CREATE TABLE api_tokens (
            token_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT,
            last_used_at TEXT, revoked_at TEXT);

        -- A station's terminal: a one-time code (its hash, until it expires or is used),
        -- then a long-lived credential (its hash) until the terminal is unpaired.
        CREATE TABLE terminals (
            terminal_id TEXT PRIMARY KEY, station TEXT NOT NULL, name TEXT,
            code_sha256 TEXT, code_expires_at TEXT, secret_sha256 TEXT,
            created_at TEXT NOT NULL, paired_at TEXT, unpaired_at TEXT);
        CREATE INDEX terminals_station ON terminals (station);
        CREATE UNIQUE INDEX terminals_secret ON terminals (secret_sha256);

        -- A user's browser session (the station table "sessions" is a station's operator).
        CREATE TABLE web_sessions (
            id_sha256 TEXT PRIMARY KEY, username TEXT NOT NULL, csrf_token TEXT NOT NULL,
            created_at TEXT NOT NULL, expires_at TEXT NOT NULL, ended_at TEXT,
            client TEXT);

        -- The audit trail: written in the transaction of what it records, reported as
        -- audit.recorded, and never changed: the triggers refuse an update or a delete.
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, actor TEXT,
            role TEXT, action TEXT NOT NULL, target TEXT, station TEXT,
            outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'denied')), client TEXT,
            detail TEXT);
        CREATE INDEX audit_ts ON audit (ts);
        CREATE INDEX audit_actor ON audit (actor, ts);
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        """,
    ),
    (
        5,
        """
        -- An alarm acknowledged by a line lead: someone is on it (the board shows who).
        ALTER TABLE alarms ADD COLUMN acked_at TEXT;
        ALTER TABLE alarms ADD COLUMN acked_by TEXT;
        """,
    ),
    (
        6,
        """
        -- The first answer to each client-made action id (header Idempotency-Key), per
        -- client: a retry over flaky Wi-Fi is answered with it, not carried out twice.
        -- Written in the transaction of the action; kept two hours at least.
        CREATE TABLE replies (
            client TEXT NOT NULL, key TEXT NOT NULL, request_sha256 TEXT NOT NULL,
            answer TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (client, key));
        CREATE INDEX replies_at ON replies (at);
        """,
    ),
    (
        7,
        """
        -- order.progress (contract 1.1, gateway/orderbook/progress.py): what was last
        -- reported of each order (its stage, and the forecast the step rule compares a new
        -- plan's with), and when the order reached each stage (the order lookup's history).
        -- Written in the transaction of the change reported.
        CREATE TABLE order_progress (
            order_id TEXT PRIMARY KEY, stage TEXT NOT NULL, predicted TEXT,
            at_risk INTEGER NOT NULL DEFAULT 0, reasons TEXT NOT NULL DEFAULT '[]');
        CREATE TABLE order_stages (
            id INTEGER PRIMARY KEY, order_id TEXT NOT NULL, stage TEXT NOT NULL,
            at TEXT NOT NULL);
        CREATE INDEX order_stages_order ON order_stages (order_id, id);
        CREATE INDEX order_stages_stage ON order_stages (stage, at);
        -- Orders accepted before this version start from the stage their rows show,
        -- unreported: progress.py's definition of a stage, as of this version.
        INSERT INTO order_progress (order_id, stage)
        SELECT o.order_id, CASE
            WHEN o.status IN ('cancelled', 'completed', 'waiting_material') THEN o.status
            WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.order_id = o.order_id
                         AND t.serial IS NULL AND t.status != 'cancelled'
                         AND (t.started_at IS NOT NULL OR t.attempt > 1)) THEN 'packing'
            WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.order_id = o.order_id
                         AND (t.started_at IS NOT NULL OR t.attempt > 1)) THEN 'in_process'
            ELSE 'queued' END
        FROM orders o;
        -- The board's day: orders completed since the line's midnight.
        CREATE INDEX orders_completed ON orders (completed_at) WHERE completed_at IS NOT NULL;
        -- Customer service's lookup by a prefix of the customer's reference, the
        -- destination's name or the channel, in any case (ASCII): without these, a search
        -- that finds nothing reads every order ever accepted.
        CREATE INDEX orders_customer_ref ON orders (lower(json_extract(doc, '$.customer_ref')));
        CREATE INDEX orders_destination ON orders (lower(json_extract(doc, '$.destination.name')));
        CREATE INDEX orders_channel ON orders (lower(json_extract(doc, '$.channel')));
        """,
    ),
    (
        8,
        """
        -- An alarm's message as the line said it (gateway/i18n Text as JSON: the English
        -- template and its values), so the station API shows it in Chinese too; NULL for a
        -- message from outside the line (the hub's, a device's own words) and for alarms
        -- raised before, which read as their English message.
        ALTER TABLE alarms ADD COLUMN message_text TEXT;
        """,
    ),
    (
        9,
        """
        -- The numbers (gateway/numbers): the elements ISO 22400 KPIs are computed from,
        -- written in the transaction of what they record.
        -- Each station's state as intervals: the machine's own PackML state, or the one
        -- synthesised from its tasks (synthesised = 1); ``until`` NULL while it lasts.
        CREATE TABLE station_states (
            id INTEGER PRIMARY KEY, station TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,
            synthesised INTEGER NOT NULL, since TEXT NOT NULL, until TEXT);
        CREATE INDEX station_states_open ON station_states (station) WHERE until IS NULL;
        CREATE INDEX station_states_station ON station_states (station, since);
        -- Who was signed in where, and when (APAT, the operators' attendance).
        CREATE TABLE attendance (
            id INTEGER PRIMARY KEY, operator TEXT NOT NULL, station TEXT NOT NULL,
            since TEXT NOT NULL, until TEXT);
        CREATE INDEX attendance_open ON attendance (station) WHERE until IS NULL;
        -- No index on until: only retention's daily delete reads by it (one scan a day
        -- costs less than an index page written at every change of state).
        -- Every refused action or scan (nothing else of it is written): a wrong or
        -- missing item caught at packing is an error the line made and the packer stopped.
        CREATE TABLE refusals (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, station TEXT NOT NULL, operator TEXT,
            code TEXT NOT NULL, order_id TEXT, at_pack INTEGER NOT NULL);
        CREATE INDEX refusals_ts ON refusals (ts);
        -- What an attempt was measured against: its SKU, the routing's standard time for
        -- it (PRI), the setup value it ran with and the changeover time actually spent
        -- before it started (dispatched → started, when the setup value changed).
        ALTER TABLE attempts ADD COLUMN sku TEXT;
        ALTER TABLE attempts ADD COLUMN standard_s REAL;
        ALTER TABLE attempts ADD COLUMN setup TEXT;
        ALTER TABLE attempts ADD COLUMN dispatched_at TEXT;
        ALTER TABLE attempts ADD COLUMN setup_s REAL NOT NULL DEFAULT 0;
        CREATE INDEX attempts_ended ON attempts (ended_at);
        CREATE INDEX defects_ts ON defects (ts);
        CREATE INDEX quality_ts ON quality (ts);
        CREATE INDEX consumption_ts ON consumption (ts);
        CREATE INDEX units_completed ON units (completed_at) WHERE completed_at IS NOT NULL;
        CREATE INDEX orders_ship_by ON orders (ship_by);
        -- A closed period's elements (shift, day, week, month in the line's time zone),
        -- kept when the raw rows behind them are pruned: reports regenerate from these.
        CREATE TABLE rollups (
            kind TEXT NOT NULL, period_start TEXT NOT NULL, period_end TEXT NOT NULL,
            label TEXT NOT NULL, doc TEXT NOT NULL, computed_at TEXT NOT NULL,
            PRIMARY KEY (kind, period_start));
        -- What the plan in force when a period began expected of it (output against plan).
        CREATE TABLE period_plans (
            kind TEXT NOT NULL, period_start TEXT NOT NULL, period_end TEXT NOT NULL,
            units INTEGER NOT NULL, orders INTEGER NOT NULL, source TEXT NOT NULL,
            made_at TEXT NOT NULL, PRIMARY KEY (kind, period_start));
        -- The reports kept on the gateway (files under the data folder's reports/).
        CREATE TABLE reports (
            report_id TEXT PRIMARY KEY, kind TEXT NOT NULL, period_start TEXT NOT NULL,
            period_end TEXT NOT NULL, label TEXT NOT NULL, timezone TEXT NOT NULL,
            created_at TEXT NOT NULL, sha256 TEXT NOT NULL, summary TEXT NOT NULL,
            -- 1: made by another process (linegate report), its report.published not yet
            -- in the outbox: the gateway puts it there (only it hands out seq numbers).
            pending INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX reports_period ON reports (kind, period_start);
        CREATE INDEX reports_pending ON reports (report_id) WHERE pending = 1;
        -- order.costed, as reported (the report's cost by SKU reads these).
        CREATE TABLE order_costs (
            order_id TEXT PRIMARY KEY, costed_at TEXT NOT NULL, doc TEXT NOT NULL);
        CREATE INDEX order_costs_at ON order_costs (costed_at);
        """,
    ),
    (
        10,
        """
        -- Issue 15: pick requests to the warehouse, the parcel, alarms that find a person.
        -- [picks]
        -- Pick requests to the warehouse (material.requested, gateway/orderbook/picking.py):
        -- at most one open (requested) per station, material and lot ('' when not
        -- lot-tracked), revised in place; then arrived (scanned at the station) or
        -- withdrawn (qty 0). orders: the JSON list of the order ids it serves.
        CREATE TABLE pick_requests (
            request_id TEXT PRIMARY KEY, station TEXT NOT NULL, material TEXT NOT NULL,
            lot TEXT NOT NULL, revision INTEGER NOT NULL, qty REAL NOT NULL,
            uom TEXT NOT NULL, need_by TEXT NOT NULL, orders TEXT NOT NULL,
            state TEXT NOT NULL, requested_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            arrived_at TEXT);
        CREATE UNIQUE INDEX pick_requests_open ON pick_requests (station, material, lot)
            WHERE state = 'requested';
        CREATE INDEX pick_requests_station ON pick_requests (station, state);
        CREATE INDEX pick_requests_arrived ON pick_requests (arrived_at)
            WHERE arrived_at IS NOT NULL;
        -- What was delivered to a station and not consumed there yet; request_id: the
        -- request that arrived last.
        CREATE TABLE station_stock (
            station TEXT NOT NULL, material TEXT NOT NULL, lot TEXT NOT NULL,
            qty REAL NOT NULL, request_id TEXT NOT NULL,
            PRIMARY KEY (station, material, lot)) WITHOUT ROWID;
        -- [/picks]
        -- [parcels]
        -- [/parcels]
        -- [notifications]
        -- Each message gateway/alerts owes someone about an alarm: the alarm's raise
        -- (alarm_id, raised_at), the rule and level that chose whom, the channel, why
        -- (raised, escalated, handover at a shift change, cleared), the shift it was for,
        -- who (JSON array of contact names) and what (subject, body, written when it was
        -- decided); then its sending: pending until sent, retried at next_at, failed once
        -- given up, cancelled when acknowledged or cleared first. The key makes each
        -- (raise, rule, level, channel, purpose, shift) one message, however often the
        -- gateway restarts. done: its alarm is over and said so (kept [alarms] keep_days).
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY, alarm_id TEXT NOT NULL, raised_at TEXT NOT NULL,
            rule INTEGER NOT NULL, level INTEGER NOT NULL, channel TEXT NOT NULL,
            purpose TEXT NOT NULL, shift TEXT NOT NULL, recipients TEXT NOT NULL,
            subject TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL, last_error TEXT,
            created_at TEXT NOT NULL, sent_at TEXT, done INTEGER NOT NULL DEFAULT 0,
            UNIQUE (alarm_id, raised_at, rule, level, channel, purpose, shift));
        CREATE INDEX notifications_due ON notifications (state, next_at);
        CREATE INDEX notifications_open ON notifications (alarm_id) WHERE done = 0;
        -- [/notifications]
        SELECT 1;
        """,
    ),
)
