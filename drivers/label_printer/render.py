"""Pure ZPL II rendering of the unit traveller and the parcel shipping label (4x6 in, 203 dpi)."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

__all__ = [
    "ShippingLabel",
    "TravellerLabel",
    "field_data",
    "render_shipping",
    "render_traveller",
]


@dataclass(frozen=True, slots=True)
class TravellerLabel:
    """Stuck on a unit at its first operation; it follows the unit through the line."""

    serial: str
    order_id: str
    sku: str
    sku_name: str
    line_no: int
    unit_index: int
    unit_count: int
    operations: tuple[str, ...]
    personalization: tuple[tuple[str, str], ...]
    ship_by: str
    priority: int


@dataclass(frozen=True, slots=True)
class ShippingLabel:
    """Goes on the packed parcel; the packer scans its barcode to confirm the parcel."""

    label_id: str
    order_id: str
    carrier: str
    ship_by: str
    name: str
    address: str
    city: str
    region: str
    postcode: str
    country: str
    units: int
    weight_g: float


# 4x6 inch label at 203 dpi.
_WIDTH = 812
_LENGTH = 1218
_MARGIN = 40
_RIGHT = _WIDTH - _MARGIN

# SimSun must be downloaded to the printer's E: flash: it covers Latin, CJK and the ellipsis,
# whereas the resident ^A0 font has no CJK glyphs. A printer without it substitutes its
# default font and prints Chinese names as empty boxes.
_FONT = "E:SIMSUN.TTF"

_ELLIPSIS = "…"

# Bytes the printer would parse rather than print: the format and control prefixes, the ^FH
# hex indicator itself, and control characters (C0, DEL and C1).
_HEX_INDICATOR = "_"
_SPECIAL = frozenset("^~" + _HEX_INDICATOR)

# ^BC in mode N parses ">" as the start of an invocation code and cannot take ^ or ~ as data
# at all, so these three are written as their invocation codes instead (ZPL II ^BC table).
_CODE128_INVOCATION = {">": ">0", "^": "><", "~": ">="}
_CODE128_START_B = ">:"

_TRUNCATED_MORE = "+{} more: see order"


def field_data(text: str, max_chars: int | None = None) -> str:
    """Return text as a ^FD payload for a field that has ^FH_, truncated to max_chars.

    Truncation counts characters (code points), keeps room for an ellipsis, and happens before
    escaping, so neither a multi-byte character nor an escape sequence is ever split.
    ``^``, ``~``, ``_`` and control characters become ``_XX`` escapes of their UTF-8 bytes,
    so the payload can never end the field or start a command. Lone surrogates cannot be
    sent as UTF-8 and become U+FFFD.
    """
    if max_chars is not None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, not {max_chars}")
        if len(text) > max_chars:
            text = text[: max_chars - 1] + _ELLIPSIS
    out: list[str] = []
    for ch in text:
        if unicodedata.category(ch) == "Cs":
            out.append("\ufffd")
        elif ch in _SPECIAL or unicodedata.category(ch) == "Cc":
            out.extend(f"{_HEX_INDICATOR}{byte:02X}" for byte in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def render_traveller(label: TravellerLabel) -> str:
    """Render the traveller: serial barcode, what the unit is, its personalization and route."""
    rows = [
        _code128(_MARGIN, 40, label.serial, 130, what="serial"),
        _text(_MARGIN, 180, label.serial, 44),
        *_row(240, "ORDER", label.order_id),
        *_row(290, "ITEM", f"line {label.line_no} · unit {label.unit_index}/{label.unit_count}"),
        *_row(340, "SKU", label.sku),
        _text(_MARGIN, 390, label.sku_name, 36),
        _text(_MARGIN, 450, "SHIP BY", 28),
        _text(_MARGIN + 150, 440, label.ship_by, 56, right=580),
        _box(600, 430, _RIGHT - 600, 76, 4),
        _text(616, 444, f"P{label.priority}", 52, right=_RIGHT - 8),
        _box(_MARGIN, 520, _RIGHT - _MARGIN, 0, 3),
        _text(_MARGIN, 535, "PERSONALIZATION", 28),
        *_personalization(label.personalization, top=575),
        _box(_MARGIN, 930, _RIGHT - _MARGIN, 0, 3),
        _text(_MARGIN, 945, "ROUTE", 28),
        *_operations(label.operations, top=985),
    ]
    return _label(rows)


def render_shipping(label: ShippingLabel) -> str:
    """Render the shipping label: carrier, recipient, contents and the label_id barcode."""
    if not (math.isfinite(label.weight_g) and label.weight_g >= 0):
        raise ValueError(f"weight_g must be a finite, non-negative number, not {label.weight_g}")
    address = _wrap(label.address, _columns(_MARGIN, _RIGHT, 44), lines=3)
    rows = [
        _text(_MARGIN, 40, label.carrier, 56, right=440),
        _text(460, 30, "SHIP BY", 28),
        _text(460, 62, label.ship_by, 44),
        _box(_MARGIN, 120, _RIGHT - _MARGIN, 0, 3),
        _text(_MARGIN, 135, "SHIP TO", 28),
        _text(_MARGIN, 175, label.name, 56),
        *(_text(_MARGIN, 240 + 48 * i, line, 44) for i, line in enumerate(address)),
        _text(_MARGIN, 392, label.city, 44),
        _text(_MARGIN, 446, label.region, 44, right=500),
        _text(520, 446, label.postcode, 44),
        _text(_MARGIN, 500, label.country, 56),
        _box(_MARGIN, 585, _RIGHT - _MARGIN, 0, 3),
        *_row(605, "ORDER", label.order_id, height=48),
        _text(_MARGIN, 680, "UNITS", 28),
        _text(_MARGIN, 715, str(label.units), 48, right=300),
        _text(320, 680, "WEIGHT", 28),
        _text(320, 715, f"{label.weight_g / 1000:.2f} kg", 48),
        _box(_MARGIN, 790, _RIGHT - _MARGIN, 0, 3),
        _code128(_MARGIN, 820, label.label_id, 200, what="label_id"),
        _text(_MARGIN, 1040, label.label_id, 44),
        _text(_MARGIN, 1110, "SCAN TO CONFIRM THE PARCEL", 28),
    ]
    return _label(rows)


def _label(fields: list[str]) -> str:
    # ^CI28 makes the printer read field data as UTF-8, so Chinese text prints as sent.
    header = ["^XA", "^CI28", f"^PW{_WIDTH}", f"^LL{_LENGTH}"]
    return "\n".join([*header, *fields, "^XZ"])


def _field(x: int, y: int, commands: str, data: str) -> str:
    """One field: origin, its formatting commands, then data already escaped by field_data."""
    return f"^FO{x},{y}{commands}^FH{_HEX_INDICATOR}^FD{data}^FS"


def _text(x: int, y: int, text: str, height: int, right: int = _RIGHT) -> str:
    """A single line of text in the CJK font, cut with an ellipsis where it would pass right."""
    max_chars = _chars_fitting(text, _columns(x, right, height))
    return _field(x, y, f"^A@N,{height},{height},{_FONT}", field_data(text, max_chars))


def _row(y: int, caption: str, value: str, height: int = 40) -> tuple[str, str]:
    """A small caption with its value to the right, as on a form."""
    return _text(_MARGIN, y + height - 32, caption, 28), _text(_MARGIN + 150, y, value, height)


def _box(x: int, y: int, width: int, height: int, thickness: int) -> str:
    return f"^FO{x},{y}^GB{width},{height},{thickness}^FS"


def _personalization(pairs: tuple[tuple[str, str], ...], top: int) -> list[str]:
    slots = 6
    if not pairs:
        return [_text(_MARGIN, top, "none", 36)]
    # An operator must never miss a field, so an overflow takes the last row to say so.
    shown = pairs if len(pairs) <= slots else pairs[: slots - 1]
    fields: list[str] = []
    for i, (name, value) in enumerate(shown):
        y = top + 58 * i
        fields += [_text(_MARGIN, y + 8, name, 28, right=250), _text(260, y, value, 40)]
    if len(shown) < len(pairs):
        more = _TRUNCATED_MORE.format(len(pairs) - len(shown))
        fields.append(_text(_MARGIN, top + 58 * len(shown), more, 36))
    return fields


def _operations(operations: tuple[str, ...], top: int) -> list[str]:
    # Two columns of four, filled top to bottom, each with a box to tick.
    rows, column_width = 4, (_RIGHT - _MARGIN) // 2
    slots = 2 * rows
    shown = operations if len(operations) <= slots else operations[: slots - 1]
    fields: list[str] = []
    for i, name in enumerate(shown):
        x, y = _MARGIN + column_width * (i // rows), top + 52 * (i % rows)
        right = x + column_width - 10
        fields += [_box(x, y, 30, 30, 3), _text(x + 42, y, f"{i + 1}. {name}", 32, right=right)]
    if len(shown) < len(operations):
        x, y = _MARGIN + column_width, top + 52 * (rows - 1)
        more = _TRUNCATED_MORE.format(len(operations) - len(shown))
        fields.append(_text(x + 42, y, more, 32))
    return fields


def _code128(x: int, y: int, text: str, height: int, *, what: str) -> str:
    """A Code 128 (subset B) barcode of text, with no interpretation line of its own.

    Its ^FD carries no ^FH: the only specials left are the invocation codes, whose meaning
    would otherwise depend on whether the printer decodes hex before parsing them. A text
    the barcode cannot carry exactly is refused, since a parcel whose barcode scans as
    something else is worse than no label.
    """
    if not text or not all(" " <= ch <= "~" for ch in text):
        raise ValueError(f"{what} {text!r} is not printable ASCII, so Code 128 cannot carry it")
    module = _module_width(len(text))
    if module is None:
        raise ValueError(f"{what} {text!r} is too long for a Code 128 barcode on this label")
    data = "".join(_CODE128_INVOCATION.get(ch, ch) for ch in text)
    return f"^FO{x},{y}^BY{module}^BCN,{height},N,N,N,N^FD{_CODE128_START_B}{data}^FS"


def _module_width(symbols: int) -> int | None:
    """The widest bar module (dots) at which the barcode and its quiet zones fit the label."""
    # Start, data, check (11 modules each) and stop (13), plus a 10-module quiet zone on the
    # right; the left one is the margin. 1-dot modules are too thin to scan reliably at 203 dpi.
    for module in (3, 2):
        if _MARGIN + module * (11 * (symbols + 2) + 13 + 10) <= _WIDTH:
            return module
    return None


def _columns(x: int, right: int, height: int) -> int:
    # SimSun draws Latin at half the font height and CJK at the full height.
    return max(1, (right - x) * 2 // height)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    # Ambiguous-width characters (Greek, Cyrillic, "…") are full width in SimSun.
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F", "A") else 1


def _chars_fitting(text: str, columns: int) -> int | None:
    """The max_chars that keeps text within columns: None if it all fits."""
    if sum(map(_char_width, text)) <= columns:
        return None
    room, used = columns - _char_width(_ELLIPSIS), 0
    for i, ch in enumerate(text):
        used += _char_width(ch)
        if used > room:
            return i + 1  # i characters and the ellipsis
    return len(text)


def _prefix_fitting(text: str, columns: int) -> int:
    used = 0
    for i, ch in enumerate(text):
        used += _char_width(ch)
        if used > columns:
            return i
    return len(text)


def _wrap(text: str, columns: int, lines: int) -> list[str]:
    """Exactly `lines` lines of text, broken at line breaks and else at spaces.

    The last line takes all that is left, so _text cuts it with an ellipsis; a fixed number
    of lines keeps the label's command sequence independent of the customer's text.
    """
    pending = [p.strip() for p in text.splitlines()]
    pending = [p for p in pending if p]
    out: list[str] = []
    while pending and len(out) < lines - 1:
        paragraph = pending.pop(0)
        cut = max(1, _prefix_fitting(paragraph, columns))
        if cut < len(paragraph):
            space = paragraph.rfind(" ", 0, cut + 1)
            cut = space if space > 0 else cut
            rest = paragraph[cut:].strip()
            if rest:
                pending.insert(0, rest)
            paragraph = paragraph[:cut].rstrip()
        out.append(paragraph)
    out.append(" ".join(pending))
    return out + [""] * (lines - len(out))
