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


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, lines, rejected, line_orders, masterdata",
        _create(*v1.TABLES),
    ),
    Migration(2, "events.digest; rejected recorded once, with a count", _migration_2),
    Migration(3, "feed_orders, feed_outbox: the shops' orders, routed to lines", _migration_3),
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
