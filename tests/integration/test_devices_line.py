"""The reference line on simulated devices, as two processes over real sockets and ptys.

``linegate simulate`` serves every device of the line (OPC UA machines, Modbus scales,
serial and HID scanners, ZPL printers); ``linegate run`` drives them with its drivers;
simulated operators scan on the scanners and put parcels on the scales through the
simulator's control API. Mid-run a scale and a machine are killed and restarted: the
alarms are raised and cleared, the stations recover, and every order completes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config.load import load_line_config
from simulators.control import ControlClient
from simulators.operators import Person, SimulatedOperator, assign_staff, station_loads
from simulators.relocate import free_port
from tests.conftest import Mosquitto
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient
from tests.integration.simulate_process import SimulateProcess, start_simulated_line
from tests.integration.test_mqtt_line import check_stream

DATA = ROOT / "simulators" / "data"
REFERENCE_LINE = ROOT / "station_configs" / "reference-line"
CATALOG = (DATA / "reference-catalog.json").read_text()

# Fast reconnects and a small budget, so "failed" and "back" happen within seconds.
_TEST_POLICIES = {
    "device_retry_initial_s": "0.1",
    "device_retry_max_s": "0.5",
    "device_restart_budget": "2",
    "device_restart_window_s": "30",
}


def _fast_policies(line_toml: Path) -> None:
    text = line_toml.read_text()
    for key, value in _TEST_POLICIES.items():
        text, n = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", text)
        assert n == 1, f"{key} is not in {line_toml}"
    line_toml.write_text(text)


def _order(order_id: str, sku: str, qty: int = 1) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": "2030-01-01T17:00:00+08:00",
        "priority": 2,
        "lines": [
            {
                "sku": sku,
                "qty": qty,
                "personalization": {"text": f"{order_id} 生日快乐", "name": "Ana"},
            }
        ],
        "destination": {
            "name": "王小明",
            "address": "西湖区文三路 90 号",
            "city": "杭州",
            "region": "浙江",
            "postcode": "310012",
            "country": "CN",
        },
    }


@pytest.fixture
def sim_root() -> Iterator[Path]:
    """Unix socket paths are limited to 108 bytes: the simulated devices get a short root."""
    root = Path(tempfile.mkdtemp(prefix="lg-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def floor(
    tmp_path: Path, mosquitto: Mosquitto, sim_root: Path
) -> Iterator[tuple[SimulateProcess, GatewayProcess, HubClient]]:
    config = tmp_path / "line"
    sim = start_simulated_line(
        REFERENCE_LINE, config, sim_root, tmp_path / "simulate.log", machine_cycle_s=0.3
    )
    try:
        # The simulators read only the device tables: the gateway's policies can change now.
        _fast_policies(config / "line.toml")
        hub = HubClient("127.0.0.1", mosquitto.port)
        try:
            hub.publish("in/masterdata/catalog", CATALOG.encode(), retain=True)
            stock = (DATA / "reference-stock.json").read_bytes()
            hub.publish("in/masterdata/stock", stock, retain=True)
            (tmp_path / "data").mkdir()
            gw = GatewayProcess(tmp_path / "data", mosquitto.port, free_port(), config=config)
            try:
                gw.start()
                hub.wait_for(lambda _: any(s["state"] == "online" for s in hub.status))
                yield sim, gw, hub
            finally:
                gw.stop()
        finally:
            hub.close()
    finally:
        sim.stop()


def _devices(gw: GatewayProcess) -> dict[str, dict[str, Any]]:
    with gw.client(timeout=5) as api:
        rows = api.get("/api/devices").json()
    return {r["device"]: r for r in rows}


async def _until(what: str, pred: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within:g} s: {what}")


def _alarm(hub: HubClient, type_: str, alarm_id: str) -> bool:
    return any(e["data"]["alarm_id"] == alarm_id for e in hub.events(type_))


def test_the_line_runs_on_its_devices_and_rides_out_a_dead_scale_and_machine(
    floor: tuple[SimulateProcess, GatewayProcess, HubClient],
) -> None:
    sim, gw, hub = floor
    skus = ["TEE-WHT-M", "CAP-EMB-NAVY", "PEN-ENG", "KIT-XMAS-A", "TEE-BLK-M", "PEN-ENG"]
    orders = [_order(f"SO-{i + 1}", sku) for i, sku in enumerate(skus)]
    for o in orders:
        hub.publish("in/orders", o)

    async def run() -> None:
        # Every device connected before the first operator arrives.
        await _until(
            "all devices ready",
            lambda: all(d["state"] == "ready" for d in _devices(gw).values()),
            30,
        )
        hands = ControlClient(sim.url)
        await hands.load()
        catalog = json.loads(CATALOG)
        config = load_line_config(sim_config_dir(sim))
        caps = {sid: list(st.capabilities) for sid, st in config.stations.items()}
        staff = assign_staff(
            {sid: st.operators for sid, st in config.stations.items()},
            [o.badge for o in config.operators],
            station_loads(catalog, caps),
        )
        people: dict[str, Person] = {}
        operators = [
            SimulatedOperator(
                gw.base,
                sid,
                people.setdefault(badge, Person(badge, badge)),
                catalog=catalog,
                speed=600.0,
                error_rate=0.1,
                seed=3,
                hands=hands,
                machine_wait_s=5.0,
                auth=gw.keys,  # each station's actions through its paired terminal
            )
            for sid, badge in staff.items()
        ]
        tasks = [asyncio.create_task(op.run()) for op in operators]
        try:
            await _until("a first order packed", lambda: bool(hub.events("order.completed")), 60)
            # Pull the plugs: the pack scale and a DTG printer's machine.
            sim.post("/devices/pack-1/scale/stop")
            sim.post("/devices/dtg-1/machine/stop")
            await _until(
                "both alarms raised",
                lambda: (
                    _alarm(hub, "alarm.raised", "device:pack-1/scale")
                    and _alarm(hub, "alarm.raised", "device:dtg-1/machine")
                ),
                30,
            )
            states = _devices(gw)
            assert states["pack-1/scale"]["state"] == "failed"
            assert states["dtg-1/machine"]["state"] == "failed"
            assert states["pack-2/scale"]["state"] == "ready"  # the rest of the line goes on
            # Asked with a viewer's API token, as a maintainer's shell would hold it.
            listing = _devices_command(
                "--config",
                str(sim_config_dir(sim)),
                "--url",
                gw.base,
                token=gw.keys.token("viewer"),
            )
            assert listing.returncode == 1  # not every device is ready
            assert re.search(r"pack-1/scale\s+modbus_scale\s+failed", listing.stdout)
            assert re.search(r"pack-2/scale\s+modbus_scale\s+ready", listing.stdout)
            await asyncio.sleep(1.0)
            sim.post("/devices/pack-1/scale/start")
            sim.post("/devices/dtg-1/machine/start")
            await _until(
                "both alarms cleared",
                lambda: (
                    _alarm(hub, "alarm.cleared", "device:pack-1/scale")
                    and _alarm(hub, "alarm.cleared", "device:dtg-1/machine")
                ),
                30,
            )
            await _until(
                "every order completed",
                lambda: len(hub.events("order.completed")) == len(orders),
                120,
            )
        finally:
            for op in operators:
                op.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await hands.aclose()
        assert sum(op.counters.accepted_mistakes for op in operators) == 0

    asyncio.run(run())

    events = check_stream(hub)
    assert {e["order_id"] for e in hub.events("order.completed")} == {o["order_id"] for o in orders}
    assert all(d["state"] == "ready" for d in _devices(gw).values())
    # The machines reported their own states, and the printers printed every label.
    assert any(e["data"].get("synthesised") is False for e in hub.events("machine.state"))
    printed = {e["data"]["label_id"] for e in hub.events("label.printed")}
    on_paper = {
        label["job_id"]: label
        for station in ("pack-1", "pack-2")
        for label in sim.get(f"/devices/{station}/printer/labels")
    }
    shipping = [e for e in hub.events("label.printed") if e["data"]["kind"] == "shipping"]
    assert len(shipping) >= len(orders)
    assert {e["data"]["job_id"] for e in shipping} <= set(on_paper)
    assert printed
    assert len(events) > 0


def sim_config_dir(sim: SimulateProcess) -> Path:
    return Path(sim.args[4])


def _devices_command(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LINEGATE_TOKEN"}
    if token is not None:
        env["LINEGATE_TOKEN"] = token  # the API token the command asks the gateway with
    return subprocess.run(
        [sys.executable, "-m", "gateway", "devices", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_devices_probes_a_line_without_its_gateway(tmp_path: Path, sim_root: Path) -> None:
    """While commissioning: no gateway runs, `linegate devices` connects to each device."""
    config = tmp_path / "line"
    sim = start_simulated_line(REFERENCE_LINE, config, sim_root, tmp_path / "simulate.log")
    try:
        listing = _devices_command("--config", str(config), "--probe", "--json")
        assert listing.returncode == 0, listing.stderr
        rows = json.loads(listing.stdout)
        assert len(rows) == 18
        assert {r["state"] for r in rows} == {"ready"}
        scale = next(r for r in rows if r["device"] == "pack-1/scale")
        assert scale["diagnostics"]["transport"] == "rtu"
        sim.post("/devices/pack-1/printer/stop")
        listing = _devices_command("--config", str(config), "--probe")
        assert listing.returncode == 1
        assert re.search(r"pack-1/printer\s+label_printer\s+unreachable", listing.stdout)
    finally:
        sim.stop()
