"""An in-process stand-in for the hub's broker, so the demo needs no broker and no network."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cloud_sync.backoff import Backoff
from cloud_sync.contract import INBOUND_TOPICS, topic_prefix
from cloud_sync.ports import InboundMessage, InboundSink, Outbox

log = logging.getLogger(__name__)


class MemoryHub:
    """The hub's side: publish orders and master data, read the events and status it got.

    Use it from the event loop's thread only. It serves one gateway (one ``MemoryLink``).
    Messages wait here until the link takes them, like a persistent session, and go in the
    order they were published.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []  # decoded envelopes as received, duplicates kept
        self.status: dict[str, Any] | None = None  # the last status the gateway sent
        self._inbound: deque[InboundMessage] = deque()
        self._inbound_arrived = asyncio.Event()
        self._changed = asyncio.Event()

    def publish(self, topic_suffix: str, payload: bytes) -> None:
        """Queue a message for the gateway on ``topic_suffix`` (e.g. ``in/orders``)."""
        if topic_suffix not in INBOUND_TOPICS:
            raise ValueError(f"{topic_suffix!r} is not one of {', '.join(INBOUND_TOPICS)}")
        self._inbound.append(InboundMessage(topic_suffix, bytes(payload)))
        self._inbound_arrived.set()

    async def wait_for(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float,  # noqa: ASYNC109 - a deadline is the point of this test helper
    ) -> list[dict[str, Any]]:
        """Wait until ``predicate(events)`` holds and return the events; TimeoutError if not."""
        async with asyncio.timeout(timeout):
            while not predicate(self.events):
                await self._changed.wait()
        return self.events

    # --- the link's side ----------------------------------------------------------------

    def _take(self, limit: int) -> list[InboundMessage]:
        """Up to ``limit`` queued messages, oldest first; they stay queued until ``_drop``."""
        return [self._inbound[i] for i in range(min(limit, len(self._inbound)))]

    def _drop(self, count: int) -> None:
        for _ in range(count):
            self._inbound.popleft()

    async def _wait_inbound(self) -> None:
        while not self._inbound:
            self._inbound_arrived.clear()
            await self._inbound_arrived.wait()

    def _receive(self, payload: bytes) -> None:
        try:
            decoded = json.loads(payload)
        except ValueError:
            log.error("memory hub: event is not JSON (%d bytes)", len(payload))
            decoded = {"undecodable": payload.decode("utf-8", "replace")}
        # The contract allows one envelope or an array of them per message.
        self.events.extend(decoded if isinstance(decoded, list) else [decoded])
        self._notify()

    def _set_status(self, status: dict[str, Any]) -> None:
        self.status = status
        self._notify()

    def _notify(self) -> None:
        # Wake every waiter once, then start a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()


class MemoryLink:
    """The in-process counterpart of ``MqttLink``: same ``run``, ``connected``, ``published``."""

    def __init__(
        self,
        hub: MemoryHub,
        site: str,
        line: str,
        clock_now: Callable[[], datetime],
        *,
        version: str = "0.1.0",
        batch_max: int = 500,
    ) -> None:
        topic_prefix(site, line)  # raises ValueError on a bad segment, as MqttLink does
        if batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        self._hub = hub
        self._gateway_id = f"{site}/{line}"
        self._now = clock_now
        self._version = version
        self._batch_max = batch_max
        self._connected = False
        self._published = 0

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def published(self) -> int:
        """Events handed to the hub and acked in the outbox so far."""
        return self._published

    async def run(self, sink: InboundSink, outbox: Outbox) -> None:
        """Move messages both ways until cancelled; the hub then sees ``offline``."""
        self._hub._set_status(self._status("online"))
        self._connected = True
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump_in(sink))
                tasks.create_task(self._pump_out(outbox))
        finally:
            self._connected = False
            self._hub._set_status(self._status("offline"))

    async def _pump_in(self, sink: InboundSink) -> None:
        backoff = Backoff(0.5, 30.0)
        while True:
            await self._hub._wait_inbound()
            batch = self._hub._take(self._batch_max)
            try:
                sink.deliver(batch)
            except Exception:
                # As with the broker: a raising sink means a broken store, so the batch stays
                # queued (unacked) and is offered again later.
                log.exception("inbound sink failed; %d message(s) kept for redelivery", len(batch))
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            self._hub._drop(len(batch))
            await asyncio.sleep(0)  # let the outbound side run between large batches

    async def _pump_out(self, outbox: Outbox) -> None:
        backoff = Backoff(0.5, 30.0)
        cursor = 0  # highest seq acked in the outbox
        while True:
            try:
                records = outbox.peek(cursor, self._batch_max)
                if not records:
                    await outbox.wait_for_new(cursor)
                    continue
                for record in records:
                    self._hub._receive(record.payload)
                outbox.ack([record.seq for record in records])
            except Exception:
                # At-least-once: what the hub already got may come again after a retry.
                log.exception("outbox failed; retrying")
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            self._published += len(records)
            cursor = records[-1].seq
            await asyncio.sleep(0)

    def _status(self, state: str) -> dict[str, Any]:
        return {
            "gateway_id": self._gateway_id,
            "state": state,
            "ts": self._now().isoformat(),
            "version": self._version,
        }
