"""The tables as migration 1 created them, frozen: a migration is written once, so it must
not build from :mod:`office.store.schema`, which follows the newest migration."""

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

__all__ = ["TABLES"]

_metadata = MetaData()
_Id = BigInteger().with_variant(Integer(), "sqlite")

_events = Table(
    "events",
    _metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(100), nullable=False),
    Column("ts", String(40), nullable=False),
    Column("order_id", String(200)),
    Column("body", Text, nullable=False),
    Column("received_at", String(40), nullable=False),
    Column("via", String(8), nullable=False),
    PrimaryKeyConstraint("gateway_id", "seq"),
)
Index("events_order", _events.c.order_id)

_lines = Table(
    "lines",
    _metadata,
    Column("gateway_id", String(65), primary_key=True),
    Column("held_through", BigInteger, nullable=False),
    Column("last_seen", String(40)),
    Column("status", Text),
)

_rejected = Table(
    "rejected",
    _metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("via", String(8), nullable=False),
    Column("claimed_gateway_id", String(200)),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
)

_line_orders = Table(
    "line_orders",
    _metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("doc", Text, nullable=False),
    PrimaryKeyConstraint("gateway_id", "cursor"),
)

_masterdata = Table(
    "masterdata",
    _metadata,
    Column("gateway_id", String(65), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("doc", Text, nullable=False),
    PrimaryKeyConstraint("gateway_id", "kind"),
)

TABLES: tuple[Table, ...] = (_events, _lines, _rejected, _line_orders, _masterdata)
