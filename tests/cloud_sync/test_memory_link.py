"""MemoryLink and MemoryHub: the in-process hub the demo runs against."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from cloud_sync.contract import IN_CANCEL, IN_ORDERS, IN_STOCK
from cloud_sync.memory import MemoryHub, MemoryLink
from cloud_sync.ports import InboundMessage
from tests.cloud_sync.doubles import GATEWAY, ListOutbox, ListSink


def now() -> datetime:
    return datetime(2026, 11, 11, 2, 0, tzinfo=UTC)


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


@contextlib.asynccontextmanager
async def running(link: MemoryLink, sink: ListSink, outbox: ListOutbox) -> AsyncIterator[None]:
    task = asyncio.create_task(link.run(sink, outbox))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    # Polling, not an Event: the conditions are often set from paho's threads.
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_inbound_is_delivered_in_order_in_batches() -> None:
    hub = MemoryHub()
    for n in range(7):
        hub.publish(IN_ORDERS, f'{{"order_id": "SO-{n}"}}'.encode())
    hub.publish(IN_CANCEL, b'{"order_id": "SO-1"}')
    sink = ListSink()
    link = MemoryLink(hub, "hz01", "line3", now, batch_max=3)
    async with running(link, sink, ListOutbox()):
        await until(lambda: len(sink.messages) == 8)
        hub.publish(IN_STOCK, b'{"kind": "stock"}')
        await until(lambda: len(sink.messages) == 9)
        assert link.connected
        assert hub.status is not None
        assert hub.status["state"] == "online"
    payloads = [json.loads(m.payload) for m in sink.messages]
    assert [p["order_id"] for p in payloads[:7]] == [f"SO-{n}" for n in range(7)]
    assert [m.topic for m in sink.messages[6:]] == [IN_ORDERS, IN_CANCEL, IN_STOCK]
    assert all(1 <= len(batch) <= 3 for batch in sink.batches)
    assert not link.connected
    assert hub.status == {
        "gateway_id": GATEWAY,
        "state": "offline",
        "ts": now().isoformat(),
        "version": "0.1.0",
    }


async def test_outbox_is_drained_in_seq_order_and_acked() -> None:
    hub = MemoryHub()
    outbox = ListOutbox()
    outbox.add(5)
    link = MemoryLink(hub, "hz01", "line3", now, batch_max=2)
    async with running(link, ListSink(), outbox):
        await hub.wait_for(lambda events: len(events) == 5, timeout=5)
        outbox.add(3, as_array=True)
        outbox.add(1)
        events = await hub.wait_for(lambda events: len(events) == 9, timeout=5)
        await until(lambda: not outbox.pending)
    assert seqs(events) == list(range(1, 10))
    assert sorted(seq for call in outbox.ack_calls for seq in call) == [1, 2, 3, 4, 5, 8, 9]
    assert link.published == 7  # outbox records: the array of three was one message


async def test_a_raising_sink_gets_the_same_batch_again() -> None:
    hub = MemoryHub()
    hub.publish(IN_ORDERS, b'{"order_id": "SO-1"}')
    sink = ListSink(fail_times=1)
    async with running(MemoryLink(hub, "hz01", "line3", now), sink, ListOutbox()):
        await until(lambda: len(sink.messages) == 1)
    assert sink.failed == sink.batches == [[InboundMessage(IN_ORDERS, b'{"order_id": "SO-1"}')]]


async def test_hub_rejects_unknown_topics_and_times_out() -> None:
    hub = MemoryHub()
    with pytest.raises(ValueError):
        hub.publish("in/order", b"{}")
    with pytest.raises(TimeoutError):
        await hub.wait_for(lambda events: bool(events), timeout=0.05)
