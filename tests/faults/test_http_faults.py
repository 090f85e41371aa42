"""HTTP hub faults: 500, 503 with Retry-After, 429, a timeout after the body was sent, a
truncated answer, in a row, while events keep coming and orders are pulled; and a restart
while the hub is in trouble. Reported like the rest of the fault suite: lost, duplicated
(the hub's dedup by seq drops them), unexpected, and the time from the last fault to the
last event at the hub. The link runs on the gateway's own outbox and keeps its orders
cursor where the gateway keeps it, in the store's settings (tests/faults/store_outbox.py,
gateway/app/root.py). (Each fault alone, and the no-retry refusal, are in
tests/cloud_sync/test_http_link.py and tests/integration/test_http_line.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.http import HttpLink, HttpSettings
from gateway.app.root import _StoreState
from simulators.http_hub import HttpHub, serve_http_hub
from tests.cloud_sync.doubles import ListSink
from tests.faults.report import Report
from tests.faults.store_outbox import StoreOutbox


def _settings(url: str) -> HttpSettings:
    return HttpSettings(
        base_url=url, site="hz01", line="line3", token="t", batch_max=40, timeout_s=0.8,
        poll_s=0.1, masterdata_poll_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.3,
    )  # fmt: skip


def _order(n: int) -> dict[str, Any]:
    return {
        "order_id": f"SO-{n}",
        "ship_by": "2030-01-01T10:00:00+08:00",
        "lines": [{"sku": "PEN-ENG", "qty": 1}],
    }


def _orders_delivered(sink: ListSink) -> list[str]:
    return [o["order_id"] for m in sink.messages for o in json.loads(m.payload)]


def _report(hub: HttpHub, last_seq: int, recovery_s: float) -> Report:
    held = set(hub.events)
    return Report(
        lost=[s for s in range(1, last_seq + 1) if s not in held],
        duplicated=hub.duplicates,
        unexpected=sorted(s for s in held if not 1 <= s <= last_seq),
        recovery_s=recovery_s,
    )


async def _until(pred: Any, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling the hub's and the outbox's state
            await asyncio.sleep(0.05)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[StoreOutbox]:
    b = StoreOutbox(tmp_path / "linegate.db")
    yield b
    b.close()


async def test_a_hub_in_trouble_gets_every_event_once_in_the_end(box: StoreOutbox) -> None:
    hub = HttpHub("hz01", "line3", token="t", retry_after_s=1, slow_s=1.2)
    hub.fail("500", "503", "429", "timeout", "truncated", "500")
    hub.add_orders(*(_order(n) for n in range(3)))
    sink = ListSink()
    async with serve_http_hub(hub) as url:
        link = HttpLink(_settings(url), _StoreState(box.store))
        task = asyncio.create_task(link.run(sink, box.outbox))
        try:
            for n in range(10):  # events keep coming while the hub struggles, orders too
                box.add(25)
                if n == 5:
                    hub.add_orders(*(_order(n) for n in range(3, 6)))
                await asyncio.sleep(0.3)
            await _until(lambda: not hub.faults)  # the hub's script, played out
            last_fault = time.monotonic()
            await _until(lambda: box.pending == 0)
            recovered = time.monotonic() - last_fault
            await _until(lambda: len(_orders_delivered(sink)) >= 6)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    r = _report(hub, 250, recovered)
    print(f"http hub faults: {r}; {link.retries} retries")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []
    assert link.retries >= 6
    box.add(0)  # the next transaction takes the acknowledged events' removal along
    assert box.on_disk() == 0  # every event left the outbox, and only on acked_through
    # Each order once, and the cursor where the gateway keeps it: the hub's, past all six.
    assert _orders_delivered(sink) == [f"SO-{n}" for n in range(6)]
    assert box.store.get_setting("hub_orders_cursor") == "6"


async def test_a_restart_while_the_hub_is_in_trouble_loses_nothing_and_repeats_no_order(
    box: StoreOutbox,
) -> None:
    hub = HttpHub("hz01", "line3", token="t", retry_after_s=1, slow_s=1.2)
    hub.add_orders(*(_order(n) for n in range(3)))
    sink = ListSink()
    async with serve_http_hub(hub) as url:
        link = HttpLink(_settings(url), _StoreState(box.store))
        task = asyncio.create_task(link.run(sink, box.outbox))
        try:
            box.add(25)
            await _until(lambda: box.pending == 0 and len(_orders_delivered(sink)) == 3)
            hub.fail(*["503"] * 3)  # busy for a few seconds: events wait in the outbox
            box.add(25)
            await _until(lambda: len(hub.faults) < 3)  # the link met the busy hub
            task.cancel()  # the gateway stops while the hub is busy ...
            await asyncio.gather(task, return_exceptions=True)
            box.restart()  # ... and starts again on the same file
            assert (box.last_seq, box.pending) == (50, 25)
            box.add(10)
            hub.add_orders(*(_order(n) for n in range(3, 5)))
            started = time.monotonic()
            link = HttpLink(_settings(url), _StoreState(box.store))
            task = asyncio.create_task(link.run(sink, box.outbox))
            await _until(lambda: box.pending == 0 and not hub.faults)
            recovered = time.monotonic() - started
            await _until(lambda: len(_orders_delivered(sink)) >= 5)
            await asyncio.sleep(0.5)  # a few more polls: nothing must come twice
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    r = _report(hub, 60, recovered)
    print(f"http restart: {r}")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []
    # The cursor outlived the restart in the store: the first three orders not again.
    assert _orders_delivered(sink) == [f"SO-{n}" for n in range(5)]
