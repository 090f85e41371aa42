"""The tables as the migrations leave them, in SQLAlchemy Core: one definition for SQLite
and PostgreSQL. A migration never builds from here (this file follows the newest one):
migration 1's tables are frozen in :mod:`office.store.v1`.

Times are RFC 3339 text (what the wire carries; sorts right, the same on both databases);
JSON documents are text, kept as they came.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

__all__ = [
    "audit",
    "board_alarms",
    "board_kpis",
    "board_minutes",
    "board_orders",
    "board_reports",
    "events",
    "feed_orders",
    "feed_outbox",
    "hook_outbox",
    "hook_unanswered",
    "hook_watch",
    "line_orders",
    "lines",
    "masterdata",
    "metadata",
    "order_trace",
    "order_view",
    "rejected",
    "schema_migrations",
    "sessions",
]

metadata = MetaData()

# SQLite makes an INTEGER PRIMARY KEY an alias of its rowid (autoincrement); BigInteger
# elsewhere.
_Id = BigInteger().with_variant(Integer(), "sqlite")

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", String(40), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(100), nullable=False),
    Column("ts", String(40), nullable=False),
    Column("order_id", String(200)),
    Column("body", Text, nullable=False),
    Column("received_at", String(40), nullable=False),
    Column("via", String(8), nullable=False),
    # sha256 of the body in canonical JSON (migration 2; NULL for rows stored before it):
    # tells a redelivery from another event sent with a seq already held.
    Column("digest", String(64)),
    PrimaryKeyConstraint("gateway_id", "seq"),
)
Index("events_order", events.c.order_id)

lines = Table(
    "lines",
    metadata,
    Column("gateway_id", String(65), primary_key=True),
    # Every seq up to this one is stored (what HTTP answers as acked_through).
    Column("held_through", BigInteger, nullable=False),
    Column("last_seen", String(40)),
    Column("status", Text),
)

rejected = Table(
    "rejected",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("via", String(8), nullable=False),
    Column("claimed_gateway_id", String(200)),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),  # the start of it, up to a bound
    Column("size", BigInteger, nullable=False),
    # Migration 2: one row per (via, claimed gateway, reason, payload) however often it is
    # sent again (a retried batch); NULL for rows recorded before it.
    Column("fingerprint", String(64)),
    Column("times", BigInteger, nullable=False, server_default="1"),
    Column("last_at", String(40)),
)
Index("rejected_fingerprint", rejected.c.fingerprint, unique=True)
Index("rejected_last_at", rejected.c.last_at)

line_orders = Table(
    "line_orders",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("doc", Text, nullable=False),
    PrimaryKeyConstraint("gateway_id", "cursor"),
)

masterdata = Table(
    "masterdata",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("doc", Text, nullable=False),
    PrimaryKeyConstraint("gateway_id", "kind"),
)

# Migration 3: every order a shop sent, once per (order_id, revision), kept as it came;
# gateway_id NULL while no line can make it (kept, never dropped: routed again when sent again).
feed_orders = Table(
    "feed_orders",
    metadata,
    Column("order_id", String(64), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("shop", String(64), nullable=False),
    Column("received_at", String(40), nullable=False),
    Column("gateway_id", String(65)),
    Column("line_cursor", BigInteger),  # its row in line_orders
    Column("problem", Text),  # why no line takes it (gateway_id NULL)
    Column("named", String(65)),  # migration 4: the line the shop asked for, if any
    PrimaryKeyConstraint("order_id", "revision"),
)
Index("feed_orders_line", feed_orders.c.gateway_id)

# Migration 3: what the feed publishes to the lines over MQTT (in/orders, in/cancel), written
# in the order's transaction and marked once the broker acknowledged it (PUBACK).
feed_outbox = Table(
    "feed_outbox",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("gateway_id", String(65), nullable=False),
    Column("topic", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("published_at", String(40)),
    # Migration 4: published retained (master data: catalog, stock).
    Column("retain", Boolean, nullable=False, server_default=false()),
)
Index("feed_outbox_unpublished", feed_outbox.c.published_at, feed_outbox.c.id)

# Migration 5: every sign-in (also failed), sign-out, refused request and privileged action.
audit = Table(
    "audit",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("actor", String(200)),  # None: nobody known (no or a wrong token)
    Column("role", String(16)),
    Column("action", String(200), nullable=False),
    Column("target", Text, nullable=False),
    Column("outcome", String(8), nullable=False),  # ok | denied
    Column("client", String(64)),
)
Index("audit_at", audit.c.at)

# Migration 5: a signed-in person's session, by the sha256 of its cookie (a copy of the
# database does not sign anyone in); in the store, so every office instance knows it.
sessions = Table(
    "sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40), nullable=False),
)


# Migration 7: the site board's and reports' views of the lines' events (projectors,
# office/answer/board_views.py). An alarm is open while its last raise (raised_seq) is
# newer than its last clear (cleared_seq): events may arrive out of seq order.
board_alarms = Table(
    "board_alarms",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("alarm_id", String(200), nullable=False),
    Column("raised_seq", BigInteger),
    Column("cleared_seq", BigInteger),
    Column("severity", String(32)),
    Column("kind", String(100)),
    Column("source", String(200)),
    Column("message", Text),
    Column("since", String(40)),
    PrimaryKeyConstraint("gateway_id", "alarm_id"),
)

# Migration 7: units and orders completed per line per UTC minute (throughput).
board_minutes = Table(
    "board_minutes",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("minute", String(40), nullable=False),  # 2026-11-11T02:07 (UTC)
    Column("units", BigInteger, nullable=False),
    Column("orders", BigInteger, nullable=False),
    PrimaryKeyConstraint("gateway_id", "minute"),
)

# Migration 7: each order's OTD inputs and WIP state on its line (times in UTC).
board_orders = Table(
    "board_orders",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("order_id", String(200), nullable=False),
    Column("ship_by", String(40)),
    Column("ship_by_seq", BigInteger),  # the event that said it (the newest wins)
    Column("accepted_at", String(40)),
    Column("completed_at", String(40)),
    Column("cancelled_at", String(40)),
    Column("cost_total", Float),
    Column("currency", String(8)),
    PrimaryKeyConstraint("gateway_id", "order_id"),
)
Index("board_orders_completed", board_orders.c.completed_at)

# Migration 7: each line's kpi.snapshot per closed period (shift, daily, weekly, monthly),
# and ("latest") the newest one of any kind.
board_kpis = Table(
    "board_kpis",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("period_start", String(40), nullable=False),
    Column("period_end", String(40), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("doc", Text, nullable=False),
    PrimaryKeyConstraint("gateway_id", "kind", "period_start"),
)

# Migration 7: the lines' report.published index.
board_reports = Table(
    "board_reports",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("report_id", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("period_start", String(40), nullable=False),
    Column("period_end", String(40), nullable=False),
    Column("timezone", String(64)),
    Column("label", String(100)),
    Column("summary", Text, nullable=False),
    Column("url", Text),
    Column("sha256", String(64)),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("gateway_id", "report_id"),
)
Index("board_reports_period", board_reports.c.kind, board_reports.c.period_start)

# Migration 6: customer service's view of every order on every line (office/answer/orders_view.py
# keeps it, a projector): one row per (order_id, gateway_id), each part written by the seq
# of the event that set it, so an older event arriving late never overwrites a newer one.
order_view = Table(
    "order_view",
    metadata,
    Column("order_id", String(200), nullable=False),
    Column("gateway_id", String(65), nullable=False),
    Column("customer_ref", String(200)),  # what the shop sent (feed_orders.body), if it fed it
    Column("channel", String(64)),
    Column("shop", String(64)),
    Column("first_at", String(40), nullable=False),  # UTC: newest first in a search
    Column("last_at", String(40), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("revision", BigInteger),
    Column("units", Integer),
    Column("ship_by", String(40)),
    Column("lines", Text),  # JSON: the work orders [{line_no, sku, qty}]
    Column("accepted_seq", BigInteger),
    Column("accepted_at", String(40)),
    Column("rejected_seq", BigInteger),
    Column("rejected_at", String(40)),
    Column("errors", Text),  # JSON: [{code, field, message}]
    Column("cancelled_seq", BigInteger),
    Column("cancelled_at", String(40)),
    Column("cancel_reason", Text),
    Column("completed_seq", BigInteger),
    Column("completed_at", String(40)),
    Column("parcel_units", Text),  # JSON: serials
    Column("weight_g", Float),
    Column("label_id", String(200)),
    Column("containers", Text),  # JSON: [{material, qty}]
    Column("progress_seq", BigInteger),
    Column("progress_at", String(40)),
    Column("stage", String(32)),
    Column("units_total", Integer),
    Column("units_done", Integer),
    Column("predicted_completion", String(40)),
    Column("at_risk", Boolean),
    Column("reasons", Text),  # JSON: [text]
    Column("current", Text),  # JSON: [{serial, op, station}]
    Column("costed_seq", BigInteger),
    Column("cost", Text),  # JSON: order.costed's data
    PrimaryKeyConstraint("order_id", "gateway_id"),
)
Index(
    "order_view_customer_ref",
    order_view.c.customer_ref,
    postgresql_ops={"customer_ref": "text_pattern_ops"},
)
Index("order_view_first_at", order_view.c.first_at)
# An id prefix on PostgreSQL takes LIKE 'x%' through this index whatever the collation.
Index(
    "order_view_id_prefix",
    order_view.c.order_id,
    postgresql_ops={"order_id": "text_pattern_ops"},
)

# Migration 6: what happened to each unit of an order: one row per task.completed,
# material.consumed, quality.checked, defect.recorded, unit.completed (kind).
order_trace = Table(
    "order_trace",
    metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("order_id", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", String(40), nullable=False),
    Column("serial", String(200)),
    Column("task_id", String(200)),
    Column("op", String(200)),
    Column("station", String(200)),
    Column("operator", String(200)),
    Column("machine", String(200)),
    Column("sku", String(200)),
    Column("line_no", Integer),
    Column("lots", Text),  # JSON: [{material, lot, qty}]
    Column("passed", Boolean),
    Column("detail", Text),  # the check's name, the defect's reason
    Column("disposition", String(16)),
    PrimaryKeyConstraint("gateway_id", "seq"),
)
Index("order_trace_order", order_trace.c.order_id)

# Migration 8: what the webhooks send (office/hooks), written by a projector in the
# transaction that stored the event; once per (hook, key), sent in id order per (hook, stream).
hook_outbox = Table(
    "hook_outbox",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("hook", String(64), nullable=False),
    Column("stream", String(65), nullable=False),  # the line: its rows go out in order
    Column("key", String(200), nullable=False),  # the idempotency key the receiver sees
    Column("type", String(100), nullable=False),
    Column("order_id", String(200)),
    Column("body", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("state", String(8), nullable=False),  # pending, done, failed
    Column("attempts", Integer, nullable=False),
    Column("next_at", String(40), nullable=False),
    Column("lease_until", String(40)),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("finished_at", String(40)),
)
Index("hook_outbox_key", hook_outbox.c.hook, hook_outbox.c.key, unique=True)
Index(
    "hook_outbox_head",
    hook_outbox.c.hook,
    hook_outbox.c.stream,
    hook_outbox.c.state,
    hook_outbox.c.id,
)
Index("hook_outbox_due", hook_outbox.c.state, hook_outbox.c.next_at)
# Migration 8: the unanswered watch reads the orders fed since it last looked.
Index("hooks_feed_orders_received", feed_orders.c.received_at)

# Migration 8: orders fed to a line that answered neither order.accepted nor order.rejected
# in time: reported once.
hook_unanswered = Table(
    "hook_unanswered",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("revision", BigInteger, nullable=False),
    Column("gateway_id", String(65), nullable=False),
    Column("shop", String(64), nullable=False),
    Column("fed_at", String(40), nullable=False),
    Column("found_at", String(40), nullable=False),
)

# Migration 8: how far each watch has looked (the unanswered watch: fed up to this time).
hook_watch = Table(
    "hook_watch",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("through", String(40), nullable=False),
)
