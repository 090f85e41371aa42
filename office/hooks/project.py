"""The projector that fills the webhooks' outbox, in the transaction that stored the events
(office.store.Projector): an event is queued for a hook exactly when it is stored, whichever
office instance stored it, and never twice.

A shop's hook gets the events of the orders that shop sent (``feed_orders.shop``, on the
line the order was fed to); the line's own orders (not fed by the office) go to no shop.
An event a hook cannot place (no order id, an order the office never fed) is skipped, never
an error: an error here would refuse the line's events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.contract import Envelope
from office.hooks.outbox import NewRow, enqueue
from office.hooks.spec import HookSpec
from office.store import schema

__all__ = ["HookProjector"]


class HookProjector:
    """Pass to ``Store.open(..., projectors=[projector])``; ``wake`` is set when it queued."""

    def __init__(self, hooks: Sequence[HookSpec], now: Callable[[], datetime]) -> None:
        self._hooks = tuple(hooks)
        self._now = now
        self.wake = asyncio.Event()
        self._queued = False

    def committed(self) -> None:
        """For ``Store.after_commit``: wake the sender once the rows it is to send are
        visible (setting ``wake`` in the transaction woke it too early: it found nothing
        and waited for its next poll)."""
        if self._queued:
            self._queued = False
            self.wake.set()

    async def __call__(
        self, conn: AsyncConnection, gateway_id: str, envelopes: Sequence[Envelope]
    ) -> None:
        wanted = [
            (hook, env)
            for env in envelopes
            for hook in self._hooks
            if hook.wants(env.type, gateway_id)
        ]
        if not wanted:
            return
        shops = await self._shops(
            conn, gateway_id, {e.order_id for h, e in wanted if h.shop and e.order_id}
        )
        bodies = await self._bodies(conn, gateway_id, sorted({e.seq for _, e in wanted}))
        rows = [
            NewRow(
                hook=hook.name,
                stream=gateway_id,
                key=f"{gateway_id}:{env.seq}",
                type=env.type,
                order_id=env.order_id,
                body=bodies.get(env.seq) or env.model_dump_json(),
            )
            for hook, env in wanted
            if hook.shop is None
            or (env.order_id is not None and shops.get(env.order_id) == hook.shop)
        ]
        await enqueue(conn, rows, self._now())
        if rows:
            self._queued = True  # woken after the commit (committed()); it also polls

    async def _bodies(
        self, conn: AsyncConnection, gateway_id: str, seqs: list[int]
    ) -> dict[int, str]:
        """The events as the gateway sent them (stored just now, in this transaction): a
        receiver gets the envelope to the byte, extra fields and all."""
        e = schema.events
        rows = await conn.execute(
            select(e.c.seq, e.c.body).where(e.c.gateway_id == gateway_id, e.c.seq.in_(seqs))
        )
        return {int(r.seq): str(r.body) for r in rows}

    async def _shops(
        self, conn: AsyncConnection, gateway_id: str, order_ids: set[str]
    ) -> dict[str, str]:
        """order_id -> the shop that sent it, for the orders fed to this line."""
        if not order_ids:
            return {}
        f = schema.feed_orders
        rows = await conn.execute(
            select(f.c.order_id, f.c.shop).where(
                f.c.gateway_id == gateway_id, f.c.order_id.in_(sorted(order_ids))
            )
        )
        return {str(r.order_id): str(r.shop) for r in rows}
