"""Traveller and shipping labels: rendered as ZPL, recorded, reported as ``label.printed``.

The printer driver comes later; until then the ZPL is kept in the ``labels`` table, which
is also what a reprint would send.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from drivers.label_printer.render import (
    ShippingLabel,
    TravellerLabel,
    render_shipping,
    render_traveller,
)
from gateway.core import Core


def _printer(core: Core, station: str) -> str:
    return core.config.stations[station].printer_id


def _short_time(core: Core, ship_by: str) -> str:
    return core.local(datetime.fromisoformat(ship_by)).strftime("%m-%d %H:%M")


def print_traveller(core: Core, serial: str, station: str) -> str | None:
    """Print the traveller of ``serial`` unless it already has one; returns the label id."""
    conn = core.store.conn
    if conn.execute(
        "SELECT 1 FROM labels WHERE serial = ? AND kind = 'traveller'", (serial,)
    ).fetchone():
        return None
    row = conn.execute(
        "SELECT u.order_id, u.unit_index, w.line_no, w.sku, w.qty, w.operations, w.sku_doc, "
        "w.personalization, o.ship_by, o.priority FROM units u "
        "JOIN work_orders w ON w.wo_id = u.wo_id JOIN orders o ON o.order_id = u.order_id "
        "WHERE u.serial = ?",
        (serial,),
    ).fetchone()
    personalization: dict[str, Any] = json.loads(row["personalization"])
    label = TravellerLabel(
        serial=serial,
        order_id=row["order_id"],
        sku=row["sku"],
        sku_name=json.loads(row["sku_doc"])["name"],
        line_no=row["line_no"],
        unit_index=row["unit_index"],
        unit_count=row["qty"],
        operations=tuple(op["op"] for op in json.loads(row["operations"])),
        personalization=tuple((k, str(v)) for k, v in personalization.items()),
        ship_by=_short_time(core, row["ship_by"]),
        priority=row["priority"],
    )
    label_id = f"TRV-{serial}"
    printer = _printer(core, station)
    conn.execute(
        "INSERT INTO labels (label_id, kind, order_id, serial, printer, station, zpl, ts) "
        "VALUES (?, 'traveller', ?, ?, ?, ?, ?, ?)",
        (
            label_id,
            row["order_id"],
            serial,
            printer,
            station,
            render_traveller(label),
            core.now_iso(),
        ),
    )
    core.emit(
        "label.printed",
        {
            "kind": "traveller",
            "serial": serial,
            "printer": printer,
            "label_id": label_id,
            "station": station,
        },
        row["order_id"],
    )
    return label_id


def print_shipping(core: Core, order_id: str, station: str, units: int, weight_g: float) -> str:
    """Print the shipping label of a weighed parcel; returns its id (its barcode)."""
    conn = core.store.conn
    n = core.store.next_counter("shipping_label")
    label_id = (
        f"{core.config.policies.shipping_label_prefix}-{core.config.line.line.upper()}-{n:07d}"
    )
    row = conn.execute("SELECT doc, ship_by FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    doc: dict[str, Any] = json.loads(row["doc"])
    dest: dict[str, Any] = doc.get("destination") or {}
    label = ShippingLabel(
        label_id=label_id,
        order_id=order_id,
        carrier=str(doc.get("carrier") or ""),
        ship_by=_short_time(core, row["ship_by"]),
        name=str(dest.get("name") or ""),
        address=str(dest.get("address") or ""),
        city=str(dest.get("city") or ""),
        region=str(dest.get("region") or ""),
        postcode=str(dest.get("postcode") or ""),
        country=str(dest.get("country") or ""),
        units=units,
        weight_g=weight_g,
    )
    printer = _printer(core, station)
    conn.execute(
        "INSERT INTO labels (label_id, kind, order_id, serial, printer, station, zpl, ts) "
        "VALUES (?, 'shipping', ?, NULL, ?, ?, ?, ?)",
        (label_id, order_id, printer, station, render_shipping(label), core.now_iso()),
    )
    core.emit(
        "label.printed",
        {
            "kind": "shipping",
            "order_id": order_id,
            "printer": printer,
            "label_id": label_id,
            "station": station,
        },
        order_id,
    )
    return label_id
