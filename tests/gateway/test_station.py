"""Operator actions: what is refused and why, rework and scrap, and packing."""

from __future__ import annotations

from gateway.desk.replies import Refused
from tests.gateway.conftest import Line, do_unit_task, order, pack, stock_doc


class refused:
    """``with refused("CODE"):`` checks the refusal code, and that it explains itself."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        assert isinstance(exc, Refused), f"expected a refusal {self.code}, got {exc!r}"
        assert exc.code == self.code, f"{exc.code}: {exc.message}"
        assert exc.message and exc.next
        return True


def test_badges_and_permissions(line: Line) -> None:
    svc = line.svc
    with refused("NOT_LOGGED_IN"):
        svc.next_task("dtg-1")
    with refused("UNKNOWN_BADGE"):
        svc.scan("dtg-1", "OP-9999")
    with refused("NOT_PERMITTED"):
        svc.login("emb-1", "OP-1001")
    assert "Welcome" in svc.scan("dtg-1", "OP-1001\r\n").message
    # Logging in elsewhere logs out here.
    svc.login("dtg-2", "OP-1001")
    assert svc.view("dtg-1")["operator"] is None


def test_wrong_scans_are_refused_with_the_reason(line: Line) -> None:
    stock = stock_doc()
    stock["items"].append(
        {"material": "INK-DTG-CMYK", "lot": "INK-OLD", "qty": 900, "expires": "2021-01-01"}
    )
    line.send("in/masterdata/stock", stock)
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 1)))
    svc = line.svc
    svc.login("dtg-1", "OP-1001")
    with refused("NO_TASK"):
        svc.scan("dtg-1", "BLANK-TEE-WHT-M")
    svc.next_task("dtg-1")
    with refused("WRONG_MATERIAL"):
        svc.scan("dtg-1", "BLANK-TEE-BLK-M")
    with refused("WRONG_MATERIAL"):
        svc.scan("dtg-1", "LIPSTICK-R01-L2609A")
    with refused("UNKNOWN_CODE"):
        svc.scan("dtg-1", "LOT-THAT-DOES-NOT-EXIST")
    with refused("BAD_CODE"):
        svc.scan("dtg-1", "\x00\x01")
    with refused("LOT_REQUIRED"):
        svc.scan("dtg-1", "INK-DTG-CMYK")
    with refused("EXPIRED_LOT"):
        svc.scan("dtg-1", "INK-OLD")
    with refused("MATERIALS_MISSING"):
        svc.start("dtg-1")
    svc.scan("dtg-1", "BLANK-TEE-WHT-M")
    with refused("ALREADY_SCANNED"):
        svc.scan("dtg-1", "BLANK-TEE-WHT-M")
    reply = svc.scan("dtg-1", "INK-DTG-CMYK-L2611A")
    assert reply.next == "Press Start."
    with refused("NOT_RUNNING"):
        svc.complete("dtg-1")
    svc.start("dtg-1")
    with refused("CHECKLIST_OPEN"):
        svc.complete("dtg-1")
    assert line.events("task.completed") == []


def test_pause_needs_a_reason_and_resume_continues(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("PEN-ENG", 1)))
    svc = line.svc
    svc.login("laser-1", "OP-1006")
    svc.next_task("laser-1")
    svc.scan("laser-1", "PEN-BRASS-L2611A")
    svc.start("laser-1")
    with refused("REASON_REQUIRED"):
        svc.pause("laser-1", "  ")
    svc.pause("laser-1", "fixture jammed")
    with refused("NOT_RUNNING"):
        svc.complete("laser-1")
    assert "fixture jammed" in svc.view("laser-1")["next"]
    svc.resume("laser-1")
    svc.complete("laser-1")
    types = [e["type"] for e in line.events() if e["type"].startswith("task.")]
    assert types == [
        "task.dispatched",
        "task.started",
        "task.paused",
        "task.resumed",
        "task.completed",
    ]
    [paused] = line.events("task.paused")
    assert paused["data"]["reason"] == "fixture jammed"
    states = [(e["data"]["previous"], e["data"]["state"]) for e in line.events("machine.state")]
    assert states == [
        ("IDLE", "EXECUTE"),
        ("EXECUTE", "HELD"),
        ("HELD", "EXECUTE"),
        ("EXECUTE", "IDLE"),
    ]
    assert {e["data"]["machine"] for e in line.events("machine.state")} == {"laser-1/machine"}


def test_a_later_operation_needs_its_unit_scanned_first(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("PEN-ENG", 1)))
    svc = line.svc
    svc.login("laser-1", "OP-1006")
    task = do_unit_task(svc, "laser-1")
    svc.login("qc-1", "OP-1005")
    svc.next_task("qc-1")
    with refused("CONFIRM_UNIT"):
        svc.start("qc-1")
    with refused("UNKNOWN_CODE"):
        svc.scan("qc-1", "LINE3-99999999")
    svc.scan("qc-1", task["serial"])
    svc.start("qc-1")


def test_rework_repeats_the_operation(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 1)))
    svc = line.svc
    svc.login("dtg-1", "OP-1001")
    svc.next_task("dtg-1")
    svc.scan("dtg-1", "BLANK-TEE-WHT-M")
    svc.scan("dtg-1", "INK-DTG-CMYK-L2611A")
    svc.start("dtg-1")
    assert not svc.checklist("dtg-1", 1, False).ok
    with refused("CHECKLIST_FAILED"):
        svc.complete("dtg-1")
    with refused("BAD_DISPOSITION"):
        svc.fail("dtg-1", "smear", "throw it away")
    svc.fail("dtg-1", "smear on the print", "rework")
    view = svc.view("dtg-1")["task"]
    assert view["attempt"] == 2 and view["status"] == "dispatched"
    svc.scan("dtg-1", "BLANK-TEE-WHT-M")
    svc.scan("dtg-1", "INK-DTG-CMYK-L2611A")
    svc.start("dtg-1")
    svc.checklist("dtg-1", 0, True)
    svc.checklist("dtg-1", 1, True)
    svc.complete("dtg-1")
    [failed] = line.events("task.failed")
    assert failed["data"]["reason"] == "smear on the print"
    [defect] = line.events("defect.recorded")
    assert defect["data"]["disposition"] == "rework"
    checks = [e["data"]["passed"] for e in line.events("quality.checked")]
    assert checks == [False, True]
    consumed = [e["data"]["material"] for e in line.events("material.consumed")]
    assert consumed.count("BLANK-TEE-WHT-M") == 2  # the first blank was used up


def test_scrap_plans_a_replacement_unit(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("PEN-ENG", 1)))
    svc = line.svc
    svc.login("laser-1", "OP-1006")
    svc.next_task("laser-1")
    first = svc.view("laser-1")["task"]["serial"]
    svc.scan("laser-1", "PEN-BRASS-L2611A")
    svc.start("laser-1")
    reply = svc.fail("laser-1", "engraving off-centre", "scrap")
    [defect] = line.events("defect.recorded")
    replacement = defect["data"]["replacement"]
    assert replacement and replacement != first and replacement in reply.message
    task = do_unit_task(svc, "laser-1")
    assert task["serial"] == replacement
    # laser-1 has a printer device: each traveller waits in its print queue, and
    # label.printed follows when the printer takes it (tests/integration).
    queued = line.gateway.store.all(
        "SELECT l.serial, j.printer, j.status FROM print_jobs j "
        "JOIN labels l ON l.label_id = j.label_id ORDER BY j.job_id"
    )
    assert [tuple(r) for r in queued] == [
        (first, "laser-1/printer", "queued"),
        (replacement, "laser-1/printer", "queued"),
    ]
    assert line.events("label.printed") == []


def test_packing_refuses_foreign_and_missing_units_and_wrong_weights(line: Line) -> None:
    line.send("in/orders", [order("SO-1", ("PEN-ENG", 2)), order("SO-2", ("PEN-ENG", 1))])
    svc = line.svc
    svc.login("laser-1", "OP-1006")
    svc.login("qc-1", "OP-1005")
    svc.login("kit-1", "OP-1001")
    serials = [do_unit_task(svc, "laser-1")["serial"] for _ in range(3)]
    for _ in range(3):
        do_unit_task(svc, "qc-1")
        do_unit_task(svc, "kit-1")
    svc.login("pack-1", "OP-1003")
    svc.next_task("pack-1")
    task = svc.view("pack-1")["task"]
    assert task["order_id"] == "SO-1"
    with refused("FOREIGN_UNIT"):
        svc.scan("pack-1", serials[2])
    svc.scan("pack-1", serials[0])
    with refused("ALREADY_SCANNED"):
        svc.scan("pack-1", serials[0])
    with refused("UNITS_MISSING"):
        svc.weight("pack-1", 296)
    svc.scan("pack-1", serials[1])
    with refused("MATERIALS_MISSING"):
        svc.weight("pack-1", 296)
    svc.scan("pack-1", "CARTON-S")
    with refused("SCAN_LABEL"):
        svc.complete("pack-1")
    low = svc.weight("pack-1", 250)
    assert not low.ok and "expected 296" in low.message
    ok = svc.weight("pack-1", 300)
    assert ok.ok
    # SO-2 is weighed and labelled at pack-2; its label is the wrong one for this parcel.
    svc.login("pack-2", "OP-1004")
    svc.next_task("pack-2")
    svc.scan("pack-2", serials[2])
    svc.scan("pack-2", "CARTON-S")
    other = svc.weight("pack-2", 150)
    with refused("WRONG_LABEL"):
        svc.scan("pack-1", other.data["label_id"])
    with refused("UNKNOWN_CODE"):
        svc.scan("pack-1", "SHP-NOT-THIS")
    svc.scan("pack-1", ok.data["label_id"])
    svc.scan("pack-2", other.data["label_id"])
    done = line.events("order.completed")[0]
    assert done["order_id"] == "SO-1"
    assert done["data"]["units"] == sorted(serials[:2])
    assert done["data"]["weight_g"] == 300
    assert done["data"]["label_id"] == ok.data["label_id"]
    assert [
        e["data"]["passed"]
        for e in line.events("quality.checked")
        if e["data"]["check"] == "weight" and e["order_id"] == "SO-1"
    ] == [False, True]
    assert [e["order_id"] for e in line.events("order.completed")] == ["SO-1", "SO-2"]


def test_a_whole_order_through_the_line(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("TEE-BLK-L", 1), ("CAP-EMB-NAVY", 1)))
    svc = line.svc
    svc.login("dtg-2", "OP-1001")
    svc.login("emb-1", "OP-1003")
    svc.login("pack-2", "OP-1002")
    do_unit_task(svc, "dtg-2")
    do_unit_task(svc, "emb-1")
    assert pack(svc, "pack-2") == "SO-1"
    [done] = line.events("order.completed")
    assert len(done["data"]["units"]) == 2
