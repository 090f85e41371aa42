"""The gateway process against a real Mosquitto that misbehaves:

- a crash between publishing and marking sent: the broker took the events but its PUBACKs
  never reached the gateway, which is then SIGKILLed; restarted, it sends them again, the
  hub gets duplicates, and its dedup by seq sees each event once;
- the broker stopped (SIGTERM) and killed (SIGKILL) in the middle of a burst of work, then
  restarted: every event the gateway still held reaches the hub. A broker that shuts down
  saves what it holds, so nothing at all is lost; a broker killed outright can lose what
  it had acknowledged in its last second (Mosquitto saves to disk once a second here):
  that loss is the broker's, and the report counts it apart.

Each test reports lost, duplicated and unexpected events and the recovery time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Mosquitto, free_port, mosquitto_binary
from tests.faults.proxy import ProxyThread
from tests.faults.report import HubRecorder, last_committed_seq, oldest_unsent_seq, report
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient
from tests.integration.line_driver import Driver

DATA = ROOT / "simulators" / "data"


def _order(n: int) -> dict[str, Any]:
    return {
        "order_id": f"B-{n:04d}",
        "ship_by": "2030-01-01T17:00:00+08:00",
        "lines": [{"sku": "PEN-ENG", "qty": 1, "personalization": {"text": "b"}}],
    }


def _wait(pred: Any, within: float = 30.0) -> float:
    started = time.monotonic()
    while not pred():
        if time.monotonic() - started > within:
            raise AssertionError("timed out")
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = mosquitto_binary()
    (tmp_path / "broker").mkdir()
    b = Mosquitto(binary, tmp_path / "broker", persistence=True)
    b.start()
    yield b
    b.stop()


def _master_data(hub: HubClient) -> None:
    hub.publish("in/masterdata/catalog", (DATA / "reference-catalog.json").read_bytes(), True)
    hub.publish("in/masterdata/stock", (DATA / "reference-stock.json").read_bytes(), True)


def test_a_crash_between_publish_and_puback_duplicates_but_loses_nothing(
    tmp_path: Path, broker: Mosquitto
) -> None:
    hub = HubClient("127.0.0.1", broker.port)
    recorder = HubRecorder(broker.port, name="dup-recorder")
    _master_data(hub)
    proxy = ProxyThread(broker.port)
    gw = GatewayProcess(tmp_path, proxy.port, free_port())
    try:
        gw.start()
        hub.publish("in/orders", [_order(n) for n in range(5)])
        _wait(lambda: len(recorder.unique()) >= 5)
        proxy.set("hold_replies")  # the broker gets everything; the gateway hears nothing
        hub.publish("in/orders", [_order(n) for n in range(5, 8)])  # waits at the broker
        with gw.client(timeout=5) as c:  # an operator's actions still commit events
            c.post("/api/stations/laser-1/login", json={"badge": "OP-1006"}).raise_for_status()
            c.post("/api/stations/laser-1/next").raise_for_status()
        before = last_committed_seq(gw.db)
        _wait(lambda: len(recorder.unique()) >= before)  # at the hub, unacknowledged here
        gw.kill()
        proxy.set("pass")
        started = time.monotonic()
        gw.start()
        _wait(lambda: sum(e["type"] == "order.accepted" for e in recorder.unique().values()) == 8)
        last = last_committed_seq(gw.db)
        _wait(lambda: len(recorder.unique()) >= last)
        r = report(recorder, last, time.monotonic() - started)
    finally:
        gw.stop()
        proxy.close()
        hub.close()
        recorder.close()
    print(f"crash before PUBACK: {r}")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []
    assert r.duplicated > 0  # sent again: the hub's dedup by seq keeps each once


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_broker_stopped_mid_burst_loses_nothing(
    tmp_path: Path, broker: Mosquitto, how: signal.Signals
) -> None:
    hub = HubClient("127.0.0.1", broker.port)
    recorder = HubRecorder(broker.port, name="outage-recorder")
    _master_data(hub)
    # The gateway reaches the broker through a proxy, so that after the restart the hub
    # is subscribed again before the gateway is back (a broker killed outright may have
    # lost the hub's session; what it then gets before the hub returns has no taker).
    proxy = ProxyThread(broker.port)
    gw = GatewayProcess(tmp_path, proxy.port, free_port())
    try:
        gw.start()
        hub.publish("in/orders", [_order(n) for n in range(6)])
        _wait(lambda: sum(e["type"] == "order.accepted" for e in recorder.unique().values()) == 6)

        async def work(seconds: float) -> Driver:
            driver = Driver(gw.base)
            deadline = time.monotonic() + seconds
            async with gw.async_client(timeout=5) as c:
                while time.monotonic() < deadline:
                    for station in ("laser-1", "qc-1", "kit-1", "pack-1"):
                        await driver.step(c, station)
            return driver

        async def burst() -> Driver:
            task = asyncio.create_task(work(2.0))
            await asyncio.sleep(0.7)
            proc = broker._proc
            assert proc is not None
            proc.send_signal(how)  # in the middle of the burst
            return await task

        driver = asyncio.run(burst())
        broker.stop()
        pending = httpx.get(gw.base + "/api/health").json()["outbox_pending"]
        # What the broker had acknowledged before it went is the broker's to keep; the
        # gateway answers for the rest, which it still holds.
        ours = oldest_unsent_seq(gw.db)
        proxy.set("reset")
        broker.start()
        started = time.monotonic()
        recorder.wait_subscribed(again=True)
        proxy.set("pass")
        _wait(lambda: httpx.get(gw.base + "/api/health").json()["outbox_pending"] == 0)
        last = last_committed_seq(gw.db)
        with contextlib.suppress(AssertionError):
            _wait(lambda: len(recorder.unique()) >= last, within=10)
        r = report(recorder, last, time.monotonic() - started)
    finally:
        gw.stop()
        proxy.close()
        hub.close()
        recorder.close()
    by_broker = [s for s in r.lost if ours is None or s < ours]
    print(  # noqa: T201 - the fault report
        f"broker {how.name} mid-burst: {r}; {pending} events waited in the outbox; "
        f"{len(by_broker)} of the lost ones the broker had acknowledged"
    )
    assert driver.acknowledged
    assert r.unexpected == []
    assert [s for s in r.lost if s not in by_broker] == []  # the gateway lost nothing
    if how == signal.SIGTERM:  # a broker that shuts down saves what it holds
        assert r.lost == []
