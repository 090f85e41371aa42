"""The devices at work, each against its real simulator: the gateway's floor wiring.

Every test runs a real :class:`gateway.app.root.Gateway` on the test's loop against the
reference line's simulated devices (OPC UA servers, Modbus scales on a pty and on TCP,
serial scanners on ptys, HID scanners on Unix sockets, ZPL printers on TCP), with the
device retry policy lowered so that a device counts as failed within a fraction of a
second. Operators act through the station service and on the simulators, as on the floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from drivers.opcua_machine.packml import PackMLState
from gateway.app.root import Gateway
from gateway.desk.labels import reprint
from gateway.store.documents import Progress
from tests.clocks import line_clock
from tests.gateway.conftest import catalog_bytes, do_unit_task, order, stock_doc
from tests.gateway.floor_fixture import (
    FAST_DEVICES,
    FloorRig,
    floor_rig,
    start_simulators,
    until,
)
from tests.keys import issue_keys

# KIT-XMAS-A weighs 310 ± 12 g; its routing is kit_assemble (no machine), then pack.
KIT = "KIT-XMAS-A"
KIT_G = 310.0


@pytest_asyncio.fixture
async def floor(tmp_path: Path) -> AsyncIterator[FloorRig]:
    async with floor_rig(tmp_path) as rig:
        yield rig


# -- helpers -------------------------------------------------------------------------------


def message(rig: FloorRig, station: str) -> dict[str, Any] | None:
    msg: dict[str, Any] | None = rig.station_view(station)["device_message"]
    return msg


async def scan(rig: FloorRig, station: str, code: str) -> dict[str, Any]:
    """Scan ``code`` on the station's simulated scanner; returns what the screen then says."""
    before = message(rig, station)
    seq = before["seq"] if before is not None else 0
    assert await rig.sim.scanners[station].scan(code), f"the scanner at {station} lost {code}"

    def answered() -> bool:
        now = message(rig, station)
        return now is not None and now["seq"] > seq and now["source"] == "scanner"

    await until(f"{code!r} answered at {station}", answered)
    msg = message(rig, station)
    assert msg is not None
    return msg


def serials(rig: FloorRig, order_id: str) -> list[str]:
    rows = rig.gateway.store.all(
        "SELECT serial FROM units WHERE order_id = ? ORDER BY serial", (order_id,)
    )
    return [r["serial"] for r in rows]


def pack_task(rig: FloorRig, order_id: str) -> dict[str, Any]:
    row = rig.gateway.store.one(
        "SELECT * FROM tasks WHERE order_id = ? AND serial IS NULL ORDER BY task_id DESC",
        (order_id,),
    )
    assert row is not None, order_id
    return dict(row)


def work(rig: FloorRig, task_id: int) -> Progress:
    return Progress.model_validate_json(rig.task(task_id)["work"])


async def api(rig: FloorRig, method: str, path: str, body: Any = None) -> Any:
    """One request to the gateway's station API, with the credential of who may make it
    (the station's terminal, or a role's token); returns the decoded answer."""
    base = f"http://127.0.0.1:{rig.gateway.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=5, auth=rig.keys) as client:
        r = await client.request(method, path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def first_stable(rig: FloorRig, station: str, since: float) -> float:
    """The grams of the scale's first stable reading of a parcel placed at ``since``,
    checking that the pan was seen moving before it settled."""
    scale = rig.gateway.floor.devices.stations[station].scale
    assert scale is not None
    after = [r for r in scale.recent if r.at > since]
    settled = next(i for i, r in enumerate(after) if r.stable and r.grams > 20)
    assert any(not r.stable for r in after[:settled]), "the scale was never seen settling"
    return round(after[settled].grams, 1)


def logged_in(rig: FloorRig, station: str) -> bool:
    return rig.svc.session(station).badge is not None


def kitted_order(rig: FloorRig, order_id: str) -> str:
    """An order of one gift set, assembled at kit-1 by hand: its pack task is ready."""
    rig.send("in/orders", order(order_id, (KIT, 1)))
    if not logged_in(rig, "kit-1"):
        rig.svc.login("kit-1", "OP-1007")
    do_unit_task(rig.svc, "kit-1")
    (serial,) = serials(rig, order_id)
    assert pack_task(rig, order_id)["status"] == "ready"
    return serial


async def fill_parcel(rig: FloorRig, station: str, order_id: str) -> None:
    """Scan the order's units and packing materials on the station's scanner."""
    for serial in serials(rig, order_id):
        msg = await scan(rig, station, serial)
        assert msg["ok"], msg
    task = rig.svc.view(station)["task"]
    assert task is not None and task["order_id"] == order_id
    for m in task["materials"]:
        msg = await scan(rig, station, m["suggested_lot"] or m["material"])
        assert msg["ok"], msg


def label_printed(rig: FloorRig, job_id: str) -> list[dict[str, Any]]:
    return [e for e in rig.events("label.printed") if e["data"]["job_id"] == job_id]


# -- 1. scanners ----------------------------------------------------------------------------


async def test_badges_scanned_on_serial_and_hid_scanners_log_operators_in(
    floor: FloorRig,
) -> None:
    # pack-1: a serial scanner (AIM ids on); dtg-1: HID, US layout; dtg-2: HID, German.
    for station, badge in (("pack-1", "OP-1001"), ("dtg-1", "OP-1003"), ("dtg-2", "OP-1004")):
        msg = await scan(floor, station, badge)
        assert msg["ok"] and msg["refused"] is None, msg
        assert msg["code"] == badge
        assert msg["message"].startswith("Welcome, ")
        assert floor.svc.operator(station) == badge
    # Letters that sit elsewhere on a German keyboard (Y/Z swapped) decode as typed: the
    # code the screen shows is the code on the badge, refused as no operator of the line.
    msg = await scan(floor, "dtg-2", "OP-Zy9")
    assert msg["code"] == "OP-Zy9"
    assert msg["refused"] == "UNKNOWN_BADGE" and not msg["ok"]
    assert floor.svc.operator("dtg-2") == "OP-1004"


async def test_a_wrong_code_is_refused_and_shown_on_the_station_screen(floor: FloorRig) -> None:
    msg = await scan(floor, "pack-1", "XYZ-404")
    # Nobody logged in yet: the scanner's code is refused with the reason and what to do.
    assert msg["refused"] == "NOT_LOGGED_IN"
    await scan(floor, "pack-1", "OP-1001")
    msg = await scan(floor, "pack-1", "XYZ-404")
    view = await api(floor, "GET", "/api/stations/pack-1")
    assert view["device_message"] == msg
    assert msg["source"] == "scanner" and msg["code"] == "XYZ-404"
    assert msg["ok"] is False and msg["refused"] == "UNKNOWN_CODE"
    assert "'XYZ-404' is not a badge" in msg["message"]
    assert msg["next"] == "Check that you scanned the right label."
    assert view["devices"] == {"scale": "ready", "printer": "ready", "scanner": "ready"}
    # The operator is still logged in: a refused scan changes nothing.
    assert floor.svc.operator("pack-1") == "OP-1001"


# -- 2. weighing ----------------------------------------------------------------------------


async def test_pack_takes_the_first_stable_weight_and_prints_the_shipping_label(
    floor: FloorRig,
) -> None:
    kitted_order(floor, "SO-1")
    kitted_order(floor, "SO-2")
    await scan(floor, "pack-1", "OP-1001")
    await fill_parcel(floor, "pack-1", "SO-1")
    task_id = pack_task(floor, "SO-1")["task_id"]
    assert work(floor, task_id).weight_g is None

    placed = time.monotonic()
    floor.sim.scales["pack-1"].place(KIT_G)
    await until("SO-1 weighed", lambda: work(floor, task_id).label_id is not None)
    w = work(floor, task_id)
    # The first stable reading (RTU scale, stable flag): the settled weight, not one taken
    # while the pan was still moving.
    assert w.weight_g == first_stable(floor, "pack-1", placed) == KIT_G
    assert w.weight_ok and w.label_id is not None
    msg = message(floor, "pack-1")
    assert msg is not None and msg["source"] == "scale" and msg["ok"], msg
    assert w.label_id in msg["message"]
    (checked,) = [e for e in floor.events("quality.checked") if e["data"]["task_id"] == task_id]
    assert checked["data"]["passed"] is True

    # The shipping label is queued for pack-1's printer and printed on it.
    job = floor.gateway.store.one("SELECT * FROM print_jobs WHERE label_id = ?", (w.label_id,))
    assert job is not None and job["printer"] == "pack-1/printer"
    await until("the shipping label printed", lambda: bool(label_printed(floor, job["job_id"])))
    assert floor.print_job(job["job_id"])["status"] == "printed"
    (on_paper,) = [lb for lb in floor.sim.printers["pack-1"].labels if lb.job_id == job["job_id"]]
    assert any(w.label_id in b.data for b in on_paper.barcodes), on_paper.barcodes
    (event,) = label_printed(floor, job["job_id"])
    assert event["data"]["kind"] == "shipping" and event["data"]["label_id"] == w.label_id
    assert event["data"]["printer"] == "pack-1/printer"
    assert event["data"]["reprint_reason"] is None

    # The label scanned on the scanner confirms the parcel.
    msg = await scan(floor, "pack-1", w.label_id)
    assert msg["ok"], msg
    assert [e["order_id"] for e in floor.events("order.completed")] == ["SO-1"]

    # The parcel is left on the scale: the next order is not weighed with it, however
    # many stable readings the scale gives meanwhile.
    await fill_parcel(floor, "pack-1", "SO-2")
    task2 = pack_task(floor, "SO-2")["task_id"]
    driver = floor.gateway.floor.devices.stations["pack-1"].scale
    assert driver is not None
    reads = driver.reads
    await until("the scale read a few more times", lambda: driver.reads >= reads + 10)
    assert work(floor, task2).weight_g is None
    assert not [e for e in floor.events("quality.checked") if e["data"]["task_id"] == task2]
    shown = message(floor, "pack-1")
    assert shown is not None and shown["source"] == "scanner", shown

    # Taken off, and SO-2's parcel (the same weight) put on while the station waits for
    # its weight: a new parcel, weighed.
    floor.sim.scales["pack-1"].remove()
    await until(
        "the scale seen empty",
        lambda: driver.latest is not None and driver.latest.grams < 20 and driver.latest.stable,
    )
    placed = time.monotonic()
    floor.sim.scales["pack-1"].place(KIT_G)
    await until("SO-2 weighed", lambda: work(floor, task2).label_id is not None)
    assert work(floor, task2).weight_g == first_stable(floor, "pack-1", placed) == KIT_G


async def test_pack_2_weighs_on_a_tcp_scale_with_a_stability_window(floor: FloorRig) -> None:
    kitted_order(floor, "SO-1")
    await scan(floor, "pack-2", "OP-1001")
    await fill_parcel(floor, "pack-2", "SO-1")
    task_id = pack_task(floor, "SO-1")["task_id"]
    # A parcel that weighs too little (an item missing): refused, and said on the screen.
    floor.sim.scales["pack-2"].place(250.0)

    def said_by_scale() -> dict[str, Any] | None:
        msg = message(floor, "pack-2")
        return msg if msg is not None and msg["source"] == "scale" else None

    await until("the wrong weight answered", said_by_scale)
    wrong = said_by_scale()
    assert wrong is not None and wrong["ok"] is False, wrong
    assert "expected 310 ± 12 g" in wrong["message"]
    assert work(floor, task_id).label_id is None
    # The missing item put in (no empty scale in between): weighed again.
    placed = time.monotonic()
    floor.sim.scales["pack-2"].place(KIT_G)
    await until("SO-1 weighed at pack-2", lambda: work(floor, task_id).label_id is not None)
    w = work(floor, task_id)
    # No stable flag on this scale: stable once its readings keep within 3 g for 0.6 s.
    assert w.weight_g == first_stable(floor, "pack-2", placed)
    assert abs(w.weight_g - KIT_G) <= 3.0 and w.weight_ok
    job = floor.gateway.store.one("SELECT * FROM print_jobs WHERE label_id = ?", (w.label_id,))
    assert job is not None and job["printer"] == "pack-2/printer"
    await until("printed at pack-2", lambda: bool(label_printed(floor, job["job_id"])))
    assert [lb.job_id for lb in floor.sim.printers["pack-2"].labels] == [job["job_id"]]
    assert floor.sim.printers["pack-1"].labels == []


# -- 3. printing ----------------------------------------------------------------------------


async def test_paper_out_holds_the_labels_and_paper_back_prints_them_in_order(
    floor: FloorRig,
) -> None:
    alarm_id = "printer:kit-1/printer:problem"
    printer = floor.sim.printers["kit-1"]
    printer.paper_out(True)
    floor.send("in/orders", order("SO-1", (KIT, 1)))
    floor.svc.login("kit-1", "OP-1007")
    floor.svc.next_task("kit-1")  # the traveller is printed at the unit's first operation
    (serial,) = serials(floor, "SO-1")
    first = floor.gateway.store.one("SELECT job_id FROM print_jobs ORDER BY job_id")
    assert first is not None
    await until("the paper-out alarm", lambda: floor.alarms("alarm.raised", alarm_id))
    second = reprint(floor.gateway.core, f"TRV-{serial}", "kit-1", "torn")
    # Held: still queued and retried, the alarm raised once, nothing reported printed.
    await until("retried", lambda: floor.print_job(first["job_id"])["attempts"] >= 2, 5)
    (raised,) = floor.alarms("alarm.raised", alarm_id)
    assert raised["data"]["kind"] == "printer_problem"
    assert "paper out" in raised["data"]["message"].lower()
    assert floor.print_job(first["job_id"])["status"] == "queued"
    assert floor.print_job(second)["status"] == "queued"
    assert floor.events("label.printed") == []
    assert printer.labels == []

    printer.paper_out(False)
    await until("both labels printed", lambda: len(floor.events("label.printed")) == 2, 5)
    assert [lb.job_id for lb in printer.labels] == [first["job_id"], second]
    printed = floor.events("label.printed")
    assert [e["data"]["job_id"] for e in printed] == [first["job_id"], second]
    assert [e["data"]["reprint_reason"] for e in printed] == [None, "torn"]
    assert all(e["data"]["label_id"] == f"TRV-{serial}" for e in printed)
    (cleared,) = floor.alarms("alarm.cleared", alarm_id)
    assert cleared["seq"] > raised["seq"]
    assert len(floor.alarms("alarm.raised", alarm_id)) == 1


async def test_a_reprint_asked_on_the_station_api_prints_a_new_job(floor: FloorRig) -> None:
    floor.send("in/orders", order("SO-1", (KIT, 1)))
    floor.svc.login("kit-1", "OP-1007")
    floor.svc.next_task("kit-1")
    (serial,) = serials(floor, "SO-1")
    await until("the traveller printed", lambda: len(floor.events("label.printed")) == 1)
    answer = await api(floor, "POST", "/api/stations/kit-1/reprint", {"reason": "smudged"})
    assert answer["label_id"] == f"TRV-{serial}"
    job_id = answer["job_id"]
    await until("the reprint printed", lambda: bool(label_printed(floor, job_id)))
    (event,) = label_printed(floor, job_id)
    assert event["data"]["reprint_reason"] == "smudged"
    assert event["data"]["serial"] == serial and event["data"]["kind"] == "traveller"
    jobs = [lb.job_id for lb in floor.sim.printers["kit-1"].labels]
    assert len(jobs) == 2 and jobs[-1] == job_id
    assert floor.print_job(job_id)["reason"] == "smudged"


# -- 4. machines ----------------------------------------------------------------------------

PERSONALISED = {"text": "For Ana", "font": "Script", "fixture": "PEN-V2"}


def start_engraving(rig: FloorRig, order_id: str) -> dict[str, Any]:
    """An engraving of one pen at laser-1, started by hand; returns the task view."""
    doc = order(order_id, ("PEN-ENG", 1))
    doc["lines"][0]["personalization"] = PERSONALISED
    rig.send("in/orders", doc)
    if not logged_in(rig, "laser-1"):
        rig.svc.login("laser-1", "OP-1002")
    rig.svc.next_task("laser-1")
    task: dict[str, Any] | None = rig.svc.view("laser-1")["task"]
    assert task is not None and task["order_id"] == order_id
    rig.svc.scan("laser-1", task["serial"])
    for m in task["materials"]:
        rig.svc.scan("laser-1", m["suggested_lot"] or m["material"])
    rig.svc.start("laser-1")
    return task


async def test_a_started_task_downloads_its_job_and_the_machine_completes_it(
    floor: FloorRig,
) -> None:
    machine = floor.sim.machines["laser-1"]
    task = start_engraving(floor, "SO-1")
    job_id = f"T{task['task_id']}-{task['attempt']}"
    await until("the job downloaded", lambda: machine.jobs)
    ((sent_id, params),) = machine.jobs
    assert sent_id == job_id
    assert {k: params[k] for k in PERSONALISED} == PERSONALISED
    # The laser engraving has no checklist: the machine's completion completes the task.
    await until("task completed", lambda: floor.task(task["task_id"])["status"] == "done", 10)
    (done,) = floor.events("task.completed")
    assert done["data"]["task_id"] == task["task_id"]
    assert floor.svc.current("laser-1") is None
    states = [e["data"] for e in floor.events("machine.state") if e["data"]["station"] == "laser-1"]
    assert states, "no machine.state from laser-1"
    assert all(s["synthesised"] is False for s in states), states
    seen = [s["state"] for s in states]
    assert "EXECUTE" in seen and "COMPLETE" in seen
    assert any(s["job_id"] == job_id for s in states)


async def test_a_machine_fault_holds_the_task_and_its_clearing_resumes_it(
    floor: FloorRig,
) -> None:
    machine = floor.sim.machines["laser-1"]
    alarm_id = "machine:laser-1/machine:fault"
    task = start_engraving(floor, "SO-1")
    task_id = task["task_id"]
    async with asyncio.timeout(5):
        await machine.wait_for_state(PackMLState.EXECUTE)
    await machine.fault("lid opened")
    await until("task paused", lambda: floor.task(task_id)["status"] == "paused")
    assert work(floor, task_id).pause_reason == "machine fault: lid opened"
    (paused,) = floor.events("task.paused")
    assert paused["data"]["reason"] == "machine fault: lid opened"
    await until("fault alarm", lambda: floor.alarms("alarm.raised", alarm_id))
    (raised,) = floor.alarms("alarm.raised", alarm_id)
    assert raised["data"]["kind"] == "machine_fault"
    assert "lid opened" in raised["data"]["message"]
    held = [e["data"] for e in floor.events("machine.state") if e["data"]["state"] == "HELD"]
    assert held and held[-1]["reason"] == "lid opened" and held[-1]["synthesised"] is False

    await machine.clear_fault()
    await until("fault alarm cleared", lambda: floor.alarms("alarm.cleared", alarm_id))
    await until("task resumed", lambda: floor.events("task.resumed"))
    (resumed,) = floor.events("task.resumed")
    assert resumed["data"]["paused_for"] == "machine fault: lid opened"
    # The job runs on (it is not downloaded again) and completes the task.
    await until("task completed", lambda: floor.task(task_id)["status"] == "done", 10)
    assert len(machine.jobs) == 1
    assert len(floor.alarms("alarm.raised", alarm_id)) == 1


# -- 5. devices away ------------------------------------------------------------------------


async def test_a_machine_away_fails_raises_an_alarm_and_the_station_works_by_hand(
    floor: FloorRig,
) -> None:
    name, alarm_id = "laser-1/machine", "device:laser-1/machine"
    machine = floor.sim.machines["laser-1"]
    await machine.stop()
    await until("machine failed", lambda: floor.device_state(name) == "failed")
    await until("device alarm", lambda: floor.alarms("alarm.raised", alarm_id))
    (raised,) = floor.alarms("alarm.raised", alarm_id)
    assert raised["data"]["kind"] == "device_offline"
    assert floor.station_view("laser-1")["devices"]["machine"] == "failed"
    assert floor.station_view("laser-1")["devices"]["printer"] == "ready"
    assert floor.device_state("dtg-1/machine") == "ready"  # the rest of the line goes on

    # By hand: no job is downloaded, the operator completes the task on the screen.
    task = start_engraving(floor, "SO-1")
    floor.svc.complete("laser-1")
    assert floor.task(task["task_id"])["status"] == "done"
    assert machine.jobs == []
    manual = [e["data"] for e in floor.events("machine.state") if e["data"]["station"] == "laser-1"]
    assert manual and all(s["synthesised"] is True for s in manual)

    await machine.start()
    await until("machine back", lambda: floor.device_state(name) == "ready")
    await until("device alarm cleared", lambda: floor.alarms("alarm.cleared", alarm_id))
    assert floor.station_view("laser-1")["devices"]["machine"] == "ready"
    assert len(floor.alarms("alarm.raised", alarm_id)) == 1


async def test_a_scale_away_fails_and_the_weight_is_entered_by_hand(floor: FloorRig) -> None:
    name, alarm_id = "pack-1/scale", "device:pack-1/scale"
    kitted_order(floor, "SO-1")
    await scan(floor, "pack-1", "OP-1001")
    await fill_parcel(floor, "pack-1", "SO-1")
    scale = floor.sim.scales["pack-1"]
    await scale.stop()
    await until("scale failed", lambda: floor.device_state(name) == "failed")
    await until("device alarm", lambda: floor.alarms("alarm.raised", alarm_id))
    view = await api(floor, "GET", "/api/stations/pack-1")
    assert view["devices"] == {"scale": "failed", "printer": "ready", "scanner": "ready"}
    devices = {d["device"]: d for d in await api(floor, "GET", "/api/devices")}
    assert devices[name]["state"] == "failed" and devices[name]["last_error"]
    assert devices["pack-2/scale"]["state"] == "ready"  # the rest of the line goes on

    reply = floor.svc.weight("pack-1", KIT_G)
    assert reply.ok, reply.message
    label_id = reply.data["label_id"]
    job = floor.gateway.store.one("SELECT job_id FROM print_jobs WHERE label_id = ?", (label_id,))
    assert job is not None
    await until("label printed", lambda: bool(label_printed(floor, job["job_id"])))
    msg = await scan(floor, "pack-1", label_id)
    assert msg["ok"], msg
    assert [e["order_id"] for e in floor.events("order.completed")] == ["SO-1"]

    await scale.start()
    await until("scale back", lambda: floor.device_state(name) == "ready")
    await until("device alarm cleared", lambda: floor.alarms("alarm.cleared", alarm_id))
    assert len(floor.alarms("alarm.raised", alarm_id)) == 1


async def _gateway(rig_config: Any, data: Path) -> tuple[Gateway, asyncio.Task[None]]:
    gw = Gateway(
        rig_config,
        data_dir=data,
        clock=line_clock(),
        link=None,
        http_port=0,
        device_policy=FAST_DEVICES,
    )
    running = asyncio.create_task(gw.run())
    await until("the gateway started", gw.started.is_set)
    return gw, running


async def _stop(running: asyncio.Task[None]) -> None:
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


async def test_a_job_running_while_the_gateway_restarts_still_completes_its_task(
    tmp_path: Path,
) -> None:
    sim_root = Path(tempfile.mkdtemp(prefix="lg-"))
    config, sim = await start_simulators(tmp_path, sim_root)
    data = tmp_path / "data"
    data.mkdir()
    try:
        machine = sim.machines["laser-1"]
        machine.cycle_s = 3.0  # long enough to restart the gateway in the middle
        gw, running = await _gateway(config, data)
        # Paired once: the terminals keep their credentials over the restart.
        keys = issue_keys(gw.store, config, gw.core.clock.now())
        rig = FloorRig(gw, sim, config, keys)
        rig.send("in/masterdata/catalog", catalog_bytes())
        rig.send("in/masterdata/stock", stock_doc())
        await until(
            "laser-1's machine ready", lambda: rig.device_state("laser-1/machine") == "ready"
        )
        task = start_engraving(rig, "SO-R")
        await until("job downloaded", lambda: work(rig, task["task_id"]).machine_job is not None)
        await _stop(running)
        assert machine.state == PackMLState.EXECUTE  # the machine works on, the gateway is away

        gw, running = await _gateway(config, data)
        rig = FloorRig(gw, sim, config, keys)
        try:
            await until(
                "the task completed by the machine after the restart",
                lambda: rig.task(task["task_id"])["status"] == "done",
                15,
            )
        finally:
            await _stop(running)
    finally:
        await sim.stop()
        shutil.rmtree(sim_root, ignore_errors=True)
