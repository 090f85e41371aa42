"""Orders and master data in: validation, idempotency, revisions, cancellation, rejection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloud_sync.ports import InboundMessage
from tests.gateway.conftest import Line, catalog_bytes, order


def codes(line: Line) -> list[list[str]]:
    return [[e["code"] for e in ev["data"]["errors"]] for ev in line.events("order.rejected")]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        (b"{not json", "INVALID_JSON", ""),
        (b"\xff\xfe", "INVALID_JSON", ""),
        (b"[" * 100_000 + b"]" * 100_000, "INVALID_JSON", ""),  # deeper than the parser goes
        (
            json.dumps({"order_id": "SO-1", "lines": [{"sku": "TEE-WHT-M", "qty": 1}]}).encode(),
            "SCHEMA",
            "ship_by",
        ),
        (json.dumps(order("SO-1", ("NOPE", 1))).encode(), "UNKNOWN_SKU", "lines.0.sku"),
        (json.dumps(order("SO-1", ("TEE-WHT-M", 0))).encode(), "QTY_OUT_OF_RANGE", "lines.0.qty"),
        (
            json.dumps(order("SO-1", ("TEE-WHT-M", 1001))).encode(),
            "QTY_OUT_OF_RANGE",
            "lines.0.qty",
        ),
        (
            json.dumps(order("SO-1", ("TEE-WHT-M", 1))).replace('"qty": 1', '"qty": "2"').encode(),
            "SCHEMA",
            "lines.0.qty",
        ),
        (
            json.dumps({**order("SO-1", ("TEE-WHT-M", 1)), "ship_by": "tomorrow"}).encode(),
            "SCHEMA",
            "ship_by",
        ),
        (json.dumps(order("bad id!", ("TEE-WHT-M", 1))).encode(), "SCHEMA", "order_id"),
        (b"[]", "SCHEMA", ""),
        (b"42", "SCHEMA", ""),
        # Not JSON (RFC 8259 has no NaN; a lone surrogate is no character), though Python's
        # parser reads both: they were accepted, or failed as INTERNAL. Each is named by
        # its field, so that in an array only its order is refused.
        (
            json.dumps(order("SO-1", ("PEN-ENG", 1), note=float("nan"))).encode(),
            "INVALID_JSON",
            "note",
        ),
        (
            json.dumps(order("SO-1", ("PEN-ENG", 1), note="\ud800")).encode(),
            "SCHEMA",
            "note",
        ),
        ("{}".encode("utf-16"), "INVALID_JSON", ""),  # json.loads(bytes) reads UTF-16
    ],
)
def test_each_bad_order_is_rejected_once_with_its_code(
    line: Line, payload: bytes, code: str, field: str
) -> None:
    line.send("in/orders", payload)
    [rejected] = line.events("order.rejected")
    assert [e["code"] for e in rejected["data"]["errors"]] == [code]
    assert rejected["data"]["errors"][0]["field"] == field
    assert rejected["data"]["errors"][0]["message"]
    ref = rejected["data"]["raw_ref"]
    raw = line.gateway.store.one(
        "SELECT raw FROM rejections WHERE id = ?", (int(ref.split("/")[1]),)
    )
    assert raw is not None and bytes(raw[0]) == payload
    assert line.events("order.accepted") == []


def test_one_bad_order_in_an_array_does_not_stop_the_others(line: Line) -> None:
    batch = [
        order("SO-1", ("TEE-WHT-M", 1)),
        order("SO-2", ("NOPE", 1)),
        order("SO-3", ("PEN-ENG", 2)),
    ]
    line.send("in/orders", batch)
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-1", "SO-3"]
    [rejected] = line.events("order.rejected")
    assert rejected["order_id"] == "SO-2"
    assert codes(line) == [["UNKNOWN_SKU"]]


def test_bad_messages_between_good_ones_in_one_batch(line: Line) -> None:
    msgs = [
        InboundMessage("in/orders", json.dumps(order("SO-1", ("TEE-WHT-M", 1))).encode()),
        InboundMessage("in/orders", b"garbage"),
        InboundMessage("in/orders", json.dumps(order("SO-2", ("TEE-WHT-M", 1))).encode()),
    ]
    line.inbound.deliver(msgs)
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-1", "SO-2"]
    assert codes(line) == [["INVALID_JSON"]]


def test_the_same_order_and_revision_again_changes_nothing(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 2)))
    before = line.events()
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 2)))
    assert line.events() == before


def test_a_revision_before_work_replaces_the_order(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 2)))
    line.send("in/orders", {**order("SO-1", ("PEN-ENG", 1)), "revision": 2})
    accepted = line.events("order.accepted")
    assert [(e["data"]["revision"], e["data"]["units"]) for e in accepted] == [(1, 2), (2, 1)]
    skus = line.gateway.store.all("SELECT DISTINCT sku FROM work_orders WHERE order_id='SO-1'")
    assert [r[0] for r in skus] == ["PEN-ENG"]
    # The blanks reserved for revision 1 went back to stock.
    held = line.gateway.store.one(
        "SELECT count(*) FROM reservations WHERE material = ?", ("BLANK-TEE-WHT-M",)
    )
    assert held is not None and held[0] == 0


def test_a_revision_after_work_started_is_rejected(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 1)))
    svc = line.svc
    svc.login("dtg-1", "OP-1001")
    svc.next_task("dtg-1")
    line.send("in/orders", {**order("SO-1", ("TEE-WHT-M", 1)), "revision": 2})
    assert line.events("order.rejected") == []  # dispatched is not started
    assert svc.current("dtg-1") is None  # the replaced task left the station
    svc.next_task("dtg-1")
    svc.scan("dtg-1", "BLANK-TEE-WHT-M")
    svc.scan("dtg-1", "INK-DTG-CMYK-L2611A")
    svc.start("dtg-1")
    line.send("in/orders", {**order("SO-1", ("TEE-WHT-M", 3)), "revision": 3})
    assert codes(line) == [["IN_PROGRESS"]]
    line.send("in/orders", {**order("SO-1", ("TEE-WHT-M", 3)), "revision": 1})
    assert codes(line) == [["IN_PROGRESS"], ["STALE_REVISION"]]


def test_cancel_stops_what_has_not_started(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 2)))
    line.send("in/cancel", {"order_id": "SO-1", "reason": "customer changed mind"})
    [cancelled] = line.events("order.cancelled")
    assert cancelled["order_id"] == "SO-1"
    assert cancelled["data"]["reason"] == "customer changed mind"
    statuses = line.gateway.store.all("SELECT DISTINCT status FROM tasks WHERE order_id='SO-1'")
    assert [r[0] for r in statuses] == ["cancelled"]
    assert line.svc.queue("dtg-1") == []
    # A cancel of an unknown order is kept for inspection but emits nothing.
    line.send("in/cancel", {"order_id": "SO-404"})
    assert len(line.events("order.cancelled")) == 1
    assert line.events("order.rejected") == []


def test_orders_before_any_catalog_are_rejected(line: Line) -> None:
    line.gateway.core.catalog.version = None
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 1)))
    assert codes(line) == [["NO_CATALOG"]]


def test_a_bad_catalog_is_refused_whole_and_the_old_one_stays(line: Line) -> None:
    doc: dict[str, Any] = json.loads(catalog_bytes())
    doc["version"] = "ref-2"
    doc["skus"][0]["routing"] = "R-MISSING"
    line.send("in/masterdata/catalog", doc)
    [alarm] = line.events("alarm.raised")
    assert alarm["data"]["alarm_id"] == "masterdata:catalog"
    assert "R-MISSING" in alarm["data"]["message"]
    assert line.gateway.core.catalog.version == "ref-1"
    line.send("in/orders", order("SO-1", ("TEE-WHT-S", 1)))
    assert len(line.events("order.accepted")) == 1
    doc["skus"][0]["routing"] = "R-TEE-DTG"
    line.send("in/masterdata/catalog", doc)
    assert line.gateway.core.catalog.version == "ref-2"
    [cleared] = line.events("alarm.cleared")
    assert cleared["data"]["alarm_id"] == "masterdata:catalog"


def test_accepted_work_keeps_its_routing_when_the_catalog_changes(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 1)))
    doc: dict[str, Any] = json.loads(catalog_bytes())
    doc["version"] = "ref-2"
    doc["routings"][0]["operations"][0]["run_s"] = 999
    line.send("in/masterdata/catalog", doc)
    ops = line.gateway.store.one("SELECT operations FROM work_orders WHERE order_id = 'SO-1'")
    assert ops is not None and json.loads(ops[0])[0]["run_s"] == 45


def test_a_message_that_trips_a_bug_is_rejected_and_the_rest_go_on(
    line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for a bug, at the one seam a test can reach: explode raising for one order
    # after that order's first events were appended.
    from gateway.orderbook.workorders import explode as real

    def explode(core: Any, order: Any, kitted: bool) -> None:
        real(core, order, kitted)
        if order.order_id == "SO-BUG":
            raise RuntimeError("bug")

    monkeypatch.setattr("gateway.orderbook.inbound.explode", explode)
    line.inbound.deliver(
        [
            InboundMessage("in/orders", json.dumps(order("SO-1", ("TEE-WHT-M", 1))).encode()),
            InboundMessage("in/orders", json.dumps(order("SO-BUG", ("TEE-WHT-M", 1))).encode()),
            InboundMessage("in/orders", json.dumps(order("SO-2", ("TEE-WHT-M", 1))).encode()),
        ]
    )
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-1", "SO-2"]
    assert codes(line) == [["INTERNAL"]]
    seqs = [e["seq"] for e in line.events()]
    assert seqs == list(range(1, len(seqs) + 1))  # the undone events left no gap
    left = line.gateway.store.one("SELECT count(*) FROM units WHERE order_id = 'SO-BUG'")
    assert left is not None and left[0] == 0


def test_cancel_while_packing_ends_the_parcel_and_a_unit_in_work_is_finished_by_hand(
    line: Line,
) -> None:
    from tests.gateway.conftest import do_unit_task

    line.send("in/orders", [order("SO-1", ("PEN-ENG", 1)), order("SO-2", ("TEE-WHT-M", 1))])
    svc = line.svc
    for station, badge in (
        ("laser-1", "OP-1006"),
        ("qc-1", "OP-1005"),
        ("kit-1", "OP-1001"),
        ("pack-1", "OP-1003"),
        ("dtg-1", "OP-1002"),
    ):
        svc.login(station, badge)
    for station in ("laser-1", "qc-1", "kit-1"):
        do_unit_task(svc, station)
    svc.next_task("pack-1")
    serial = svc.view("pack-1")["task"]["units"][0]["serial"]
    svc.scan("pack-1", serial)  # packing has started
    svc.next_task("dtg-1")
    svc.scan("dtg-1", "BLANK-TEE-WHT-M")
    svc.scan("dtg-1", "INK-DTG-CMYK-L2611A")
    svc.start("dtg-1")  # SO-2's unit is in work
    line.send("in/cancel", {"order_id": "SO-1", "reason": "fraud check"})
    line.send("in/cancel", {"order_id": "SO-2", "reason": "customer"})
    assert svc.current("pack-1") is None  # the parcel is not shipped
    [c1, c2] = line.events("order.cancelled")
    assert c1["data"]["units_in_work"] == []
    assert len(c2["data"]["units_in_work"]) == 1
    svc.checklist("dtg-1", 0, True)
    svc.checklist("dtg-1", 1, True)
    reply = svc.complete("dtg-1")
    assert "cancelled" in reply.message
    assert line.events("order.completed") == []
    assert line.gateway.store.one("SELECT count(*) FROM reservations")[0] == 0  # type: ignore[index]
