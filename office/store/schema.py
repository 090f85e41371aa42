"""The tables as the migrations leave them, in SQLAlchemy Core: one definition for SQLite
and PostgreSQL. A migration never builds from here (this file follows the newest one):
migration 1's tables are frozen in :mod:`office.store.v1`.

Times are RFC 3339 text (what the wire carries; sorts right, the same on both databases);
JSON documents are text, kept as they came.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = [
    "events",
    "feed_orders",
    "feed_outbox",
    "line_orders",
    "lines",
    "masterdata",
    "metadata",
    "rejected",
    "schema_migrations",
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
)
Index("feed_outbox_unpublished", feed_outbox.c.published_at, feed_outbox.c.id)
