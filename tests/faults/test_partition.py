"""Network partitions between the gateway's hub link and a real Mosquitto, through a TCP
fault proxy: a blackhole (sockets open, nothing through) is noticed within 1.5 × the
keep-alive; a reset, a slow link and a throttled link lose nothing; after healing the
backlog drains. Each test reports lost, duplicated and unexpected events and the time
to recover.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from cloud_sync.mqtt import MqttLink, MqttSettings
from tests.cloud_sync.doubles import ListOutbox, ListSink
from tests.conftest import Mosquitto
from tests.faults.proxy import FaultProxy, Mode
from tests.faults.report import HubRecorder, report

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


async def test_a_blackhole_is_noticed_within_one_and_a_half_keepalives(
    mosquitto: Mosquitto, proxy: FaultProxy
) -> None:
    hub = HubRecorder(mosquitto.port)
    outbox = ListOutbox()
    link = _link(proxy.port)
    task = asyncio.create_task(link.run(ListSink(), outbox))
    try:
        await _until(lambda: link.connected)
        outbox.add(20)
        await _until(lambda: not outbox.pending)
        proxy.set("blackhole")
        outbox.add(30)  # written while the cable is out: they wait in the outbox
        noticed = await _until(lambda: not link.connected, within=3 * KEEPALIVE_S)
        assert noticed <= 1.5 * KEEPALIVE_S, f"noticed after {noticed:.2f} s"
        proxy.set("pass")
        recovered = await _until(lambda: link.connected and not outbox.pending)
        await _until(lambda: len(hub.unique()) == 50)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        hub.close()
    r = report(hub, last_seq=50, recovery_s=recovered)
    print(f"blackhole: noticed in {noticed:.2f} s; {r}")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []


@pytest.mark.parametrize("mode", ["reset", "delay", "throttle"])
async def test_a_bad_link_loses_nothing_and_drains_after_healing(
    mosquitto: Mosquitto, proxy: FaultProxy, mode: Mode
) -> None:
    hub = HubRecorder(mosquitto.port)
    outbox = ListOutbox()
    link = _link(proxy.port)
    task = asyncio.create_task(link.run(ListSink(), outbox))
    try:
        await _until(lambda: link.connected)
        outbox.add(100)
        proxy.set(mode)
        outbox.add(200)
        await asyncio.sleep(1.5)  # the fault lasts a while, events keep coming
        outbox.add(100)
        proxy.set("pass")
        healed = time.monotonic()
        await _until(lambda: not outbox.pending, within=30)
        await _until(lambda: len(hub.unique()) == 400, within=30)
        recovered = time.monotonic() - healed
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        hub.close()
    r = report(hub, last_seq=400, recovery_s=recovered)
    print(f"{mode}: {r}")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []


async def test_a_healthy_idle_link_is_never_taken_for_dead(
    mosquitto: Mosquitto, proxy: FaultProxy
) -> None:
    link = _link(proxy.port)
    task = asyncio.create_task(link.run(ListSink(), ListOutbox()))
    try:
        await _until(lambda: link.connected)
        await asyncio.sleep(4 * KEEPALIVE_S)  # nothing to send: only the pings talk
        assert link.connected
        assert proxy.connections == 1  # never dropped and reconnected
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
