"""Numbered migrations, applied the same way on SQLite and PostgreSQL.

Each migration is written once, in SQLAlchemy Core; ``schema_migrations`` says which ran.
Several office instances may start at once against one PostgreSQL: the first takes a
transaction-scoped advisory lock, the others wait and then find the work done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)

from office.store import schema, v1

__all__ = ["MIGRATIONS", "Migration", "migrate"]

_LOCK_KEY = 0x6C696E65  # "line": the office's advisory lock for migrating


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _create(*tables: Table) -> Callable[[Connection], None]:
    def apply(conn: Connection) -> None:
        for table in tables:
            table.create(conn)  # with its indexes

    return apply


def _migration_2(conn: Connection) -> None:
    # Plain DDL that both databases take; the indexes as schema.py names them.
    for statement in (
        "ALTER TABLE events ADD COLUMN digest VARCHAR(64)",
        "ALTER TABLE rejected ADD COLUMN fingerprint VARCHAR(64)",
        "ALTER TABLE rejected ADD COLUMN times BIGINT NOT NULL DEFAULT 1",
        "ALTER TABLE rejected ADD COLUMN last_at VARCHAR(40)",
        "UPDATE rejected SET last_at = at",
        "CREATE UNIQUE INDEX rejected_fingerprint ON rejected (fingerprint)",
        "CREATE INDEX rejected_last_at ON rejected (last_at)",
    ):
        conn.execute(text(statement))


def _migration_3(conn: Connection) -> None:
    # Frozen here, not built from schema.py (which follows the newest migration).
    frozen = MetaData()
    big_id = BigInteger().with_variant(Integer(), "sqlite")
    orders = Table(
        "feed_orders",
        frozen,
        Column("order_id", String(64), nullable=False),
        Column("revision", BigInteger, nullable=False),
        Column("digest", String(64), nullable=False),
        Column("body", Text, nullable=False),
        Column("shop", String(64), nullable=False),
        Column("received_at", String(40), nullable=False),
        Column("gateway_id", String(65)),
        Column("line_cursor", BigInteger),
        Column("problem", Text),
        PrimaryKeyConstraint("order_id", "revision"),
    )
    Index("feed_orders_line", orders.c.gateway_id)
    outbox = Table(
        "feed_outbox",
        frozen,
        Column("id", big_id, primary_key=True, autoincrement=True),
        Column("gateway_id", String(65), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("published_at", String(40)),
    )
    Index("feed_outbox_unpublished", outbox.c.published_at, outbox.c.id)
    frozen.create_all(conn)


def _migration_4(conn: Connection) -> None:
    # Master data goes out retained (a line that connects later still gets it); orders and
    # cancels do not. Plain DDL both databases take.
    false = "false" if conn.dialect.name == "postgresql" else "0"
    conn.execute(
        text(f"ALTER TABLE feed_outbox ADD COLUMN retain BOOLEAN NOT NULL DEFAULT {false}")
    )
    # The line a shop named for an order no line could make yet: kept, so routing it
    # again (when a catalog arrives) honours it.
    conn.execute(text("ALTER TABLE feed_orders ADD COLUMN named VARCHAR(65)"))


def _migration_5(conn: Connection) -> None:
    frozen = MetaData()
    big_id = BigInteger().with_variant(Integer(), "sqlite")
    audit = Table(
        "audit",
        frozen,
        Column("id", big_id, primary_key=True, autoincrement=True),
        Column("at", String(40), nullable=False),
        Column("actor", String(200)),
        Column("role", String(16)),
        Column("action", String(200), nullable=False),
        Column("target", Text, nullable=False),
        Column("outcome", String(8), nullable=False),
        Column("client", String(64)),
    )
    Index("audit_at", audit.c.at)
    Table(
        "sessions",
        frozen,
        Column("digest", String(64), primary_key=True),
        Column("name", String(64), nullable=False),
        Column("role", String(16), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("expires_at", String(40), nullable=False),
    )
    frozen.create_all(conn)


def _migration_6(conn: Connection) -> None:
    # Frozen tables and the backfill live with the view (office/answer/orders_view.py);
    # imported here, not at the top: office.answer imports the store.
    from office.answer.orders_view import migration_6

    migration_6(conn)


def _migration_7(conn: Connection) -> None:
    # The board's and reports' views, frozen here; then filled from the events already
    # stored (an upgrade), as the projector would have.
    frozen = MetaData()
    alarms = Table(
        "board_alarms",
        frozen,
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

    minutes = Table(
        "board_minutes",
        frozen,
        Column("gateway_id", String(65), nullable=False),
        Column("minute", String(40), nullable=False),  # 2026-11-11T02:07 (UTC)
        Column("units", BigInteger, nullable=False),
        Column("orders", BigInteger, nullable=False),
        PrimaryKeyConstraint("gateway_id", "minute"),
    )

    orders = Table(
        "board_orders",
        frozen,
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
    Index("board_orders_completed", orders.c.completed_at)

    kpis = Table(
        "board_kpis",
        frozen,
        Column("gateway_id", String(65), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("period_start", String(40), nullable=False),
        Column("period_end", String(40), nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("doc", Text, nullable=False),
        PrimaryKeyConstraint("gateway_id", "kind", "period_start"),
    )

    reports = Table(
        "board_reports",
        frozen,
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
    Index("board_reports_period", reports.c.kind, reports.c.period_start)
    for table in (alarms, minutes, orders, kpis, reports):
        table.create(conn)
    # Here, not at the top: office.answer imports the store.
    from office.answer.board_views import backfill

    backfill(conn)


def _migration_8(conn: Connection) -> None:
    # The webhooks' outbox (office/hooks), frozen here. No backfill: a hook sends what is
    # stored after it is configured, never the history at the first start.
    frozen = MetaData()
    big_id = BigInteger().with_variant(Integer(), "sqlite")
    outbox = Table(
        "hook_outbox",
        frozen,
        Column("id", big_id, primary_key=True, autoincrement=True),
        Column("hook", String(64), nullable=False),
        Column("stream", String(65), nullable=False),
        Column("key", String(200), nullable=False),
        Column("type", String(100), nullable=False),
        Column("order_id", String(200)),
        Column("body", Text, nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("state", String(8), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_at", String(40), nullable=False),
        Column("lease_until", String(40)),
        Column("last_status", Integer),
        Column("last_error", Text),
        Column("finished_at", String(40)),
    )
    Index("hook_outbox_key", outbox.c.hook, outbox.c.key, unique=True)
    Index("hook_outbox_head", outbox.c.hook, outbox.c.stream, outbox.c.state, outbox.c.id)
    Index("hook_outbox_due", outbox.c.state, outbox.c.next_at)
    Table(
        "hook_unanswered",
        frozen,
        Column("order_id", String(64), primary_key=True),
        Column("revision", BigInteger, nullable=False),
        Column("gateway_id", String(65), nullable=False),
        Column("shop", String(64), nullable=False),
        Column("fed_at", String(40), nullable=False),
        Column("found_at", String(40), nullable=False),
    )
    Table(
        "hook_watch",
        frozen,
        Column("name", String(32), primary_key=True),
        Column("through", String(40), nullable=False),
    )
    frozen.create_all(conn)
    conn.execute(text("CREATE INDEX hooks_feed_orders_received ON feed_orders (received_at)"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, lines, rejected, line_orders, masterdata",
        _create(*v1.TABLES),
    ),
    Migration(2, "events.digest; rejected recorded once, with a count", _migration_2),
    Migration(3, "feed_orders, feed_outbox: the shops' orders, routed to lines", _migration_3),
    Migration(4, "feed_outbox.retain, feed_orders.named: master data, routing again", _migration_4),
    Migration(5, "audit, sessions: who signed in, who was refused", _migration_5),
    Migration(6, "order_view, order_trace: customer service's lookup", _migration_6),
    Migration(7, "board_*: the site board's and reports' views of the events", _migration_7),
    Migration(8, "hook_outbox, hook_unanswered, hook_watch: the webhooks", _migration_8),
)


def migrate(conn: Connection, now: str) -> list[int]:
    """Apply what has not run yet, in one transaction (the caller's); returns the versions."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    schema.schema_migrations.create(conn, checkfirst=True)
    done = set(conn.scalars(select(schema.schema_migrations.c.version)))
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        migration.apply(conn)
        conn.execute(
            insert(schema.schema_migrations).values(
                version=migration.version, name=migration.name, applied_at=now
            )
        )
        applied.append(migration.version)
    return applied
