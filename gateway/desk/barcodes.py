"""What a scanned code means at this line: a badge, a GS1 label, or a plain code.

Scanner drivers deliver the text with the AIM symbology identifier split off (``"]C1"``
GS1-128, ``"]d2"`` GS1 DataMatrix …) and FNC1 as GS (``\\x1d``); the station API delivers
whatever a keyboard or tablet typed, where a GS1 code may come as ``"]C1"`` + data, in
human-readable form ``(01)…(10)…``, or with FNC1 spelled ``<GS>``. All of it lands here.

A code is classified by its shape only. A plain code is then looked up by the station
(a serial that does not exist is an unknown code, not a unit); a GS1 code is parsed and
checked first, so a misprinted label is refused as such, not as an unknown code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from drivers.aim import GS1_ELEMENT_STRING_IDS
from gateway.desk.gs1 import (
    GS,
    Gs1Data,
    Gs1Error,
    Gs1Problem,
    has_valid_check_digit,
    parse_element_string,
    parse_hri,
)
from gateway.desk.text import unreadable
from gateway.i18n import Text, t, verbatim

BADGE = re.compile(r"^OP-[A-Za-z0-9]{1,16}$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]{1,128}$")
# "]" + symbology + modifier (ISO/IEC 15424).
_AIM_ID = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_HRI_START = re.compile(r"^\([0-9]{2,4}\)")
# How people and keyboard wedges write FNC1/GS when they cannot send the control
# character: "<GS>", "{GS}" (GS1 Syntax Engine examples), and U+241D (the GS symbol).
_GS_SPELLINGS = re.compile(r"<GS>|\{GS\}|\u241d")
# What scanners and keyboards put around a code. Not str.strip(): that would also eat a
# GS (Python counts \x1c-\x1f as whitespace), and a leading GS is FNC1.
_PADDING = " \t\r\n"

# EAN/UPC symbols carry a bare GTIN (no AI): digits expected for each identifier.
_RETAIL_GTIN_LENGTH = {"]E0": 13, "]E4": 8}

_UNREADABLE = t("That scan was not readable.")
_SCAN_AGAIN = t("Scan again, slowly and straight on.")
_LABEL_FAULTY = t(
    "Scan it once more; if it is refused again, set the item aside and tell the line lead."
)
# Why a GS1 code does not check out, in the operator's terms (default: damaged/misprinted).
_LIKELY_CAUSE = {
    Gs1Problem.DATE: t("the label is misprinted"),
    Gs1Problem.UNKNOWN_AI: t("the label is not one of this line's"),
}
_NOTHING = verbatim("")


class ScanKind(StrEnum):
    BADGE = "badge"
    GS1 = "gs1"  # a GS1 code, parsed and checked: see Scan.gs1
    CODE = "code"  # a traveller, lot, material or label: decided by looking it up
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Scan:
    """What one scan is. ``code`` is the badge or plain code, the human-readable form of a
    GS1 code, or what was read when it is invalid; ``reason`` and ``advice`` tell the
    operator what is wrong with an invalid scan and what to do (``reason_text`` and
    ``advice_text``: the same as messages, for the operator's language)."""

    kind: ScanKind
    code: str
    gs1: Gs1Data | None = None
    symbology: str | None = None
    reason_text: Text = _NOTHING
    advice_text: Text = _NOTHING

    @property
    def reason(self) -> str:
        return str(self.reason_text)

    @property
    def advice(self) -> str:
        return str(self.advice_text)


def classify(raw: str, symbology: str | None = None) -> Scan:
    """Sort out badges, GS1 codes, plain codes and junk.

    ``symbology`` is the AIM identifier a scanner driver reports (the driver has taken it
    off the text); without one, an AIM identifier typed at the start of ``raw`` is used.
    A GS1 code is recognised by a GS1 symbology, a GS anywhere in the data (FNC1), or the
    human-readable ``(AI)`` form.
    """
    text = raw.strip(_PADDING)
    aim = _AIM_ID.match(text) if symbology is None else None
    if aim is not None:
        text = text[aim.end() :]
        symbology = aim.group()
    text = _GS_SPELLINGS.sub(GS, text)
    if unreadable(text, allowed=GS):
        # No label carries another control or format character: a misread (or junk from
        # a keyboard wedge), said as such rather than parsed and echoed back.
        return Scan(
            ScanKind.INVALID,
            text,
            symbology=symbology,
            reason_text=_UNREADABLE,
            advice_text=_SCAN_AGAIN,
        )
    try:
        gs1 = _gs1_data(text, symbology)
    except Gs1Error as err:
        return Scan(
            ScanKind.INVALID,
            text,
            symbology=symbology,
            reason_text=_label_fault(err),
            advice_text=_LABEL_FAULTY,
        )
    if gs1 is not None:
        return Scan(ScanKind.GS1, gs1.hri(), gs1=gs1, symbology=symbology)
    code = text.strip()
    if BADGE.match(code):
        return Scan(ScanKind.BADGE, code, symbology=symbology)
    if not _PRINTABLE.match(code):
        return Scan(
            ScanKind.INVALID,
            code,
            symbology=symbology,
            reason_text=_UNREADABLE,
            advice_text=_SCAN_AGAIN,
        )
    return Scan(ScanKind.CODE, code, symbology=symbology)


def _gs1_data(text: str, symbology: str | None) -> Gs1Data | None:
    """The GS1 data of ``text`` if it has the shape of a GS1 code, else None; raises
    Gs1Error if it has the shape but does not check out."""
    if _HRI_START.match(text):
        # Also when a plain Code 128 carries it: labels that encode the printed
        # "(01)…" text instead of FNC1 are a common mistake, and still unambiguous.
        return parse_hri(text)
    if symbology in GS1_ELEMENT_STRING_IDS or GS in text:
        return parse_element_string(text)
    digits = _RETAIL_GTIN_LENGTH.get(symbology or "")
    if digits is not None and len(text) == digits and text.isascii() and text.isdigit():
        if not has_valid_check_digit(text):
            raise Gs1Error(
                "01",
                Gs1Problem.CHECK_DIGIT,
                t("GTIN {gtin}: check digit wrong (EAN/UPC)", gtin=text),
            )
        return Gs1Data.of([("01", text.zfill(14))])
    return None


def _label_fault(err: Gs1Error) -> Text:
    """The operator's sentence for a GS1 code that does not check out."""
    cause = _LIKELY_CAUSE.get(err.problem) or t("the label is damaged or misprinted")
    return t("GS1 label: {reason} — {cause}.", reason=err.reason_text, cause=cause)
