"""The feed's table: every order a shop sent, once per ``(order_id, revision)``, and where
it went. One transaction per order: the order's row, and its row in the line's orders feed
(``line_orders``), go in together or not at all.

Idempotent by ``(order_id, revision)`` and the sha256 of the order in canonical JSON: the
same again is "already taken" (its line named); other content under a revision already
taken is a conflict; a revision below one taken is stale. A new revision follows the order
to the line that has it. An order no line can make is kept (``gateway_id`` NULL, the
problem named) and routed again when it is sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, exists, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.contract import IN_CANCEL, IN_ORDERS, Cancel, Catalog, Order, topic_prefix
from office.feed.routing import Choice, choose_line
from office.store import Store, schema

__all__ = ["Ledger", "Outcome", "Outgoing", "Result"]

# The feed's advisory lock on PostgreSQL: two office instances taking orders at once give
# each line's feed one cursor after the other, and an order one line.
_FEED_LOCK = 0x66656564  # "feed"


class Result(StrEnum):
    TAKEN = "taken"
    ALREADY_TAKEN = "already taken"
    CONFLICT = "conflict"  # other content under a revision taken, or a stale revision
    INVALID = "invalid"
    UNROUTABLE = "unroutable"

    @property
    def status(self) -> int:
        return {
            Result.TAKEN: 200,
            Result.ALREADY_TAKEN: 200,
            Result.CONFLICT: 409,
        }.get(self, 422)


@dataclass(frozen=True)
class Outcome:
    result: Result
    order_id: str | None = None
    revision: int | None = None
    line: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"result": self.result.value}
        for key in ("order_id", "revision", "line", "reason"):
            value = getattr(self, key)
            if value is not None:
                found[key] = value
        return found


def _digest(doc: dict[str, Any]) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Outgoing:
    """A row of ``feed_outbox``: one message for one line's broker topic."""

    id: int
    topic: str
    payload: str


class Ledger:
    """Takes orders for the configured ``lines`` (gateway ids) into ``store``.

    ``publish``: the office has a broker ([mqtt]): each routed order (and each cancel) is
    also written to ``feed_outbox`` in the same transaction, for :mod:`office.feed.publish`;
    ``wake`` is set after each such commit."""

    def __init__(self, store: Store, lines: Sequence[str], publish: bool = False) -> None:
        self._store = store
        self._lines = tuple(lines)
        self.publish = publish
        self.wake = asyncio.Event()

    async def cancel(self, order_id: str, reason: str, now: datetime) -> str | None:
        """Queue ``in/cancel`` for the line that has the order; its line, or None when no
        line has it (never routed, or unknown)."""
        f = schema.feed_orders
        async with self._store.transaction() as conn:
            line = await conn.scalar(
                select(f.c.gateway_id)
                .where(f.c.order_id == order_id, f.c.gateway_id.is_not(None))
                .limit(1)
            )
            if line is None:
                return None
            payload = Cancel(order_id=order_id, reason=reason).model_dump_json()
            await _queue(conn, line, IN_CANCEL, payload, now)
        self.wake.set()
        return str(line)

    async def unpublished(self, limit: int = 100) -> list[Outgoing]:
        o = schema.feed_outbox
        async with self._store.transaction() as conn:
            rows = (
                await conn.execute(
                    select(o.c.id, o.c.topic, o.c.payload)
                    .where(o.c.published_at.is_(None))
                    .order_by(o.c.id)
                    .limit(limit)
                )
            ).all()
        return [Outgoing(row.id, row.topic, row.payload) for row in rows]

    async def mark_published(self, id_: int, now: datetime) -> None:
        o = schema.feed_outbox
        async with self._store.transaction() as conn:
            await conn.execute(
                update(o)
                .where(o.c.id == id_)
                .values(published_at=now.isoformat(timespec="microseconds"))
            )

    async def take(
        self, shop: str, order: Order, doc: dict[str, Any], named: str | None, now: datetime
    ) -> Outcome:
        """``doc``: the order as the shop sent it (extra fields kept), without the routing
        hint; ``named``: the line the shop asked for, if any."""
        digest = _digest(doc)
        f = schema.feed_orders
        async with self._store.transaction() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FEED_LOCK})
            rows = (
                await conn.execute(
                    select(f.c.revision, f.c.digest, f.c.gateway_id).where(
                        f.c.order_id == order.order_id
                    )
                )
            ).all()
            same = next((r for r in rows if r.revision == order.revision), None)
            newest = max((r.revision for r in rows), default=0)

            def outcome(result: Result, line: str | None, reason: str | None = None) -> Outcome:
                return Outcome(result, order.order_id, order.revision, line, reason)

            if same is not None and same.digest != digest:
                return outcome(
                    Result.CONFLICT,
                    same.gateway_id,
                    f"revision {order.revision} of {order.order_id} was taken with other "
                    "content: send a higher revision to change an order",
                )
            if same is not None and same.gateway_id is not None:
                return outcome(Result.ALREADY_TAKEN, same.gateway_id)
            if newest > order.revision:
                return outcome(
                    Result.CONFLICT,
                    next(r.gateway_id for r in rows if r.revision == newest),
                    f"revision {order.revision} of {order.order_id} is older than "
                    f"revision {newest}, already taken",
                )
            placed = next((r.gateway_id for r in rows if r.gateway_id is not None), None)
            if placed is not None:
                # A new revision goes where the order is: that line has its work.
                choice = Choice(placed)
            else:
                skus = {line.sku for line in order.lines}
                choice = choose_line(
                    skus, self._lines, await _catalogs(conn), await _loads(conn), named
                )
            cursor = None
            if choice.gateway_id is not None:
                cursor = await _append(conn, choice.gateway_id, doc)
                if self.publish:
                    # in/orders: one order object (hub-protocol.md), as it went in the feed.
                    await _queue(conn, choice.gateway_id, IN_ORDERS, json.dumps(doc), now)
            values = {
                "digest": digest,
                "body": json.dumps(doc),
                "shop": shop,
                "received_at": now.isoformat(timespec="microseconds"),
                "gateway_id": choice.gateway_id,
                "line_cursor": cursor,
                "problem": choice.problem,
            }
            if same is None:
                await conn.execute(
                    insert(f).values(order_id=order.order_id, revision=order.revision, **values)
                )
            else:
                await conn.execute(
                    update(f)
                    .where(f.c.order_id == order.order_id, f.c.revision == order.revision)
                    .values(**values)
                )
        if choice.gateway_id is None:
            return outcome(Result.UNROUTABLE, None, choice.problem)
        if self.publish:
            self.wake.set()
        return outcome(Result.TAKEN, choice.gateway_id)


async def _queue(
    conn: AsyncConnection, gateway_id: str, suffix: str, payload: str, now: datetime
) -> None:
    site, line = gateway_id.split("/")
    await conn.execute(
        insert(schema.feed_outbox).values(
            gateway_id=gateway_id,
            topic=topic_prefix(site, line) + suffix,
            payload=payload,
            created_at=now.isoformat(timespec="microseconds"),
        )
    )


async def _append(conn: AsyncConnection, gateway_id: str, doc: dict[str, Any]) -> int:
    o = schema.line_orders
    last = await conn.scalar(select(func.max(o.c.cursor)).where(o.c.gateway_id == gateway_id))
    cursor = (last or 0) + 1
    await conn.execute(insert(o).values(gateway_id=gateway_id, cursor=cursor, doc=json.dumps(doc)))
    return int(cursor)


async def _catalogs(conn: AsyncConnection) -> dict[str, frozenset[str]]:
    """Each line's makeable SKUs, from its catalog document; a catalog that does not read
    as one makes nothing (the line then takes no routed order)."""
    m = schema.masterdata
    rows = (await conn.execute(select(m.c.gateway_id, m.c.doc).where(m.c.kind == "catalog"))).all()
    found: dict[str, frozenset[str]] = {}
    for row in rows:
        try:
            catalog = Catalog.model_validate_json(row.doc)
        except ValidationError:
            continue
        found[row.gateway_id] = frozenset(sku.sku for sku in catalog.skus)
    return found


async def _loads(conn: AsyncConnection) -> dict[str, int]:
    """Orders routed to each line and not yet ``order.completed`` in its events."""
    f, e = schema.feed_orders, schema.events
    completed = exists().where(
        and_(
            e.c.gateway_id == f.c.gateway_id,
            e.c.order_id == f.c.order_id,
            e.c.type == "order.completed",
        )
    )
    rows = (
        await conn.execute(
            select(f.c.gateway_id, func.count(func.distinct(f.c.order_id)))
            .where(f.c.gateway_id.is_not(None), ~completed)
            .group_by(f.c.gateway_id)
        )
    ).all()
    return {row[0]: int(row[1]) for row in rows}
