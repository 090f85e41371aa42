"""Customer service's order view, fed through the real path (Store.add_events with the
projector registered) on SQLite and PostgreSQL. Expected values are written from the hub
contract's definitions of each event (hub-protocol.md), not from the code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, text
from sqlalchemy import inspect as sa_inspect

from cloud_sync.contract import Envelope, Order
from office.answer.orders_read import Stage, Status, find, search
from office.answer.orders_view import note_fed, project_orders
from office.feed import Ledger
from office.store import Store, schema
from tests.office.conftest import now

pytestmark = pytest.mark.timeout(60)

L3, L4 = "hz01/line3", "hz01/line4"
CST = timezone(timedelta(hours=8))


def ev(
    seq: int,
    type_: str,
    order_id: str | None,
    data: dict[str, Any],
    line: str = L3,
    minute: int = 0,
) -> tuple[Envelope, str]:
    d = {
        "v": 1, "gateway_id": line, "seq": seq, "event_id": f"{line}:{seq}",
        "ts": f"2026-11-11T10:{minute:02d}:00.000+08:00", "type": type_,
        "order_id": order_id, "data": data,
    }  # fmt: skip
    return Envelope.model_validate(d), json.dumps(d)


def progress(seq: int, order_id: str, stage: str, predicted: str | None, **more: Any) -> Any:
    data = {
        "stage": stage, "units_total": 2, "units_done": more.pop("done", 0), "current": [],
        "predicted_completion": predicted, "ship_by": "2026-11-11T18:00:00+08:00",
        "at_risk": False, "reasons": [], **more,
    }  # fmt: skip
    return ev(seq, "order.progress", order_id, data)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url, now, projectors=[project_orders])
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_later_progress_wins_and_an_earlier_one_arriving_after_does_not(
    store: Store,
) -> None:
    await store.add_events(L3, [ev(1, "order.accepted", "SO-1", {"revision": 1, "units": 2,
                                   "ship_by": "2026-11-11T18:00:00+08:00"})], "mqtt")  # fmt: skip
    late = progress(3, "SO-1", "packing", "2026-11-11T15:30:00+08:00", done=2)
    early = progress(2, "SO-1", "in_process", "2026-11-11T16:00:00+08:00",
                     at_risk=True, reasons=["late material"])  # fmt: skip
    await store.add_events(L3, [late], "http")  # seq 2 is missing: a gap, stored anyway
    await store.add_events(L3, [early], "http")  # arrives after 3: must not overwrite
    async with store.transaction() as conn:
        found = await find(conn, "SO-1")
    assert found is not None
    (order,) = found.on_lines
    assert order.line == L3
    assert order.status is Status.ACCEPTED
    assert order.units_ordered == 2
    assert order.progress is not None
    assert order.progress.stage is Stage.PACKING
    assert order.progress.units_done == 2
    assert order.progress.predicted_completion == datetime(2026, 11, 11, 7, 30, tzinfo=UTC)
    assert order.progress.at_risk is False
    assert order.progress.reasons == ()
    assert order.ship_by == datetime(2026, 11, 11, 10, 0, tzinfo=UTC)
    assert [e.seq for e in order.timeline] == [1, 2, 3]


async def test_a_duplicate_never_reaches_the_view(store: Store) -> None:
    task = ev(5, "task.completed", "SO-2", {
        "task_id": "T-1", "serial": "SN-1", "op": "print", "station": "P1", "operator": "u7",
        "machine": "PR-1", "lots": [{"material": "INK", "lot": "L-9", "qty": 2}],
        "started_at": "2026-11-11T10:00:00+08:00", "completed_at": "2026-11-11T10:05:00+08:00",
    })  # fmt: skip
    first = await store.add_events(L3, [task], "mqtt")
    again = await store.add_events(L3, [task, task], "http")
    assert (first.new, again.new, again.duplicates) == (1, 0, 2)
    async with store.transaction() as conn:
        found = await find(conn, "SO-2")
        rows = (await conn.execute(text("SELECT count(*) FROM order_trace"))).scalar()
    assert rows == 1
    assert found is not None
    (unit,) = found.on_lines[0].units
    assert unit.serial == "SN-1"
    assert [(s.op, s.station, s.operator, s.machine) for s in unit.steps] == [
        ("print", "P1", "u7", "PR-1")
    ]
    assert [(lot.material, lot.lot, lot.qty) for lot in unit.lots] == [("INK", "L-9", 2.0)]


async def test_a_rejected_order_shows_its_errors(store: Store) -> None:
    errors = [
        {"code": "UNKNOWN_SKU", "field": "lines[0].sku", "message": "no SKU MUG-X"},
        {"code": "SCHEMA", "field": "ship_by", "message": "not a date-time"},
    ]
    await store.add_events(
        L3, [ev(1, "order.rejected", "SO-3", {"errors": errors, "raw_ref": "r/1"})], "mqtt"
    )
    async with store.transaction() as conn:
        found = await find(conn, "SO-3")
    assert found is not None
    (order,) = found.on_lines
    assert order.status is Status.REJECTED
    assert [(e.code, e.field, e.message) for e in order.errors] == [
        ("UNKNOWN_SKU", "lines[0].sku", "no SKU MUG-X"),
        ("SCHEMA", "ship_by", "not a date-time"),
    ]
    assert order.progress is None and order.parcel is None


async def test_a_completed_order_with_its_parcel_lots_checks_and_cost(store: Store) -> None:
    o = "SO-4"
    lots_a = [
        {"material": "BLANK-MUG", "lot": "B-1", "qty": 1},
        {"material": "INK", "lot": "I-2", "qty": 0.5},
    ]
    events = [
        ev(
            1,
            "order.accepted",
            o,
            {"revision": 1, "units": 2, "ship_by": "2026-11-11T18:00:00+08:00"},
        ),
        ev(2, "workorder.created", o, {"line_no": 1, "sku": "MUG", "qty": 2, "routing": "R-MUG"}),
        # The same consumption told twice by the gateway: material.consumed, then the task.
        ev(
            3,
            "material.consumed",
            o,
            {"material": "BLANK-MUG", "lot": "B-1", "qty": 1, "serial": "SN-A", "task_id": "T-A1"},
        ),
        ev(
            4,
            "material.consumed",
            o,
            {"material": "INK", "lot": "I-2", "qty": 0.5, "serial": "SN-A", "task_id": "T-A1"},
        ),
        ev(
            5,
            "task.completed",
            o,
            {
                "task_id": "T-A1",
                "serial": "SN-A",
                "op": "print",
                "station": "P1",
                "operator": "u1",
                "machine": "PR-1",
                "lots": lots_a,
                "started_at": "2026-11-11T10:00:00+08:00",
                "completed_at": "2026-11-11T10:04:00+08:00",
            },
        ),
        ev(
            6,
            "quality.checked",
            o,
            {
                "task_id": "T-A2",
                "serial": "SN-A",
                "check": "checklist",
                "passed": True,
                "measured": {"print sharp": True},
                "op": "inspect",
            },
        ),
        ev(7, "unit.completed", o, {"serial": "SN-A", "sku": "MUG", "line_no": 1}),
        ev(
            8,
            "defect.recorded",
            o,
            {"serial": "SN-B", "op": "print", "reason": "smudge", "disposition": "rework"},
        ),
        ev(9, "unit.completed", o, {"serial": "SN-B", "sku": "MUG", "line_no": 1}),
        ev(
            10,
            "order.completed",
            o,
            {
                "units": ["SN-A", "SN-B"],
                "weight_g": 812.5,
                "label_id": "SF123",
                "containers": [{"material": "CARTON-S", "qty": 1}],
                "a_field_from_a_newer_gateway": 1,
            },
        ),
        ev(
            11,
            "order.costed",
            o,
            {
                "labour_s": 300,
                "machine_s": 240,
                "setup_s": 0,
                "units_scrapped": 0,
                "materials": [],
                "cost": {
                    "labour": 2.5,
                    "machine": 1.2,
                    "materials": 9.8,
                    "scrap": 0,
                    "total": 13.5,
                    "currency": "CNY",
                },
            },
        ),
    ]
    await store.add_events(L3, events, "mqtt")
    async with store.transaction() as conn:
        found = await find(conn, o)
    assert found is not None
    (order,) = found.on_lines
    assert order.status is Status.COMPLETED
    assert [(w.line_no, w.sku, w.qty) for w in order.work_orders] == [(1, "MUG", 2)]
    assert order.parcel is not None
    assert order.parcel.units == ("SN-A", "SN-B")
    assert order.parcel.weight_g == 812.5
    assert order.parcel.label_id == "SF123"
    assert [(c.material, c.qty) for c in order.parcel.containers] == [("CARTON-S", 1.0)]
    assert order.parcel.completed_at == datetime(2026, 11, 11, 2, 0, tzinfo=UTC)
    a, b = order.units
    assert (a.serial, a.sku, a.line_no) == ("SN-A", "MUG", 1)
    # each lot once: the task's list, not again from material.consumed
    assert [(x.material, x.lot, x.qty) for x in a.lots] == [
        ("BLANK-MUG", "B-1", 1.0),
        ("INK", "I-2", 0.5),
    ]
    assert a.steps[0].at == datetime(2026, 11, 11, 2, 4, tzinfo=UTC)
    assert [(c.kind, c.name, c.passed) for c in a.checks] == [("check", "checklist", True)]
    assert [(c.kind, c.name, c.disposition) for c in b.checks] == [("defect", "smudge", "rework")]
    assert order.cost is not None
    assert (order.cost.total, order.cost.currency) == (13.5, "CNY")


async def test_an_order_the_office_never_fed_and_one_it_did(store: Store) -> None:
    await store.put_masterdata(L3, "catalog", {"kind": "catalog", "version": "1",
        "materials": [], "routings": [], "skus": [{"sku": "MUG", "routing": "R-1"}]})  # fmt: skip
    doc = {
        "order_id": "TM-88", "revision": 1, "ship_by": "2026-11-12T10:00:00+00:00",
        "lines": [{"sku": "MUG", "qty": 1}], "channel": "tmall", "customer_ref": "TB2026111100042",
    }  # fmt: skip
    taken = await Ledger(store, [L3]).take("shop-a", Order.model_validate(doc), doc, None, now())
    assert taken.line == L3
    await store.add_events(
        L3,
        [
            ev(
                1,
                "order.accepted",
                "TM-88",
                {"revision": 1, "units": 1, "ship_by": doc["ship_by"]},
                minute=1,
            ),
            # A line's own order (an operator keyed it in): the office never fed it.
            ev(
                2,
                "order.accepted",
                "OWN-1",
                {"revision": 1, "units": 1, "ship_by": doc["ship_by"]},
                minute=2,
            ),
            ev(3, "an.unknown_type", "OWN-1", {"whatever": [1, 2]}, minute=3),
        ],
        "mqtt",
    )
    async with store.transaction() as conn:
        fed = await find(conn, "TM-88")
        own = await find(conn, "OWN-1")
        by_ref = await search(conn, "TB2026111100042")
        by_prefix = await search(conn, "TM-")
        nothing = await search(conn, "TB20261111000429")
    assert fed is not None and own is not None
    assert (fed.on_lines[0].customer_ref, fed.on_lines[0].channel, fed.on_lines[0].shop) == (
        "TB2026111100042", "tmall", "shop-a",
    )  # fmt: skip
    assert (own.on_lines[0].customer_ref, own.on_lines[0].shop) == (None, None)
    assert own.on_lines[0].status is Status.ACCEPTED
    assert [(h.order_id, h.line) for h in by_ref] == [("TM-88", L3)]
    assert [h.order_id for h in by_prefix] == ["TM-88"]
    assert nothing == []


async def test_search_is_newest_first_and_across_lines(store: Store) -> None:
    for minute, (line, order_id) in enumerate([(L3, "SO-10"), (L4, "SO-11"), (L3, "SO-12")]):
        seq = 1 + minute
        await store.add_events(line, [ev(seq, "order.accepted", order_id, {"revision": 1},
                                         line=line, minute=minute)], "mqtt")  # fmt: skip
    async with store.transaction() as conn:
        hits = await search(conn, "SO-1")
        two = await search(conn, "SO-1", limit=2)
        unknown = await find(conn, "SO-99")
    assert [(h.order_id, h.line) for h in hits] == [("SO-12", L3), ("SO-11", L4), ("SO-10", L3)]
    assert [h.order_id for h in two] == ["SO-12", "SO-11"]
    assert unknown is None


async def test_the_upgrade_builds_the_view_from_the_events_already_stored(store_url: str) -> None:
    # Events stored by an office before migration 6 (no projector), then the upgrade.
    plain = await Store.open(store_url, now)
    try:
        await plain.add_events(
            L3,
            [
                ev(1, "order.accepted", "SO-7", {"revision": 1, "units": 1}),
                progress(3, "SO-7", "queued", None),
                progress(2, "SO-7", "waiting_material", None),
                ev(4, "unit.completed", "SO-7", {"serial": "SN-7", "sku": "MUG", "line_no": 1}),
            ],
            "mqtt",
        )
        async with plain.transaction() as conn:
            for table in (schema.order_trace, schema.order_view):
                await conn.execute(text(f"DROP TABLE {table.name}"))
            await conn.execute(
                delete(schema.schema_migrations).where(schema.schema_migrations.c.version == 6)
            )
    finally:
        await plain.close()
    upgraded = await Store.open(store_url, now, projectors=[project_orders])
    try:
        async with upgraded.transaction() as conn:
            found = await find(conn, "SO-7")
    finally:
        await upgraded.close()
    assert found is not None
    (order,) = found.on_lines
    assert order.status is Status.ACCEPTED
    assert order.progress is not None and order.progress.stage is Stage.QUEUED
    assert order.progress.predicted_completion is None
    assert [u.serial for u in order.units] == ["SN-7"]


async def test_the_feeds_hook_makes_an_order_findable_before_its_line_speaks(
    store: Store,
) -> None:
    body = {"order_id": "JD-5", "customer_ref": "JD-BUYER-77", "channel": "jd"}
    async with store.transaction() as conn:
        await conn.run_sync(note_fed, "JD-5", L4, body, "shop-b", now())
        waiting = await search(conn, "JD-BUYER-77")
    assert [(h.order_id, h.line, h.status) for h in waiting] == [("JD-5", L4, Status.SENT)]
    await store.add_events(L4, [ev(1, "order.accepted", "JD-5", {"revision": 1}, line=L4)], "mqtt")
    async with store.transaction() as conn:
        found = await find(conn, "JD-5")
    assert found is not None
    (order,) = found.on_lines
    assert (order.status, order.customer_ref, order.channel, order.shop) == (
        Status.ACCEPTED, "JD-BUYER-77", "jd", "shop-b",
    )  # fmt: skip


async def test_migration_6_makes_the_tables_schema_py_names(store: Store) -> None:
    def shapes(conn: Any) -> dict[str, list[str]]:
        found = sa_inspect(conn)
        return {
            t: sorted(c["name"] for c in found.get_columns(t))
            for t in ("order_view", "order_trace")
        }

    async with store.transaction() as conn:
        made = await conn.run_sync(shapes)
    assert made == {
        t.name: sorted(c.name for c in t.columns) for t in (schema.order_view, schema.order_trace)
    }
