"""What a scanned code means at this line: badge, traveller, lot, material or shipping label.

Plain forms only for now (GS1 parsing comes with the scanner drivers). A code is
classified by its shape and then looked up: a serial that does not exist is an unknown
code, not a unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

BADGE = re.compile(r"^OP-[A-Za-z0-9]{1,16}$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]{1,128}$")


class ScanKind(StrEnum):
    BADGE = "badge"
    CODE = "code"  # a traveller, lot, material or label: decided by looking it up
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Scan:
    kind: ScanKind
    code: str


def classify(raw: str) -> Scan:
    """Trim what scanners add (CR/LF, spaces) and sort out badges and junk."""
    code = raw.strip()
    if BADGE.match(code):
        return Scan(ScanKind.BADGE, code)
    if not _PRINTABLE.match(code):
        return Scan(ScanKind.INVALID, code)
    return Scan(ScanKind.CODE, code)
