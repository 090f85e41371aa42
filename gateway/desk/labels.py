"""Traveller and shipping labels: rendered as ZPL, recorded, sent to the station's printer.

The ZPL is kept in the ``labels`` table (a reprint sends the same label again). At a
station with a printer device each print is a row of ``print_jobs`` that the print queue
(:mod:`gateway.floor.printing`) delivers; ``label.printed`` is reported once the printer took
it. A station without a printer device reports the label as printed at once: its label
is printed by hand from the station screen (or not at all, on a bench).
"""

from __future__ import annotations

from datetime import datetime

from drivers.label_printer.render import (
    ShippingLabel,
    TravellerLabel,
    render_shipping,
    render_traveller,
)
from gateway.orderbook.context import LineContext
from gateway.store.rows import LabelKind, LabelRow, OrderRow, UnitRow, WorkOrderRow


def _printer(core: LineContext, station: str) -> str:
    return core.config.stations[station].printer_id


def _short_time(core: LineContext, ship_by: str) -> str:
    return core.local(datetime.fromisoformat(ship_by)).strftime("%m-%d %H:%M")


def print_traveller(core: LineContext, serial: str, station: str) -> str | None:
    """Print the traveller of ``serial`` unless it already has one; returns the label id."""
    store = core.store
    if store.exists(
        "SELECT 1 FROM labels WHERE serial = ? AND kind = ?", (serial, LabelKind.TRAVELLER)
    ):
        return None
    unit = store.fetch_one(UnitRow, "SELECT * FROM units WHERE serial = ?", (serial,))
    assert unit is not None, serial
    wo = store.fetch_one(WorkOrderRow, "SELECT * FROM work_orders WHERE wo_id = ?", (unit.wo_id,))
    order = store.fetch_one(OrderRow, "SELECT * FROM orders WHERE order_id = ?", (unit.order_id,))
    assert wo is not None and order is not None, serial
    label = TravellerLabel(
        serial=serial,
        order_id=unit.order_id,
        sku=wo.sku,
        sku_name=wo.snapshot().name,
        line_no=wo.line_no,
        unit_index=unit.unit_index,
        unit_count=wo.qty,
        operations=tuple(op.op for op in core.catalog.operations(wo.operations)),
        personalization=tuple((k, str(v)) for k, v in wo.personalization().items()),
        ship_by=_short_time(core, order.ship_by),
        priority=order.priority,
    )
    label_id = f"TRV-{serial}"
    _record(
        core, label_id, LabelKind.TRAVELLER, unit.order_id, serial, station, render_traveller(label)
    )
    return label_id


def print_shipping(
    core: LineContext, order_id: str, station: str, units: int, weight_g: float
) -> str:
    """Print the shipping label of a weighed parcel; returns its id (its barcode)."""
    n = core.store.next_counter("shipping_label")
    label_id = (
        f"{core.config.policies.shipping_label_prefix}-{core.config.line.line.upper()}-{n:07d}"
    )
    row = core.store.fetch_one(OrderRow, "SELECT * FROM orders WHERE order_id = ?", (order_id,))
    assert row is not None, order_id
    order = row.order()
    dest = order.destination
    label = ShippingLabel(
        label_id=label_id,
        order_id=order_id,
        carrier=order.carrier or "",
        ship_by=_short_time(core, row.ship_by),
        name=(dest.name if dest else None) or "",
        address=(dest.address if dest else None) or "",
        city=(dest.city if dest else None) or "",
        region=(dest.region if dest else None) or "",
        postcode=(dest.postcode if dest else None) or "",
        country=(dest.country if dest else None) or "",
        units=units,
        weight_g=weight_g,
    )
    _record(core, label_id, LabelKind.SHIPPING, order_id, None, station, render_shipping(label))
    return label_id


def _record(
    core: LineContext,
    label_id: str,
    kind: LabelKind,
    order_id: str,
    serial: str | None,
    station: str,
    zpl: str,
) -> None:
    """Keep the label (a reprint sends the same ZPL) and send it to the station's printer."""
    core.store.conn.execute(
        "INSERT INTO labels (label_id, kind, order_id, serial, printer, station, zpl, ts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (label_id, kind, order_id, serial, _printer(core, station), station, zpl, core.now_iso()),
    )
    send(core, label_id, station)


def send(core: LineContext, label_id: str, station: str, reason: str | None = None) -> str:
    """Print ``label_id`` at ``station`` (a reprint when ``reason`` is given); returns the
    print job id. In the caller's transaction."""
    job_id = f"PJ-{core.store.next_counter('print_job'):08d}"
    cfg = core.config.stations[station]
    if cfg.printer is None:
        report_printed(core, label_id, station, job_id, reason)
        return job_id
    core.store.conn.execute(
        "INSERT INTO print_jobs (job_id, label_id, printer, station, reason, status, "
        "created_at) VALUES (?, ?, ?, ?, ?, 'queued', ?)",
        (job_id, label_id, cfg.printer_id, station, reason, core.now_iso()),
    )
    core.notify("print_job", {"printer": cfg.printer_id, "job_id": job_id})
    return job_id


def report_printed(
    core: LineContext, label_id: str, station: str, job_id: str, reason: str | None
) -> None:
    """``label.printed`` for a label the printer has taken. In the caller's transaction."""
    label = core.store.fetch_one(LabelRow, "SELECT * FROM labels WHERE label_id = ?", (label_id,))
    assert label is not None, label_id
    ref = {"serial": label.serial} if label.kind is LabelKind.TRAVELLER else {}
    core.emit(
        "label.printed",
        {
            "kind": label.kind.value,
            **ref,
            "order_id": label.order_id,
            "printer": _printer(core, station),
            "label_id": label_id,
            "station": station,
            "job_id": job_id,
            "reprint_reason": reason,
        },
        label.order_id,
    )


def reprint(core: LineContext, label_id: str, station: str, reason: str) -> str:
    """Print a label again at ``station``; the reason is recorded with the job."""
    with core.store.transaction():
        return send(core, label_id, station, reason)


def find(core: LineContext, label_id: str) -> LabelRow | None:
    return core.store.fetch_one(LabelRow, "SELECT * FROM labels WHERE label_id = ?", (label_id,))


def last_printed_at(core: LineContext, station: str) -> LabelRow | None:
    """The label printed last at ``station`` (what a reprint without an id means)."""
    return core.store.fetch_one(
        LabelRow,
        "SELECT * FROM labels WHERE station = ? ORDER BY ts DESC, rowid DESC LIMIT 1",
        (station,),
    )
