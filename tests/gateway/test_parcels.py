"""The right parcel (contract 1.1 "Parcels"), through the station API of a running gateway:
the containers proposed when the parcel starts, the operator scanning them (or another
that holds the units, or one refused with why), ``order.completed`` listing them, and the
bad inputs: containers all smaller than a unit (split, or a line lead decides), missing
dimensions (the BOM's containers, said once).

Every expectation is worked out here from the reference catalog's numbers (sizes in mm,
weights in g, standard costs in CNY), not from the code under test.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.access.audit import read_trail
from gateway.app.root import Gateway
from gateway.orderbook import parcels_report
from tests.gateway.conftest import catalog_bytes
from tests.gateway.test_station_api import Line, served_line

ROOT = Path(__file__).resolve().parents[2]
EVENT_SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "cloud_sync" / "schemas" / "event.schema.json").read_text()
)
CATALOG: dict[str, Any] = json.loads(catalog_bytes())
SHIP_BY = "2030-01-01T10:00:00+08:00"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Line, Gateway]]:
    async with served_line(tmp_path) as (ln, gw):
        ln.badges |= {"dtg-1": "OP-1001", "emb-1": "OP-1003"}
        yield ln, gw


# -- driving the line ----------------------------------------------------------------------


async def send_order(ln: Line, order_id: str, *lines: tuple[str, int]) -> None:
    doc = {
        "order_id": order_id,
        "ship_by": SHIP_BY,
        "lines": [
            {"sku": sku, "qty": qty, "personalization": {"text": order_id}} for sku, qty in lines
        ],
    }
    accepted = sum(e["type"] == "order.accepted" for e in ln.hub.events)
    ln.hub.publish("in/orders", json.dumps(doc).encode())
    await ln.events("order.accepted", accepted + 1)


async def use_catalog(ln: Line, gw: Gateway, doc: dict[str, Any]) -> None:
    ln.hub.publish("in/masterdata/catalog", json.dumps(doc).encode())
    for _ in range(1000):  # the link takes it within a few of its polls
        if gw.core.catalog.version == doc["version"]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"catalog {doc['version']} never came in force")


def catalog(version: str, keep: set[str] | None = None) -> dict[str, Any]:
    """The reference catalog under ``version``; with ``keep``, only those containers stay
    containers (the others become plain materials)."""
    doc = copy.deepcopy(CATALOG)
    doc["version"] = version
    if keep is not None:
        for m in doc["materials"]:
            if "container" in m and m["material"] not in keep:
                del m["container"]
    return doc


async def make_units(ln: Line, order_id: str) -> list[str]:
    """Do every unit task of ``order_id`` right, through the API; its serials."""
    serials: set[str] = set()
    for _ in range(40):
        stations = await ln.api.get("/api/stations")
        todo = [
            v["station"]
            for v in stations.json()
            if "pack" not in v["capabilities"]
            and any(q["order_id"] == order_id and q["serial"] for q in v["queue"])
        ]
        if not todo:
            return sorted(serials)
        station = todo[0]
        task = await ln.take(station)
        serials.add(task["serial"])
        await ln.scan(station, task["serial"])
        for m in task["materials"]:
            await ln.scan(station, m["suggested_lot"] or m["material"])
        await ln.post(station, "start")
        for i, _ in enumerate(task["checklist"]):
            await ln.post(station, "checklist", {"item": i, "passed": True})
        await ln.post(station, "complete")
    raise AssertionError(f"{order_id}: unit tasks never ran out")


async def start_parcel(ln: Line, order_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Take the order's parcel at pack-1 and scan its first unit; (the task before the
    scan, the scan's answer)."""
    task = await ln.take("pack-1")
    assert task["order_id"] == order_id and task["serial"] is None
    first = await ln.scan("pack-1", task["units"][0]["serial"])
    return task, first


async def scan_rest(ln: Line, task: dict[str, Any]) -> None:
    for u in task["units"][1:]:
        await ln.scan("pack-1", u["serial"])


async def refused(ln: Line, code: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await ln.api.post(path, json=body)
    assert r.status_code == 409, r.text
    doc: dict[str, Any] = r.json()
    assert doc["code"] == code, doc
    return doc


async def refused_scan(ln: Line, code: str, scanned: str) -> dict[str, Any]:
    return await refused(ln, code, "/api/stations/pack-1/scan", {"code": scanned})


async def finish(ln: Line, order_id: str) -> dict[str, Any]:
    """Weigh, label and confirm the parcel at pack-1; its order.completed event."""
    task = (await ln.view("pack-1"))["task"]
    weighed = await ln.post("pack-1", "weight", {"grams": task["expected_weight_g"]})
    assert weighed["ok"], weighed
    done = len([e for e in ln.hub.events if e["type"] == "order.completed"])
    await ln.scan("pack-1", weighed["label_id"])
    events = await ln.events("order.completed", done + 1)
    [event] = [e for e in events if e["order_id"] == order_id]
    jsonschema.validate(event, EVENT_SCHEMA)
    return event


def consumed(ln: Line, order_id: str, material: str) -> float:
    return sum(
        float(e["data"]["qty"])
        for e in ln.hub.events
        if e["type"] == "material.consumed"
        and e.get("order_id") == order_id
        and e["data"]["material"] == material
    )


def raised(ln: Line, alarm_id: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in ln.hub.events
        if e["type"] == "alarm.raised" and e["data"]["alarm_id"] == alarm_id
    ]


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# -- the proposal, and the operator's scans -------------------------------------------------


async def test_three_tees_go_in_one_large_polybag(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    await send_order(ln, "SO-TEES", ("TEE-WHT-M", 3))
    serials = await make_units(ln, "SO-TEES")
    task, first = await start_parcel(ln, "SO-TEES")
    # TEE-WHT-M is 280×210×18: one to a layer in a POLYBAG (300×400×40), and three stack
    # to 54 mm, over its 40: the proposal is one POLYBAG-L (400×500×60), 0.55, not the
    # BOM's three POLYBAGs (1.05) nor two (0.70).
    assert "POLYBAG-L ×1" in first["message"]
    assert "POLYBAG-L ×1" in first["message_zh"] and has_chinese(first["message_zh"])
    await scan_rest(ln, task)
    view = (await ln.view("pack-1"))["task"]
    assert [(m["material"], m["qty"]) for m in view["materials"]] == [("POLYBAG-L", 1)]
    assert (await ln.view("pack-1"))["next"] == "Scan POLYBAG-L ×1."
    # The BOM's POLYBAG cannot hold them: refused with why, in both languages.
    no = await refused_scan(ln, "CONTAINER_TOO_SMALL", "POLYBAG")
    assert no["message"] == (
        f"Units {', '.join(serials)} do not fit together in POLYBAG (300×400×40 mm)."
    )
    assert "300×400×40" in no["message_zh"] and has_chinese(no["message_zh"])
    assert no["next"] == "Scan POLYBAG-L ×1."
    ok = await ln.scan("pack-1", "POLYBAG-L")
    assert ok["message"] == "POLYBAG-L ×1 accepted for the parcel."
    event = await finish(ln, "SO-TEES")
    assert event["data"]["containers"] == [{"material": "POLYBAG-L", "qty": 1}]
    assert event["data"]["units"] == serials
    assert consumed(ln, "SO-TEES", "POLYBAG-L") == 1
    assert consumed(ln, "SO-TEES", "POLYBAG") == 0
    # Customer service sees what the parcel went in.
    r = await ln.api.get("/api/orders/SO-TEES")
    assert r.json()["parcel"]["containers"] == [{"material": "POLYBAG-L", "qty": 1.0}]
    # What the demo prints: the parcel against the BOM's one POLYBAG per unit.
    [p] = parcels_report.packed_since(gw.core, None)
    assert (p.containers, p.bom) == ({"POLYBAG-L": 1.0}, {"POLYBAG": 3.0})
    assert parcels_report.describe(p) == (
        "SO-TEES: 3 units in POLYBAG-L ×1 (0.55); BOM: POLYBAG ×3 (1.05)"
    )
    tally = parcels_report.Tally()
    tally.add(p)
    assert tally.text() == (
        "1 parcels, 3 units: 1 containers for 0.55 against the BOM's 3 for 1.05 (47.6 % saved)"
    )


async def test_another_container_that_holds_the_units_replaces_the_proposed_one(
    served: tuple[Line, Gateway],
) -> None:
    ln, _ = served
    await send_order(ln, "SO-GIFT", ("TUMBLER-ENG", 1), ("PEN-ENG", 1))
    await make_units(ln, "SO-GIFT")
    task, first = await start_parcel(ln, "SO-GIFT")
    # The tumbler is 110×110×230, rigid: too long for its BOM's CARTON-S (200×150×100);
    # laid down it goes in a CARTON-M (300×220×150) with the pen (180×60×35) beside it:
    # 2.4, against CARTON-M + CARTON-S (4.0).
    assert "CARTON-M ×1" in first["message"]
    await scan_rest(ln, task)
    tumbler = next(
        u["serial"]
        for u in (await ln.api.get("/api/orders/SO-GIFT")).json()["units"]
        if u["sku"] == "TUMBLER-ENG"
    )
    small = await refused_scan(ln, "CONTAINER_TOO_SMALL", "CARTON-S")
    assert small["message"] == (
        f"Unit {tumbler} (TUMBLER-ENG, 110×110×230 mm) does not fit in CARTON-S (200×150×100 mm)."
    )
    assert "110×110×230" in small["message_zh"] and has_chinese(small["message_zh"])
    assert small["next"] == "Scan CARTON-M ×1."
    bag = await refused_scan(ln, "CONTAINER_KIND", "POLYBAG-L")
    assert "soft mailer" in bag["message"] and "goes in a carton" in bag["message"]
    assert has_chinese(bag["message_zh"])
    # A large carton (400×300×220) holds both as well: accepted, and said so.
    large = await ln.scan("pack-1", "CARTON-L")
    assert large["message"].startswith("CARTON-L accepted instead of CARTON-M ×1")
    assert large["replaced"] == [{"material": "CARTON-M", "qty": 1}]
    event = await finish(ln, "SO-GIFT")
    assert event["data"]["containers"] == [{"material": "CARTON-L", "qty": 1}]
    assert consumed(ln, "SO-GIFT", "CARTON-L") == 1
    assert consumed(ln, "SO-GIFT", "CARTON-M") == consumed(ln, "SO-GIFT", "CARTON-S") == 0


async def test_a_container_too_weak_for_the_units_is_refused_with_their_weight(
    served: tuple[Line, Gateway],
) -> None:
    ln, gw = served
    weak = catalog("ref-weak-bag")
    for m in weak["materials"]:
        if m["material"] == "POLYBAG-L":
            m["container"]["max_load_g"] = 150  # less than one tee (197 g)
    await use_catalog(ln, gw, weak)
    await send_order(ln, "SO-HEAVY", ("TEE-WHT-M", 3))
    await make_units(ln, "SO-HEAVY")
    task, first = await start_parcel(ln, "SO-HEAVY")
    # Without POLYBAG-L: two POLYBAGs (two tees stacked, 36 mm; one alone), 0.70.
    assert "POLYBAG ×2" in first["message"]
    await scan_rest(ln, task)
    heavy = await refused_scan(ln, "CONTAINER_OVERLOAD", "POLYBAG-L")
    # The first open slot holds two tees: 2 × 197 = 394 g.
    assert heavy["message"] == "POLYBAG-L takes at most 150 g; these units weigh 394 g."
    assert "394" in heavy["message_zh"] and has_chinese(heavy["message_zh"])
    # One scan of POLYBAG records both (as a BOM line of quantity 2 always did).
    assert (await ln.scan("pack-1", "POLYBAG"))["message"] == "POLYBAG ×2 accepted for the parcel."
    event = await finish(ln, "SO-HEAVY")
    assert event["data"]["containers"] == [{"material": "POLYBAG", "qty": 2}]


# -- bad input: containers smaller than a unit -----------------------------------------------


async def test_containers_too_small_for_the_whole_order_split_it(
    served: tuple[Line, Gateway],
) -> None:
    ln, gw = served
    await use_catalog(ln, gw, catalog("ref-bags-only", keep={"POLYBAG", "CARTON-S"}))
    await send_order(ln, "SO-SPLIT", ("TEE-WHT-M", 3))
    await make_units(ln, "SO-SPLIT")
    task, _ = await start_parcel(ln, "SO-SPLIT")
    await scan_rest(ln, task)
    # A POLYBAG takes two tees (36 mm); CARTON-S takes none (280 > 200): two POLYBAGs.
    assert (await ln.view("pack-1"))["next"] == "Scan POLYBAG ×2."
    await ln.scan("pack-1", "POLYBAG")
    event = await finish(ln, "SO-SPLIT")
    assert event["data"]["containers"] == [{"material": "POLYBAG", "qty": 2}]


async def _waiting_tumbler(ln: Line, gw: Gateway, order_id: str) -> dict[str, Any]:
    """A tumbler whose containers are all too small for it (no CARTON-M or -L), its parcel
    started; the first scan's answer."""
    await use_catalog(ln, gw, catalog("ref-small", keep={"POLYBAG", "POLYBAG-L", "CARTON-S"}))
    await send_order(ln, order_id, ("TUMBLER-ENG", 1))
    await make_units(ln, order_id)
    _, first = await start_parcel(ln, order_id)
    return first


async def test_a_unit_no_container_holds_waits_for_a_line_leads_containers(
    served: tuple[Line, Gateway],
) -> None:
    ln, gw = served
    first = await _waiting_tumbler(ln, gw, "SO-BIG")
    # The tumbler (110×110×230, rigid) fits no mailer and not CARTON-S (230 > 200); the
    # largest container is POLYBAG-L (400×500×60: 12,000,000 mm³).
    why = "the largest, POLYBAG-L, is 400×500×60 mm"
    assert "110×110×230" in first["message"] and why in first["message"]
    [alarm] = [a for a in (await ln.api.get("/api/alarms")).json() if a["kind"] == "packing"]
    assert alarm["alarm_id"] == "parcel:SO-BIG" and alarm["source"] == "SO-BIG"
    assert alarm["message"].startswith("No container fits order SO-BIG: unit ")
    assert "110×110×230 mm" in alarm["message"] and "POLYBAG-L, is 400×500×60" in alarm["message"]
    assert has_chinese(alarm["message_zh"])
    view = await ln.view("pack-1")
    assert view["next"].endswith("Wait for a line lead to choose the containers.")
    assert has_chinese(view["next_zh"])
    # Packing waits: no container, no weighing.
    await refused_scan(ln, "PARCEL_WAITING", "CARTON-S")
    await refused(ln, "PARCEL_WAITING", "/api/stations/pack-1/weight", {"grams": 455.0})
    # Not the operator's decision.
    body: dict[str, Any] = {
        "check": "parcel",
        "reason": "two small cartons, taped",
        "containers": [{"material": "CARTON-S", "qty": 2}],
    }
    terminal = {"Authorization": f"Bearer {ln.keys.terminal('pack-1')}"}
    r = await ln.api.post("/api/stations/pack-1/override", json=body, headers=terminal)
    assert r.status_code == 403, r.text
    # A container the catalog does not have is no decision.
    wrong = {**body, "containers": [{"material": "GIFTBOX-S", "qty": 1}]}
    r = await ln.api.post("/api/stations/pack-1/override", json=wrong)
    assert r.status_code == 409 and r.json()["code"] == "NOT_A_CONTAINER", r.text
    both = {**body, "as_bom": True}
    r = await ln.api.post("/api/stations/pack-1/override", json=both)
    assert r.status_code == 409 and r.json()["code"] == "CONTAINERS_REQUIRED", r.text
    # The line lead decides: two small cartons.
    r = await ln.api.post("/api/stations/pack-1/override", json=body)
    assert r.status_code == 200, r.text
    assert "CARTON-S ×2" in r.json()["message"] and r.json()["next"] == "Scan CARTON-S ×2."
    assert not [a for a in (await ln.api.get("/api/alarms")).json() if a["kind"] == "packing"]
    lead = ln.keys.token("line_lead").split("_")[1]
    (row,) = read_trail(gw.store, action="override")
    assert row.actor == f"token:{lead}" and row.role == "line_lead"
    assert row.detail == "parcel: CARTON-S ×2; two small cartons, taped"
    # What the lead chose, and nothing else.
    other = await refused_scan(ln, "WRONG_CONTAINER", "POLYBAG-L")
    assert "CARTON-S ×2" in other["message"]
    await ln.scan("pack-1", "CARTON-S")
    event = await finish(ln, "SO-BIG")
    assert event["data"]["containers"] == [{"material": "CARTON-S", "qty": 2}]
    assert [e["data"]["alarm_id"] for e in ln.hub.events if e["type"] == "alarm.cleared"][-1:] == [
        "parcel:SO-BIG"
    ]


async def test_a_line_lead_may_say_pack_as_the_bom_says(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    await _waiting_tumbler(ln, gw, "SO-ASBOM")
    body = {"check": "parcel", "reason": "customer's own request", "as_bom": True}
    r = await ln.api.post("/api/stations/pack-1/override", json=body)
    assert r.status_code == 200, r.text
    # TUMBLER-ENG's BOM packs it in one CARTON-S.
    assert (await ln.view("pack-1"))["next"] == "Scan CARTON-S ×1."
    await ln.scan("pack-1", "CARTON-S")
    event = await finish(ln, "SO-ASBOM")
    assert event["data"]["containers"] == [{"material": "CARTON-S", "qty": 1}]


# -- bad input: no dimensions, no containers -------------------------------------------------


async def test_missing_dimensions_fall_back_to_the_boms_containers_said_once(
    served: tuple[Line, Gateway],
) -> None:
    ln, gw = served
    no_dims = catalog("ref-no-dims")
    for s in no_dims["skus"]:
        if s["sku"] == "TEE-WHT-M":
            del s["dims_mm"]
    await use_catalog(ln, gw, no_dims)
    for order_id, qty in (("SO-ND1", 3), ("SO-ND2", 1)):
        await send_order(ln, order_id, ("TEE-WHT-M", qty))
        await make_units(ln, order_id)
        task, _ = await start_parcel(ln, order_id)
        await scan_rest(ln, task)
        # As before contract 1.1: the BOM's POLYBAG, one per unit.
        assert (await ln.view("pack-1"))["next"] == f"Scan POLYBAG ×{qty}."
        await ln.scan("pack-1", "POLYBAG")
        event = await finish(ln, order_id)
        assert event["data"]["containers"] == [{"material": "POLYBAG", "qty": qty}]
    # Said once for the SKU, not once per order.
    [said] = raised(ln, "masterdata:dims:TEE-WHT-M")
    assert said["kind"] == "masterdata" and said["source"] == "TEE-WHT-M"
    assert "TEE-WHT-M has no dimensions" in said["message"]
    # The catalog gets its dimensions: the next order of the SKU is proposed a parcel, and
    # the alarm goes.
    await use_catalog(ln, gw, catalog("ref-dims-again"))
    await send_order(ln, "SO-ND3", ("TEE-WHT-M", 3))
    await make_units(ln, "SO-ND3")
    _, first = await start_parcel(ln, "SO-ND3")
    assert "POLYBAG-L ×1" in first["message"]
    cleared = [e for e in ln.hub.events if e["type"] == "alarm.cleared"]
    assert "masterdata:dims:TEE-WHT-M" in [e["data"]["alarm_id"] for e in cleared]


async def test_a_catalog_without_containers_packs_as_the_bom_says(
    served: tuple[Line, Gateway],
) -> None:
    ln, gw = served
    await use_catalog(ln, gw, catalog("ref-no-containers", keep=set()))
    for order_id in ("SO-NC1", "SO-NC2"):
        await send_order(ln, order_id, ("PEN-ENG", 2))
        await make_units(ln, order_id)
        task, _ = await start_parcel(ln, order_id)
        await scan_rest(ln, task)
        assert (await ln.view("pack-1"))["next"] == "Scan CARTON-S."
        await ln.scan("pack-1", "CARTON-S")
        event = await finish(ln, order_id)
        # CARTON-S is no container to this catalog: the parcel lists none.
        assert event["data"]["containers"] == []
        assert consumed(ln, order_id, "CARTON-S") == 2
    [said] = raised(ln, "masterdata:containers")
    assert said["kind"] == "masterdata"


# -- a repacked parcel -------------------------------------------------------------------------


async def test_a_repacked_parcel_keeps_the_line_leads_decision(
    served: tuple[Line, Gateway],
) -> None:
    ln, gw = served
    await _waiting_tumbler(ln, gw, "SO-REPACK")
    body = {
        "check": "parcel",
        "reason": "bubble wrap in a large bag",
        "containers": [{"material": "POLYBAG-L", "qty": 1}],
    }
    assert (await ln.api.post("/api/stations/pack-1/override", json=body)).status_code == 200
    await ln.scan("pack-1", "POLYBAG-L")
    # Deciding again after a container was scanned is refused: repack first.
    r = await ln.api.post("/api/stations/pack-1/override", json=body)
    assert r.status_code == 409 and r.json()["code"] == "CONTAINERS_SCANNED", r.text
    await ln.post("pack-1", "fail", {"reason": "torn bag", "disposition": "rework"})
    task = (await ln.view("pack-1"))["task"]
    await ln.scan("pack-1", task["units"][0]["serial"])
    assert (await ln.view("pack-1"))["next"] == "Scan POLYBAG-L ×1."
    await ln.scan("pack-1", "POLYBAG-L")
    event = await finish(ln, "SO-REPACK")
    assert event["data"]["containers"] == [{"material": "POLYBAG-L", "qty": 1}]
    # The first attempt's bag was never consumed (a failed parcel consumes nothing).
    assert consumed(ln, "SO-REPACK", "POLYBAG-L") == 1
