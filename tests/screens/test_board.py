"""The line board in a real browser, on the reference line's simulated devices: a machine
fault in the OPC UA simulator turns its station's tile red, and back once it clears."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.relocate import free_port
from tests.conftest import Mosquitto
from tests.integration.gateway_process import GatewayProcess
from tests.integration.hub_client import HubClient
from tests.integration.simulate_process import SimulateProcess, start_simulated_line
from tests.integration.test_devices_line import (
    CATALOG,
    DATA,
    REFERENCE_LINE,
    _fast_policies,
    sim_root,  # noqa: F401 - a fixture
)
from tests.screens.conftest import OpenPage


@pytest.fixture
def devices_line(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sim_root: Path,  # noqa: F811
) -> Iterator[tuple[SimulateProcess, GatewayProcess]]:
    config = tmp_path / "line"
    sim = start_simulated_line(
        REFERENCE_LINE, config, sim_root, tmp_path / "simulate.log", machine_cycle_s=0.3
    )
    try:
        _fast_policies(config / "line.toml")
        hub = HubClient("127.0.0.1", mosquitto.port)
        try:
            hub.publish("in/masterdata/catalog", CATALOG.encode(), retain=True)
            hub.publish(
                "in/masterdata/stock", (DATA / "reference-stock.json").read_bytes(), retain=True
            )
            (tmp_path / "data").mkdir()
            gw = GatewayProcess(tmp_path / "data", mosquitto.port, free_port(), config=config)
            gw.start()
            try:
                yield sim, gw
            finally:
                gw.stop()
        finally:
            hub.close()
    finally:
        sim.stop()


async def test_a_machine_fault_turns_its_tile_red_within_a_second_and_back(
    devices_line: tuple[SimulateProcess, GatewayProcess], open_page: OpenPage
) -> None:
    sim, gw = devices_line
    token = gw.keys.token("viewer")
    board = await open_page(
        gw.base, f"/board?kiosk=1&lang=en#token={token}", width=1920, height=1080
    )
    page = board.page
    tile = page.locator("[data-station=dtg-1]")
    await tile.wait_for()
    # The bottleneck tile, in the page's language: the shift so far (the line's clock starts
    # in the early shift) with no order yet, so no station was busy.
    said = page.locator("[data-test=bottleneck-words]")
    await said.wait_for()
    assert await said.inner_text() == "No bottleneck: no station was busy; the line had no work."
    assert await page.locator("[data-test=bottleneck-station]").inner_text() == "–"
    # Once the gateway's driver is connected to the simulated machine.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with gw.client(timeout=5) as api:
            states = {d["device"]: d["state"] for d in api.get("/api/devices").json()}
        if states.get("dtg-1/machine") == "ready":
            break
        await asyncio.sleep(0.2)
    assert await tile.get_attribute("data-state") != "fault"
    await board.shot("board")
    sim.post(
        "/devices/dtg-1/machine/condition",
        {"condition": "fault", "on": True, "reason": "head crash"},
    )
    faulted_at = time.monotonic()
    await page.wait_for_selector("[data-station=dtg-1][data-state=fault]", timeout=5000)
    took = time.monotonic() - faulted_at
    label = await tile.locator(".state-label").inner_text()
    await board.shot("fault")
    assert label.strip().lower() == "fault"
    color = await tile.evaluate("t => getComputedStyle(t).backgroundColor")
    assert color == "rgb(107, 21, 19)"  # the andon red of linegate.css
    assert took <= 1.0, f"the tile turned red {took:.2f} s after the fault"
    sim.post("/devices/dtg-1/machine/condition", {"condition": "fault", "on": False})
    await page.wait_for_function(
        "() => document.querySelector('[data-station=dtg-1]').dataset.state !== 'fault'",
        timeout=5000,
    )
