"""Tracing over the station API of a running gateway: a lot or a unit the line does not
know is a 404 that says so (naming what it knows under that name in another case), never
an empty trace that a recall would read as "not used here"; a blank lot is refused.

A real Gateway runs in this loop (its store on a SQLite file, uvicorn on a free loopback
port), fed by the in-memory hub the demo uses (cloud_sync/memory.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cloud_sync.memory import MemoryHub, MemoryLink
from gateway.app.root import Gateway
from gateway.clock import SystemClock
from gateway.config.load import load_line_config
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, order, stock_doc
from tests.keys import issue_keys

# The reference stock's ink lot (simulators/data/reference-stock.json): in stock, unused.
INK = "INK-DTG-CMYK-L2611A"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The station API of a line with the reference stock and one pen order accepted."""
    config = load_line_config(REFERENCE_LINE)
    # No devices: the laser's task is taken through the API alone.
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    planner = config.planner.model_copy(update={"enabled": False})
    config = config.model_copy(update={"stations": stations, "planner": planner})
    clock = SystemClock()
    hub = MemoryHub()
    link = MemoryLink(hub, config.line.site, config.line.line, clock.now)
    gw = Gateway(config, data_dir=tmp_path, clock=clock, link=link, http_port=0)
    task = asyncio.create_task(gw.run())
    try:
        async with asyncio.timeout(20):
            await gw.started.wait()
        hub.publish("in/masterdata/catalog", catalog_bytes())
        hub.publish("in/masterdata/stock", json.dumps(stock_doc()).encode())
        hub.publish("in/orders", json.dumps(order("SO-1", ("PEN-ENG", 1))).encode())
        await hub.wait_for(lambda ev: any(e["type"] == "order.accepted" for e in ev), timeout=10)
        # The laser's terminal for its station's actions, a token for the trace (the board).
        keys = issue_keys(gw.store, config, clock.now())
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, auth=keys
        ) as client:
            yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_unknown_lot_is_404_naming_the_lot_in_another_case(
    api: httpx.AsyncClient,
) -> None:
    r = await api.get("/api/trace/lot/NOPE")
    assert r.status_code == 404, r.text
    # The message is `detail` or `message` depending on the error shape: look in the body.
    assert "no lot NOPE on this line" in r.text
    assert "did you mean" not in r.text
    r = await api.get(f"/api/trace/lot/{INK.lower()}")
    assert r.status_code == 404, r.text
    assert f"no lot {INK.lower()} on this line" in r.text
    assert f"did you mean {INK}?" in r.text
    # The lot as the line knows it still traces (known, not consumed).
    r = await api.get(f"/api/trace/lot/{INK}")
    assert r.status_code == 200, r.text
    assert (r.json()["lot"], r.json()["uses"]) == (INK, [])


async def test_a_blank_lot_is_refused(api: httpx.AsyncClient) -> None:
    # Blank would match every use of a material that has no lots (stored with lot "").
    for blank in ("%20", "%20%20%20", "%09"):
        r = await api.get(f"/api/trace/lot/{blank}")
        assert r.status_code == 422, r.text
        assert "a lot cannot be empty or blank" in r.text


async def test_an_unknown_serial_is_404_naming_the_unit_in_another_case(
    api: httpx.AsyncClient,
) -> None:
    assert (await api.post("/api/stations/laser-1/login", json={"badge": "OP-1006"})).is_success
    assert (await api.post("/api/stations/laser-1/next")).is_success
    serial = (await api.get("/api/stations/laser-1")).json()["task"]["serial"]
    r = await api.get(f"/api/trace/unit/{serial.lower()}")
    assert r.status_code == 404, r.text
    assert f"no unit {serial.lower()} on this line; did you mean {serial}?" in r.text
    assert (await api.get(f"/api/trace/unit/{serial}")).status_code == 200
