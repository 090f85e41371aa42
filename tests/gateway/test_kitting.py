"""Kitting: reservations against stock, FEFO lots, shortages and their release."""

from __future__ import annotations

from typing import Any

from tests.gateway.conftest import Line, order, stock_doc


def reserved_lots(line: Line, material: str) -> dict[str, float]:
    rows = line.gateway.store.all(
        "SELECT lot, sum(qty) FROM reservations WHERE material = ? GROUP BY lot", (material,)
    )
    return {r[0]: r[1] for r in rows}


def test_lots_are_allocated_first_expiry_first_out(line: Line) -> None:
    # 40 lipsticks in the lot expiring 2027-09, 200 in the one expiring 2028-01.
    line.send("in/orders", order("SO-1", ("KIT-XMAS-A", 30)))
    assert reserved_lots(line, "LIPSTICK-R01") == {"LIPSTICK-R01-L2609A": 30}
    line.send("in/orders", order("SO-2", ("KIT-XMAS-A", 20)))
    assert reserved_lots(line, "LIPSTICK-R01") == {
        "LIPSTICK-R01-L2609A": 40,
        "LIPSTICK-R01-L2611B": 10,
    }


def test_an_expired_lot_is_never_allocated(line: Line) -> None:
    stock = stock_doc()
    stock["items"].append(
        {"material": "CREAM-H50", "lot": "CREAM-H50-OLD", "qty": 500, "expires": "2020-01-31"}
    )
    line.send("in/masterdata/stock", stock)
    line.send("in/orders", order("SO-1", ("KIT-XMAS-A", 50)))
    assert "CREAM-H50-OLD" not in reserved_lots(line, "CREAM-H50")


def test_a_shortage_waits_and_new_stock_releases_it(line: Line) -> None:
    # Six red caps in stock; four orders of two.
    for n in range(4):
        line.send("in/orders", order(f"SO-{n}", ("CAP-EMB-RED", 2)))
    [shortage] = line.events("material.shortage")
    assert shortage["order_id"] == "SO-3"
    assert shortage["data"] == {"material": "BLANK-CAP-RED", "required": 2.0, "available": 0.0}
    [alarm] = line.events("alarm.raised")
    assert alarm["data"]["alarm_id"] == "shortage:BLANK-CAP-RED"
    ready = {
        r[0]
        for r in line.gateway.store.all(
            "SELECT DISTINCT order_id FROM tasks WHERE status = 'ready'"
        )
    }
    assert ready == {"SO-0", "SO-1", "SO-2"}
    # A snapshot that still lacks caps keeps the order waiting and raises nothing new.
    line.send("in/masterdata/stock", stock_doc())
    assert len(line.events("alarm.raised")) == 1
    stock: dict[str, Any] = stock_doc()
    for item in stock["items"]:
        if item["material"] == "BLANK-CAP-RED":
            item["qty"] = 50
    line.send("in/masterdata/stock", stock)
    ready = {
        r[0]
        for r in line.gateway.store.all(
            "SELECT DISTINCT order_id FROM tasks WHERE status = 'ready'"
        )
    }
    assert "SO-3" in ready
    [cleared] = line.events("alarm.cleared")
    assert cleared["data"]["alarm_id"] == "shortage:BLANK-CAP-RED"
    status = line.gateway.store.one("SELECT status FROM orders WHERE order_id = 'SO-3'")
    assert status is not None and status[0] == "released"


def test_consumption_since_the_snapshot_counts_against_availability(line: Line) -> None:
    line.send("in/orders", order("SO-1", ("CAP-EMB-RED", 6)))
    svc = line.svc
    svc.login("emb-1", "OP-1004")
    from tests.gateway.conftest import do_unit_task

    do_unit_task(svc, "emb-1")
    # The same snapshot again: one cap was consumed after it, five are still reserved.
    line.send("in/masterdata/stock", stock_doc())
    line.send("in/orders", order("SO-2", ("CAP-EMB-RED", 1)))
    assert [e["order_id"] for e in line.events("material.shortage")] == ["SO-2"]
