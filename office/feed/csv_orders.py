"""Orders from a shop's CSV export: one row per order line, grouped into orders.

Columns (by header name, any order; unknown columns are ignored): ``order_id``, ``sku``,
``qty`` required; ``revision``, ``ship_by``, ``priority``, ``channel``, ``carrier``,
``placed_at``, ``line`` (a gateway id to route to) per order; ``line_no``,
``personalisation`` (or ``personalization``) per row. Order-level cells may be repeated on
each row of the order or left blank after its first row; different values are an error.
``personalisation``: a JSON object (``{"name": "李雷"}``), or ``key=value;key=value``
(values are text). UTF-8 with or without a BOM (Excel's "CSV UTF-8"). Row numbers are as a
spreadsheet shows them: the header is row 1.

Pure: it only reads the text; each order is then taken as a JSON one is.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CsvError", "CsvOrder", "read_orders"]

_ORDER_TEXT = ("ship_by", "channel", "carrier", "placed_at", "line")
_ORDER_INT = ("revision", "priority")
_REQUIRED = ("order_id", "sku", "qty")


class CsvError(ValueError):
    """The file as a whole does not read (encoding, header)."""


@dataclass
class CsvOrder:
    """One order's rows: ``doc`` the order as JSON would send it (with ``line`` when named),
    ``rows`` the row number of each of its lines, ``problems`` what does not read."""

    order_id: str
    doc: dict[str, Any] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _int(text: str, row: int, name: str, problems: list[str]) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        problems.append(f"row {row}: {name}: {text!r} is not a whole number")
        return None


def _personalisation(text: str, row: int, problems: list[str]) -> dict[str, Any]:
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            found = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"row {row}: personalisation: not a JSON object ({exc.msg})")
            return {}
        if not isinstance(found, dict):
            problems.append(f"row {row}: personalisation: not a JSON object")
            return {}
        return found
    pairs: dict[str, Any] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            problems.append(f"row {row}: personalisation: {part!r} is not key=value")
            continue
        pairs[key.strip()] = value.strip()
    return pairs


def read_orders(body: bytes) -> list[CsvOrder]:
    """The orders in the file, in the order of their first row. Raises CsvError when the
    file does not read at all."""
    try:
        text = body.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        raise CsvError(f"not UTF-8 (byte {exc.start}): save the file as CSV UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError("the file is empty: a header row is needed") from None
    except csv.Error as exc:
        raise CsvError(f"row 1: {exc}") from None
    names = [h.strip().lower().replace("personalization", "personalisation") for h in header]
    missing = [n for n in _REQUIRED if n not in names]
    if missing:
        raise CsvError(f"row 1: the header lacks {', '.join(missing)}")
    orders: dict[str, CsvOrder] = {}
    try:
        for index, cells in enumerate(reader):
            row = index + 2
            if not any(c.strip() for c in cells):
                continue  # a blank line (Excel adds one at the end)
            values = dict(zip(names, cells, strict=False))
            order_id = values.get("order_id", "").strip()
            if not order_id:
                raise CsvError(f"row {row}: order_id is empty")
            _add(orders.setdefault(order_id, CsvOrder(order_id)), row, values)
    except csv.Error as exc:
        raise CsvError(f"row {reader.line_num}: {exc}") from None
    return list(orders.values())


def _add(order: CsvOrder, row: int, values: dict[str, str]) -> None:
    doc, problems = order.doc, order.problems
    doc.setdefault("order_id", order.order_id)
    for name in (*_ORDER_TEXT, *_ORDER_INT):
        cell = values.get(name, "").strip()
        if not cell:
            continue
        value: Any = cell if name in _ORDER_TEXT else _int(cell, row, name, problems)
        if value is None:
            continue
        if name in doc and doc[name] != value:
            problems.append(
                f"row {row}: {name}: {cell!r} differs from {doc[name]!r} on an earlier row "
                f"of order {order.order_id}"
            )
            continue
        doc[name] = value
    line: dict[str, Any] = {"sku": values.get("sku", "").strip()}
    qty = _int(values.get("qty", ""), row, "qty", problems)
    if qty is not None:
        line["qty"] = qty
    line_no = values.get("line_no", "").strip()
    if line_no:
        number = _int(line_no, row, "line_no", problems)
        if number is not None:
            line["line_no"] = number
    personalisation = _personalisation(values.get("personalisation", ""), row, problems)
    if personalisation:
        line["personalization"] = personalisation  # the contract's spelling
    doc.setdefault("lines", []).append(line)
    order.rows.append(row)
