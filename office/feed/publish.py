"""Publish the feed's outbox to the lines' broker topics, QoS 1, after the commit.

A row is marked published once the broker acknowledged it (PUBACK); a publish that fails
(broker away, no PUBACK in time) leaves the row for the next round, so an order is never
lost and may reach its line twice (the gateway ignores an order revision it already has).
Rows go one at a time in their order, so each line sees its orders and cancels in order.

paho runs its network loop in its own thread (``loop_start``): this end only publishes, and
a message's PUBACK is waited for in a worker thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from office.feed.ledger import Ledger
from office.store import StoreUnavailable

__all__ = ["Publisher", "PublisherSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublisherSettings:
    host: str
    port: int
    client_id: str  # not the receiver's: each connection its own id
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    puback_timeout_s: float = 5.0
    retry_s: float = 1.0  # a failed round is tried again after this long
    batch: int = 100


class Publisher:
    def __init__(
        self, settings: PublisherSettings, ledger: Ledger, now: Callable[[], datetime]
    ) -> None:
        self._s = settings
        self._ledger = ledger
        self._now = now
        self.published = 0

    async def run(self) -> None:
        """Until cancelled."""
        s = self._s
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.connect_async(s.host, s.port, s.keepalive_s)
        client.loop_start()
        try:
            while True:
                self._ledger.wake.clear()
                done = await self._round(client)
                # Woken by a commit; every retry_s while something is left, and now and then
                # anyway (another office instance's commits do not wake this one).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(s.retry_s if not done else s.retry_s * 5):
                        await self._ledger.wake.wait()
        finally:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    async def _round(self, client: mqtt.Client) -> bool:
        """Publish what is left; True when nothing is."""
        try:
            rows = await self._ledger.unpublished(self._s.batch)
            for row in rows:
                if not client.is_connected():
                    return False
                info = client.publish(row.topic, row.payload, qos=1)
                try:
                    await asyncio.to_thread(info.wait_for_publish, self._s.puback_timeout_s)
                except (RuntimeError, ValueError) as exc:
                    log.info("feed publish of %s failed: %s", row.topic, exc)
                    return False
                if not info.is_published():
                    return False
                await self._ledger.mark_published(row.id, self._now())
                self.published += 1
        except StoreUnavailable as exc:
            log.warning("feed outbox unavailable: %s", exc)
            return False
        return len(rows) < self._s.batch
