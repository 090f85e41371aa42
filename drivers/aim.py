"""AIM symbology identifiers (ISO/IEC 15424) and the one step that turns a scanner's raw
text into a :class:`~drivers.base.ScannedCode`, shared by the serial and the HID scanner.

A scanner set to send identifiers puts three characters before each code: ``]``, a
letter for the symbology and a modifier (``]C1`` is Code 128 with FNC1 in the first
position, i.e. GS1-128). In GS1 symbols the leading FNC1 is what the identifier stands
for; every later FNC1 is a group separator and reaches us as GS (0x1d), or as whatever
substitute the scanner was programmed to send instead (``<GS>``, ``^]`` …).
"""

from __future__ import annotations

import re

from drivers.base import ScannedCode

__all__ = [
    "GS",
    "GS1_ELEMENT_STRING_IDS",
    "add_aim_id",
    "code_preview",
    "is_gs1",
    "normalise_scan",
    "split_aim_id",
    "symbology_name",
]

# The group separator: how GS1 symbols mark the end of a variable-length field.
GS = "\x1d"

# ISO/IEC 15424: "]" + symbology letter + one modifier character.
_AIM_ID = re.compile(r"\][A-Za-z][0-9A-Za-z]")

# Identifiers whose data is a GS1 element string (AIs with GS between variable fields):
# GS1-128, GS1 DataBar, GS1 DataMatrix, GS1 QR Code, GS1 DotCode (GS1 General
# Specifications, "symbology identifiers").
GS1_ELEMENT_STRING_IDS = frozenset({"]C1", "]e0", "]d2", "]Q3", "]J1"})

# The symbology letter's meaning (ISO/IEC 15424 table 1), for logs and diagnostics.
_SYMBOLOGIES = {
    "A": "Code 39",
    "C": "Code 128",
    "d": "Data Matrix",
    "E": "EAN/UPC",
    "e": "GS1 DataBar",
    "F": "Codabar",
    "G": "Code 93",
    "H": "Code 11",
    "I": "Interleaved 2 of 5",
    "J": "DotCode",
    "L": "PDF417",
    "M": "MSI",
    "Q": "QR Code",
    "S": "Industrial 2 of 5",
    "X": "other",
    "z": "Aztec",
}


def split_aim_id(text: str) -> tuple[str | None, str]:
    """``"]C1010…"`` → ``("]C1", "010…")``; text without an identifier → ``(None, text)``."""
    if _AIM_ID.match(text):
        return text[:3], text[3:]
    return None, text


def symbology_name(aim_id: str) -> str:
    """``"]C1"`` → ``"Code 128"``; an unknown letter gives ``"unknown"``."""
    if not _AIM_ID.fullmatch(aim_id):
        raise ValueError(f"not an AIM symbology identifier: {aim_id!r} (expected ']' + 2 chars)")
    return _SYMBOLOGIES.get(aim_id[1], "unknown")


def is_gs1(aim_id: str | None) -> bool:
    """True when the identifier says the data is a GS1 element string."""
    return aim_id in GS1_ELEMENT_STRING_IDS


def add_aim_id(text: str, aim_id: str) -> str:
    """What a scanner sends for ``text`` read from a symbol of kind ``aim_id``."""
    if not _AIM_ID.fullmatch(aim_id):
        raise ValueError(f"not an AIM symbology identifier: {aim_id!r} (expected ']' + 2 chars)")
    return aim_id + text


def normalise_scan(raw: str, *, aim_ids: bool, gs_substitute: str = "") -> ScannedCode:
    """One complete read as the gateway wants it.

    Args:
        raw: the code as framed by the driver (no prefix, suffix or terminator key).
        aim_ids: the scanner is set to send identifiers; only then is a leading ``]Xn``
            taken as one (data may start with "]" too).
        gs_substitute: what the scanner sends for GS, if not GS itself ("" = GS).

    A GS right after a GS1 identifier is dropped: some scanners send the leading FNC1 as
    GS as well as the identifier, and the identifier already says "GS1". Without
    identifiers a leading GS is kept, as it is then the only sign that the data is GS1.
    """
    aim_id, text = split_aim_id(raw) if aim_ids else (None, raw)
    if gs_substitute:
        text = text.replace(gs_substitute, GS)
    if is_gs1(aim_id) and text.startswith(GS):
        text = text[1:]
    return ScannedCode(text=text, symbology=aim_id)


def code_preview(raw: str, shown: int = 6) -> str:
    """A code as diagnostics show it: the start (enough for an AIM id and a prefix) and
    the length, since full codes include operators' badges, which log people in."""
    if len(raw) <= shown:
        return repr(raw)
    return f"{raw[:shown]!r}…({len(raw)} chars)"
