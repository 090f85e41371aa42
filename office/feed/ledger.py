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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.contract import IN_CANCEL, IN_ORDERS, Cancel, Order, topic_prefix
from office.feed.lock import lock_feed
from office.feed.masterdata import publish_masterdata
from office.feed.routing import Choice, choose_line
from office.feed.weights import Board, SkuCache
from office.store import Store, schema

__all__ = ["Ledger", "Outcome", "Outgoing", "Result", "Waiting"]


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
    retain: bool = False


# Told in the order's transaction when an order is placed on a line (order_id, gateway_id,
# the order as the shop sent it, the shop, when): the lookup (office/answer) makes it
# findable by the customer's reference before its line has said anything.
Placed = Callable[[AsyncConnection, str, str, dict[str, Any], str, datetime], Awaitable[None]]


class Ledger:
    """Takes orders for the configured ``lines`` (gateway ids) into ``store``.

    ``publish``: the office has a broker ([mqtt]): each routed order (and each cancel) is
    also written to ``feed_outbox`` in the same transaction, for :mod:`office.feed.publish`;
    ``wake`` is set after each such commit."""

    def __init__(
        self,
        store: Store,
        lines: Sequence[str],
        publish: bool = False,
        placed: Sequence[Placed] = (),
    ) -> None:
        self._store = store
        self._lines = tuple(lines)
        self.publish = publish
        self.wake = asyncio.Event()
        self._placed = tuple(placed)
        self._skus: SkuCache = {}  # each catalog's SKUs, by its text

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
                    select(o.c.id, o.c.topic, o.c.payload, o.c.retain)
                    .where(o.c.published_at.is_(None))
                    .order_by(o.c.id)
                    .limit(limit)
                )
            ).all()
        return [Outgoing(row.id, row.topic, row.payload, bool(row.retain)) for row in rows]

    async def mark_published(self, ids: Sequence[int], now: datetime) -> None:
        """The broker acknowledged these rows: one commit for a window of them."""
        if not ids:
            return
        o = schema.feed_outbox
        async with self._store.transaction() as conn:
            await conn.execute(
                update(o)
                .where(o.c.id.in_(list(ids)))
                .values(published_at=now.isoformat(timespec="microseconds"))
            )

    async def _choose(
        self, conn: AsyncConnection, order: Order, named: str | None, board: Board
    ) -> Choice:
        skus = {line.sku for line in order.lines}
        return choose_line(skus, self._lines, board.catalogs, board.loads, named, board.forecasts)

    async def _place(
        self,
        conn: AsyncConnection,
        choice: Choice,
        doc: dict[str, Any],
        shop: str,
        now: datetime,
    ) -> int | None:
        """On the chosen line's feed (and its outbox, with a broker); its cursor."""
        if choice.gateway_id is None:
            return None
        cursor = await _append(conn, choice.gateway_id, doc)
        for told in self._placed:
            await told(conn, str(doc.get("order_id", "")), choice.gateway_id, doc, shop, now)
        if self.publish:
            # in/orders: one order object (hub-protocol.md), as it went in the feed.
            await _queue(conn, choice.gateway_id, IN_ORDERS, json.dumps(doc), now)
        return cursor

    async def reroute(self, conn: AsyncConnection, now: datetime) -> list[Outcome]:
        """Route again, in the caller's transaction, every order waiting for a line (its
        newest revision, no revision placed): after a catalog changed. What moved is
        answered as taken; the rest stays waiting with its problem brought up to date."""
        await lock_feed(conn)
        f = schema.feed_orders
        waiting = await _waiting(conn)
        if not waiting:
            return []
        board = await Board.read(conn, self._skus)
        moved: list[Outcome] = []
        for row in waiting:
            doc = json.loads(row.body)
            try:
                order = Order.model_validate(doc)
            except ValidationError:
                continue  # taken under an older model: left as it is, never a failure here
            choice = await self._choose(conn, order, row.named, board)
            cursor = await self._place(conn, choice, doc, row.shop, now)
            await conn.execute(
                update(f)
                .where(f.c.order_id == row.order_id, f.c.revision == row.revision)
                .values(gateway_id=choice.gateway_id, line_cursor=cursor, problem=choice.problem)
            )
            if choice.gateway_id is not None:
                board.loads[choice.gateway_id] = board.loads.get(choice.gateway_id, 0) + 1
                # Its end is unknown until the line forecasts it: by count from now on.
                board.forecasts.pop(choice.gateway_id, None)
                moved.append(Outcome(Result.TAKEN, row.order_id, row.revision, choice.gateway_id))
        return moved

    @property
    def lines(self) -> tuple[str, ...]:
        return self._lines

    async def put_masterdata(
        self, doc: dict[str, Any], lines: Sequence[str], now: datetime
    ) -> tuple[dict[str, bool], list[Outcome]]:
        """``doc`` as each of ``lines``' current document of its kind, in one transaction;
        after a catalog that changed, the waiting orders are routed again. Returns whether
        each line's document changed, and the orders that moved to a line."""
        async with self._store.transaction() as conn:
            changed = {
                line: await publish_masterdata(conn, line, doc, now, queue=self.publish)
                for line in lines
            }
            moved = (
                await self.reroute(conn, now)
                if doc.get("kind") == "catalog" and any(changed.values())
                else []
            )
        if self.publish and (any(changed.values()) or moved):
            self.wake.set()
        return changed, moved

    async def unroutable(self) -> list[Waiting]:
        """Orders no line can make yet (their newest revision, none placed), oldest first."""
        async with self._store.transaction() as conn:
            rows = await _waiting(conn)
        return [
            Waiting(r.order_id, r.revision, r.shop, r.received_at, r.problem or "", r.named)
            for r in rows
        ]

    async def take(
        self, shop: str, order: Order, doc: dict[str, Any], named: str | None, now: datetime
    ) -> Outcome:
        """``doc``: the order as the shop sent it (extra fields kept), without the routing
        hint; ``named``: the line the shop asked for, if any."""
        digest = _digest(doc)
        f = schema.feed_orders
        async with self._store.transaction() as conn:
            await lock_feed(conn)
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
                choice = await self._choose(conn, order, named, await Board.read(conn, self._skus))
            cursor = await self._place(conn, choice, doc, shop, now)
            values = {
                "digest": digest,
                "body": json.dumps(doc),
                "shop": shop,
                # UTC, as every stored time (the unanswered-order watch compares them).
                "received_at": now.astimezone(UTC).isoformat(timespec="microseconds"),
                "gateway_id": choice.gateway_id,
                "line_cursor": cursor,
                "problem": choice.problem,
                "named": named,
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


@dataclass(frozen=True)
class Waiting:
    """An order no line can make yet, and why."""

    order_id: str
    revision: int
    shop: str
    received_at: str
    problem: str
    named: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "revision": self.revision,
            "shop": self.shop,
            "received_at": self.received_at,
            "problem": self.problem,
            "line": self.named,
        }


async def _waiting(conn: AsyncConnection) -> Sequence[Any]:
    """feed_orders rows of the orders waiting for a line: the newest revision of each
    order none of whose revisions is placed."""
    f = schema.feed_orders
    g = f.alias("other")
    placed = exists().where(and_(g.c.order_id == f.c.order_id, g.c.gateway_id.is_not(None)))
    newer = exists().where(and_(g.c.order_id == f.c.order_id, g.c.revision > f.c.revision))
    return (
        await conn.execute(
            select(
                f.c.order_id,
                f.c.revision,
                f.c.body,
                f.c.shop,
                f.c.received_at,
                f.c.problem,
                f.c.named,
            )
            .where(f.c.gateway_id.is_(None), ~placed, ~newer)
            .order_by(f.c.received_at, f.c.order_id)
        )
    ).all()
