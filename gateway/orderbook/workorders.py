"""Orders into work: work orders with frozen routings, units with serials, tasks, kitting.

An order line becomes a work order that keeps a snapshot of its routing and SKU (a later
catalog does not change accepted work). Each piece becomes a unit with a serial for its
traveller label, and each unit gets one task per operation; the pack operation is one task
per order, where its units come together. A unit's tasks are released only once the
kitting check reserved all its materials.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import partial
from typing import Any

from cloud_sync.contract import Order, Routing, Sku
from gateway.clock import iso
from gateway.i18n import t
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.orderbook.tasks import PACK, release_unit
from gateway.store.documents import SkuSnapshot, SnapshotBomLine
from gateway.store.rows import (
    AlarmRow,
    OrderRow,
    OrderStatus,
    ReservationRow,
    Severity,
    TaskRow,
    TaskStatus,
    UnitRow,
    UnitStatus,
    UnitWithSku,
)


def serial_prefix(core: LineContext) -> str:
    return core.config.line.line.upper()


def sku_snapshot(core: LineContext, sku: Sku) -> SkuSnapshot:
    """What a work order keeps of its SKU: weight, tolerance, BOM with lot tracking and
    which lines are containers, and the unit's size and kind for its parcel."""
    routing = core.catalog.routings[sku.routing]
    first_op = routing.operations[0].op
    materials = core.catalog.materials
    dims = sku.dims_mm
    return SkuSnapshot(
        sku=sku.sku,
        name=sku.name or sku.sku,
        unit_weight_g=float(sku.unit_weight_g or 0.0),
        weight_tolerance_g=float(sku.weight_tolerance_g or 0.0),
        bom=tuple(
            SnapshotBomLine(
                material=b.material,
                qty=float(b.qty),
                op=b.op or first_op,
                lot_tracked=materials[b.material].lot_tracked,
                container=materials[b.material].container is not None,
            )
            for b in sku.bom
        ),
        dims_mm=None if dims is None else (float(dims[0]), float(dims[1]), float(dims[2])),
        crushable=sku.crushable,
    )


def _routing_json(routing: Routing) -> str:
    ops = [op.model_dump(mode="json", exclude_none=True) for op in routing.operations]
    return json.dumps(ops, ensure_ascii=False)  # read back by CatalogCache.operations


def _sku_json(core: LineContext, sku: Sku) -> str:
    return sku_snapshot(core, sku).model_dump_json()


def order_shortages(core: LineContext, order: Order) -> dict[str, tuple[float, float]]:
    """The kitting check of a new order from the catalog: {material: (required, available)}."""
    need: dict[str, float] = defaultdict(float)
    for line in order.lines:
        for b in core.catalog.skus[line.sku].bom:
            need[b.material] += float(b.qty) * line.qty
    today = core.today()
    margin = core.config.policies.lot_expiry_margin_days
    short = {}
    for material, qty in need.items():
        available = core.ledger.available(material, today, margin)
        if available < qty - 1e-9:
            short[material] = (qty, round(available, 3))
    return short


def explode(core: LineContext, order: Order, kitted: bool) -> int:
    """Create work orders, units and tasks for an accepted order; returns the unit count.

    With ``kitted`` (the kitting check passed) the materials are reserved, first expiry
    first, and each unit's first task is ready at once.
    """
    ship_by = iso(order.ship_by)
    now = core.now_iso()
    units = 0
    pack_index = 0
    pack_op = PACK
    task_rows: list[tuple[Any, ...]] = []
    unit_rows: list[tuple[Any, ...]] = []
    prefix = serial_prefix(core)
    next_serial = core.store.next_counter("serial", sum(line.qty for line in order.lines))
    reservations: list[tuple[Any, ...]] = []
    today = core.today()
    margin = core.config.policies.lot_expiry_margin_days
    for n, line in enumerate(order.lines, start=1):
        sku = core.catalog.skus[line.sku]
        routing = core.catalog.routings[sku.routing]
        wo_id = core.store.insert(
            "INSERT INTO work_orders (order_id, line_no, sku, qty, routing, operations, "
            "sku_doc, personalization) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING wo_id",
            (
                order.order_id,
                line.line_no or n,
                line.sku,
                line.qty,
                routing.routing,
                core.catalog.frozen(("routing", routing.routing), partial(_routing_json, routing)),
                core.catalog.frozen(("sku", sku.sku), partial(_sku_json, core, sku)),
                json.dumps(line.personalization, ensure_ascii=False),
            ),
        )
        first = next_serial
        next_serial += line.qty
        first_op = routing.operations[0].op
        for k in range(line.qty):
            serial = f"{prefix}-{first + k:08d}"
            unit_rows.append((serial, order.order_id, wo_id, k + 1, int(kitted), now))
            for i, op in enumerate(routing.operations):
                if op.capability == PACK:
                    pack_index = max(pack_index, i)
                    pack_op = op.op
                    continue
                status = TaskStatus.READY if kitted and i == 0 else TaskStatus.BLOCKED
                task_rows.append(
                    (
                        order.order_id,
                        serial,
                        wo_id,
                        op.op,
                        i,
                        op.capability,
                        status,
                        ship_by,
                        order.priority,
                    )
                )
            if kitted:
                for b in sku.bom:
                    taken = core.ledger.allocate(b.material, float(b.qty), today, margin)
                    if taken is None:  # the caller checked; fail loudly if it was wrong
                        raise RuntimeError(f"allocation of {b.material} failed after check")
                    reservations.extend(
                        (order.order_id, serial, b.op or first_op, b.material, lot, qty)
                        for lot, qty in taken
                    )
        units += line.qty
        core.emit(
            "workorder.created",
            {
                "line_no": line.line_no or n,
                "sku": line.sku,
                "qty": line.qty,
                "routing": routing.routing,
                "wo_id": wo_id,
            },
            order.order_id,
        )
    task_rows.append(
        (
            order.order_id,
            None,
            None,
            pack_op,
            pack_index,
            PACK,
            TaskStatus.BLOCKED,
            ship_by,
            order.priority,
        )
    )
    core.bulk.add("units", unit_rows)
    core.bulk.add("tasks", task_rows)
    core.bulk.add("reservations", reservations)
    return units


def drop_work(core: LineContext, order_id: str) -> None:
    """Remove an order's work that never started (a revision replaces it)."""
    conn = core.store.conn
    for r in core.store.fetch_all(
        ReservationRow, "SELECT * FROM reservations WHERE order_id = ?", (order_id,)
    ):
        core.ledger.adjust(r.material, r.lot, r.qty)
    conn.execute(
        "UPDATE sessions SET task_id = NULL WHERE task_id IN "
        "(SELECT task_id FROM tasks WHERE order_id = ?)",
        (order_id,),
    )
    for table in ("reservations", "tasks", "units", "work_orders"):
        conn.execute(f"DELETE FROM {table} WHERE order_id = ?", (order_id,))


def kit_order(core: LineContext, order_id: str) -> dict[str, tuple[float, float]]:
    """Reserve the materials of an order's units that are not kitted yet, all or nothing.

    Returns the shortages ({material: (required, available)}); empty when every unit is
    kitted and its first task released.
    """
    units = core.store.fetch_all(
        UnitWithSku,
        "SELECT u.*, w.sku_doc FROM units u JOIN work_orders w ON w.wo_id = u.wo_id "
        "WHERE u.order_id = ? AND u.kitted = 0 AND u.status = ?",
        (order_id, UnitStatus.OPEN),
    )
    if not units:
        return {}
    today = core.today()
    margin = core.config.policies.lot_expiry_margin_days
    need: dict[str, float] = defaultdict(float)
    boms = [(u.unit.serial, u.snapshot().bom) for u in units]
    for _, bom in boms:
        for line in bom:
            need[line.material] += line.qty
    short = {
        m: (q, round(core.ledger.available(m, today, margin), 3))
        for m, q in need.items()
        if core.ledger.available(m, today, margin) < q - 1e-9
    }
    if short:
        return short
    reservations: list[tuple[Any, ...]] = []
    for serial, bom in boms:
        for line in bom:
            taken = core.ledger.allocate(line.material, line.qty, today, margin)
            if taken is None:  # cannot happen after the check above; fail loudly if it does
                raise RuntimeError(f"allocation of {line.material} failed after check")
            reservations.extend(
                (order_id, serial, line.op, line.material, lot, qty) for lot, qty in taken
            )
    conn = core.store.conn
    conn.executemany(
        "INSERT INTO reservations (order_id, serial, op, material, lot, qty) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        reservations,
    )
    serials = [(s,) for s, _ in boms]
    conn.executemany("UPDATE units SET kitted = 1 WHERE serial = ?", serials)
    conn.executemany(
        "UPDATE tasks SET status = ? WHERE serial = ? AND status = ? "
        "AND op_index = (SELECT min(op_index) FROM tasks t2 WHERE t2.serial = tasks.serial)",
        [(TaskStatus.READY, s, TaskStatus.BLOCKED) for (s,) in serials],
    )
    conn.execute(
        "UPDATE orders SET status = ? WHERE order_id = ? AND status = ?",
        (OrderStatus.RELEASED, order_id, OrderStatus.WAITING_MATERIAL),
    )
    return {}


def report_shortage(
    core: LineContext, order_id: str, short: dict[str, tuple[float, float]]
) -> None:
    core.store.conn.execute(
        "UPDATE orders SET status = ? WHERE order_id = ? AND status IN (?, ?)",
        (
            OrderStatus.WAITING_MATERIAL,
            order_id,
            OrderStatus.RELEASED,
            OrderStatus.WAITING_MATERIAL,
        ),
    )
    for material, (required, available) in sorted(short.items()):
        core.emit(
            "material.shortage",
            {"material": material, "required": required, "available": available},
            order_id,
        )
        _shortage_alarm(core, material)


def rekit_waiting(core: LineContext) -> None:
    """After new stock: release waiting orders by ship-by and priority; clear alarms."""
    still_short: set[str] = set()
    for waiting in core.store.fetch_all(
        OrderRow,
        "SELECT * FROM orders WHERE status = ? ORDER BY ship_by, priority DESC, order_id",
        (OrderStatus.WAITING_MATERIAL,),
    ):
        still_short.update(kit_order(core, waiting.order_id))
    for alarm in core.store.fetch_all(
        AlarmRow,
        "SELECT * FROM alarms WHERE kind = 'material_shortage' AND cleared_at IS NULL",
    ):
        if alarm.source not in still_short:
            clear_alarm(core, alarm.alarm_id, f"{alarm.source} is back in stock")
    for material in sorted(still_short):
        _shortage_alarm(core, material)


def _shortage_alarm(core: LineContext, material: str) -> None:
    raise_alarm(
        core,
        f"shortage:{material}",
        "material_shortage",
        material,
        Severity.WARNING,
        t("not enough {material} in stock: orders wait for it", material=material),
    )


def replace_unit(core: LineContext, task: TaskRow) -> str | None:
    """Scrap the unit of ``task``: it and its open tasks end, what it held is freed, and
    unless its order is cancelled a replacement unit is planned (kitted now if the
    materials are there). Returns the replacement's serial."""
    assert task.serial is not None
    conn = core.store.conn
    serial = task.serial
    release_unit(core, serial)
    conn.execute(
        "UPDATE tasks SET status = ? WHERE serial = ? AND status != ?",
        (TaskStatus.SCRAPPED, serial, TaskStatus.DONE),
    )
    conn.execute("UPDATE units SET status = ? WHERE serial = ?", (UnitStatus.SCRAPPED, serial))
    order = core.store.fetch_one(
        OrderRow, "SELECT * FROM orders WHERE order_id = ?", (task.order_id,)
    )
    if order is None or order.status is OrderStatus.CANCELLED:
        return None
    unit = core.store.fetch_one(UnitRow, "SELECT * FROM units WHERE serial = ?", (serial,))
    assert unit is not None
    frozen = core.store.texts("SELECT operations FROM work_orders WHERE wo_id = ?", (unit.wo_id,))
    new_serial = f"{serial_prefix(core)}-{core.store.next_counter('serial'):08d}"
    conn.execute(
        "INSERT INTO units (serial, order_id, wo_id, unit_index, status, kitted, replaces, "
        "created_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
        (
            new_serial,
            unit.order_id,
            unit.wo_id,
            unit.unit_index,
            UnitStatus.OPEN,
            serial,
            core.now_iso(),
        ),
    )
    for i, op in enumerate(core.catalog.operations(frozen[0])):
        if op.capability == PACK:
            continue
        conn.execute(
            "INSERT INTO tasks (order_id, serial, wo_id, op, op_index, capability, status, "
            "ship_by, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                unit.order_id,
                new_serial,
                unit.wo_id,
                op.op,
                i,
                op.capability,
                TaskStatus.BLOCKED,
                order.ship_by,
                order.priority,
            ),
        )
    short = kit_order(core, unit.order_id)
    if short:
        report_shortage(core, unit.order_id, short)
    return new_serial
