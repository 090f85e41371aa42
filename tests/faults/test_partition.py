"""Network partitions between the gateway's hub link and a real Mosquitto, through a TCP
fault proxy: a blackhole (sockets open, nothing through) is noticed within 1.5 × the
keep-alive; a reset, a slow link and a throttled link lose nothing; after healing the
backlog drains, also after a restart during the partition. The events live in the
gateway's own outbox on a SQLite file (tests/faults/store_outbox.py). Each test reports
lost, duplicated and unexpected events and the time to recover.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_sync.mqtt import MqttLink, MqttSettings
from tests.cloud_sync.doubles import ListSink
from tests.conftest import Mosquitto
from tests.faults.proxy import FaultProxy, Mode
from tests.faults.report import HubRecorder, report
from tests.faults.store_outbox import StoreOutbox

KEEPALIVE_S = 2


@pytest.fixture
async def proxy(mosquitto: Mosquitto) -> AsyncIterator[FaultProxy]:
    p = FaultProxy(mosquitto.port)
    await p.start()
    yield p
    await p.close()


def _link(port: int) -> MqttLink:
    settings = MqttSettings(
        host="127.0.0.1",
        port=port,
        site="hz01",
        line="line3",
        client_id="linegate-faults",
        keepalive_s=KEEPALIVE_S,
        events_per_message=10,
        backoff_initial_s=0.05,
        backoff_max_s=0.3,
    )
    return MqttLink(settings, lambda: datetime.now(UTC))


async def _until(pred: object, within: float = 20.0) -> float:
    started = time.monotonic()
    async with asyncio.timeout(within):
        while not pred():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
def box(tmp_path: Path) -> Iterator[StoreOutbox]:
    b = StoreOutbox(tmp_path / "linegate.db")
    yield b
    b.close()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_blackhole_is_noticed_within_one_and_a_half_keepalives(
    mosquitto: Mosquitto, proxy: FaultProxy, box: StoreOutbox
) -> None:
    hub = HubRecorder(mosquitto.port)
    link = _link(proxy.port)
    task = asyncio.create_task(link.run(ListSink(), box.outbox))
    try:
        await _until(lambda: link.connected)
        box.add(20)
        await _until(lambda: box.pending == 0)
        proxy.set("blackhole")
        box.add(30)  # written while the cable is out: they wait in the outbox
        noticed = await _until(lambda: not link.connected, within=3 * KEEPALIVE_S)
        assert noticed <= 1.5 * KEEPALIVE_S, f"noticed after {noticed:.2f} s"
        assert box.on_disk() == 30  # committed to the file, not only held in memory
        proxy.set("pass")
        recovered = await _until(lambda: link.connected and box.pending == 0)
        await _until(lambda: len(hub.unique()) == 50)
    finally:
        await _stop(task)
        hub.close()
    r = report(hub, last_seq=50, recovery_s=recovered)
    print(f"blackhole: noticed in {noticed:.2f} s; {r}")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []
    box.add(0)  # the next transaction takes the acknowledged events' removal along
    assert box.on_disk() == 0  # every event left the outbox, and only on the broker's ack


@pytest.mark.parametrize("mode", ["reset", "delay", "throttle"])
async def test_a_bad_link_loses_nothing_and_drains_after_healing(
    mosquitto: Mosquitto, proxy: FaultProxy, box: StoreOutbox, mode: Mode
) -> None:
    hub = HubRecorder(mosquitto.port)
    link = _link(proxy.port)
    task = asyncio.create_task(link.run(ListSink(), box.outbox))
    try:
        await _until(lambda: link.connected)
        box.add(100)
        proxy.set(mode)
        for _ in range(20):  # the fault lasts a while, events keep coming
            box.add(10)
            await asyncio.sleep(0.075)
        box.add(100)
        proxy.set("pass")
        healed = time.monotonic()
        await _until(lambda: box.pending == 0, within=30)
        await _until(lambda: len(hub.unique()) == 400, within=30)
        recovered = time.monotonic() - healed
    finally:
        await _stop(task)
        hub.close()
    r = report(hub, last_seq=400, recovery_s=recovered)
    print(f"{mode}: {r}")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []
    box.add(0)  # the next transaction takes the acknowledged events' removal along
    assert box.last_seq == 400 and box.on_disk() == 0


async def test_a_restart_during_a_partition_loses_nothing(
    mosquitto: Mosquitto, proxy: FaultProxy, box: StoreOutbox
) -> None:
    hub = HubRecorder(mosquitto.port)
    link = _link(proxy.port)
    task = asyncio.create_task(link.run(ListSink(), box.outbox))
    try:
        await _until(lambda: link.connected)
        box.add(20)
        await _until(lambda: box.pending == 0)
        proxy.set("blackhole")
        box.add(30)
        await _until(lambda: not link.connected, within=3 * KEEPALIVE_S)
        await _stop(task)  # the gateway stops with the cable still out ...
        box.restart()  # ... and starts again on the same file
        assert (box.last_seq, box.pending) == (50, 30)
        box.add(10)  # numbered on from where it was: 51..60
        proxy.set("pass")
        healed = time.monotonic()
        link = _link(proxy.port)
        task = asyncio.create_task(link.run(ListSink(), box.outbox))
        await _until(lambda: link.connected and box.pending == 0)
        await _until(lambda: len(hub.unique()) == 60)
        recovered = time.monotonic() - healed
    finally:
        await _stop(task)
        hub.close()
    r = report(hub, last_seq=60, recovery_s=recovered)
    print(f"restart in a partition: {r}")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []


async def test_a_healthy_idle_link_is_never_taken_for_dead(
    mosquitto: Mosquitto, proxy: FaultProxy, box: StoreOutbox
) -> None:
    link = _link(proxy.port)
    task = asyncio.create_task(link.run(ListSink(), box.outbox))
    try:
        await _until(lambda: link.connected)
        await asyncio.sleep(4 * KEEPALIVE_S)  # nothing to send: only the pings talk
        assert link.connected
        assert proxy.connections == 1  # never dropped and reconnected
    finally:
        await _stop(task)
