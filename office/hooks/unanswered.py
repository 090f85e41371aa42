"""A line that never answers: an order fed to a line that got neither ``order.accepted``
nor ``order.rejected`` from it within ``[feed] answer_within_s`` is recorded
(``hook_unanswered``, listed by ``GET /v1/hooks/failed``) and reported to its shop's hooks
as ``order.unanswered``, once.

Each check reads the orders fed since the last one looked (``hook_watch``), through the
index on ``feed_orders.received_at``; the first check after an upgrade looks one window
back. Several office instances may check at once: the row in ``hook_unanswered`` goes in
once (its key), and only the instance that put it there queues the report.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from office.hooks.outbox import NewRow, enqueue, insert_for, iso
from office.hooks.spec import UNANSWERED, HookSpec
from office.store import Store, StoreUnavailable, schema

__all__ = ["Unanswered", "UnansweredWatch", "unanswered"]

log = logging.getLogger(__name__)
_WATCH = "unanswered"
_ANSWERS = ("order.accepted", "order.rejected")


@dataclass(frozen=True)
class Unanswered:
    order_id: str
    revision: int
    gateway_id: str
    shop: str
    fed_at: str
    found_at: str


class UnansweredWatch:
    def __init__(
        self,
        store: Store,
        hooks: Sequence[HookSpec],
        now: Callable[[], datetime],
        answer_within_s: float = 600.0,
        check_every_s: float = 30.0,
        wake: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._hooks = tuple(hooks)
        self._now = now
        self._within = timedelta(seconds=answer_within_s)
        self._every = check_every_s
        self._wake = wake

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            try:
                await self.check()
            except StoreUnavailable as exc:
                log.warning("unanswered orders: %s; checking again", exc)
            await asyncio.sleep(self._every)

    async def check(self) -> list[Unanswered]:
        """Record and report the orders found unanswered now; the ones this call found."""
        now = self._now()
        cutoff = now - self._within
        f, e, w = schema.feed_orders, schema.events, schema.hook_watch
        async with self._store.transaction() as conn:
            through = await conn.scalar(select(w.c.through).where(w.c.name == _WATCH))
            since = through or iso(cutoff - self._within)
            answered = exists().where(
                and_(
                    e.c.order_id == f.c.order_id,
                    e.c.gateway_id == f.c.gateway_id,
                    e.c.type.in_(_ANSWERS),
                )
            )
            rows = (
                await conn.execute(
                    select(f.c.order_id, f.c.revision, f.c.gateway_id, f.c.shop, f.c.received_at)
                    .where(
                        f.c.gateway_id.is_not(None),
                        f.c.received_at > since,
                        f.c.received_at <= iso(cutoff),
                        ~answered,
                    )
                    .order_by(f.c.received_at)
                )
            ).all()
            latest = {row.order_id: row for row in rows}  # the newest revision fed
            found = []
            for row in latest.values():
                item = Unanswered(
                    row.order_id, row.revision, row.gateway_id, row.shop, row.received_at, iso(now)
                )
                if await self._record(conn, item):
                    found.append(item)
            stmt = insert_for(conn, w).values(name=_WATCH, through=iso(cutoff))
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[w.c.name], set_={"through": stmt.excluded.through}
                )
            )
        for item in found:
            log.warning(
                "order %s fed to %s at %s: no order.accepted nor order.rejected within %g s",
                item.order_id, item.gateway_id, item.fed_at, self._within.total_seconds(),
            )  # fmt: skip
        if found and self._wake is not None:
            self._wake.set()
        return found

    async def _record(self, conn: AsyncConnection, item: Unanswered) -> bool:
        u = schema.hook_unanswered
        stmt = insert_for(conn, u).values(
            order_id=item.order_id,
            revision=item.revision,
            gateway_id=item.gateway_id,
            shop=item.shop,
            fed_at=item.fed_at,
            found_at=item.found_at,
        )
        inserted = await conn.scalar(stmt.on_conflict_do_nothing().returning(u.c.order_id))
        if inserted is None:
            return False  # recorded before (another instance, another revision)
        body = json.dumps(
            {
                "v": 1,
                "type": UNANSWERED,
                "gateway_id": item.gateway_id,
                "order_id": item.order_id,
                "ts": item.found_at,
                "data": {
                    "revision": item.revision,
                    "shop": item.shop,
                    "fed_at": item.fed_at,
                    "answer_within_s": self._within.total_seconds(),
                },
            }
        )
        rows = [
            NewRow(hook.name, item.gateway_id, f"{UNANSWERED}:{item.order_id}", UNANSWERED,
                   item.order_id, body)
            for hook in self._hooks
            if hook.wants(UNANSWERED, item.gateway_id) and hook.shop in (None, item.shop)
        ]  # fmt: skip
        await enqueue(conn, rows, self._now())
        return True


async def unanswered(conn: AsyncConnection, limit: int = 200) -> list[Unanswered]:
    """The orders found unanswered, newest first."""
    u = schema.hook_unanswered
    rows = (
        await conn.execute(select(u).order_by(u.c.found_at.desc(), u.c.order_id).limit(limit))
    ).all()
    return [
        Unanswered(r.order_id, r.revision, r.gateway_id, r.shop, r.fed_at, r.found_at) for r in rows
    ]
