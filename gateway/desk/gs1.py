"""GS1 element strings: the data in GS1-128, GS1 DataMatrix, GS1 QR and DataBar codes.

A GS1 code carries a list of (application identifier, value) pairs. In the code itself
(the *element string*) the pairs are simply concatenated: an AI whose length is
predefined by its first two digits (GS1 General Specifications, figure "Element strings
with predefined length using GS1 Application Identifiers") needs no separator after it,
any other AI ends at a GS (``\\x1d``, FNC1 as a scanner transmits it) or at the end. On
the label, under the bars, the same data is printed in *human-readable* form:
``(01)09501101530003(10)LOT42``.

This module only parses, checks and formats; it does no I/O and knows nothing of the
line. Values are checked as the GS1 Barcode Syntax Dictionary describes each AI: length,
character set (digits, or the 82 characters of GS1 AI encodable character set 82),
check digits and dates. Rules about which AIs must go together ("10 requires 01") are
not enforced: a lot label of this line may carry a material id (240) without a GTIN.
"""

from __future__ import annotations

import calendar
import enum
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import MappingProxyType

from gateway.i18n import Text, t

__all__ = [
    "CSET82",
    "GS",
    "PREDEFINED_LENGTH",
    "AiSpec",
    "Content",
    "Element",
    "Gs1Data",
    "Gs1Error",
    "Gs1Problem",
    "ai_spec",
    "check_digit",
    "has_valid_check_digit",
    "known_ais",
    "parse_element_string",
    "parse_hri",
    "resolve_date",
]

GS = "\x1d"

# GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1): no
# space, no # $ @ [ \ ] ^ ` { | } ~.
CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
_DIGITS = re.compile(r"[0-9]*")  # not str.isdigit: that also accepts "٣" and "²"
_LEADING_DIGITS = re.compile(r"[0-9]{2,4}")

# Element strings with predefined length: the first two digits of the AI fix the length
# of AI plus value, so no separator follows them. Prefixes 03, 04, 14, 18, 19 and the
# unlisted AIs in 31-36 and 41 are reserved; the lengths still hold for them.
PREDEFINED_LENGTH = {
    "00": 20,
    "01": 16,
    "02": 16,
    "03": 16,
    "04": 18,
    "11": 8,
    "12": 8,
    "13": 8,
    "14": 8,
    "15": 8,
    "16": 8,
    "17": 8,
    "18": 8,
    "19": 8,
    "20": 4,
    "31": 10,
    "32": 10,
    "33": 10,
    "34": 10,
    "35": 10,
    "36": 10,
    "41": 16,
}

# An AI in human-readable form: "(01)", "(3103)".
_HRI_AI = re.compile(r"\(([0-9]{2,4})\)")


class Gs1Problem(enum.StrEnum):
    """What kind of thing is wrong with a GS1 code."""

    SYNTAX = "syntax"  # not an element string at all: empty, stray separators, no "(AI)"
    UNKNOWN_AI = "unknown_ai"
    LENGTH = "length"
    CHARACTERS = "characters"
    CHECK_DIGIT = "check_digit"
    DATE = "date"
    DUPLICATE = "duplicate"


class Gs1Error(ValueError):
    """A GS1 code that does not parse or does not check out. ``ai`` is the application
    identifier concerned (None when the code does not get that far); ``reason`` says what
    is wrong (``reason_text``: the same as a message, for the operator's language)."""

    def __init__(self, ai: str | None, problem: Gs1Problem, reason: Text) -> None:
        super().__init__(f"AI ({ai}): {reason}" if ai else str(reason))
        self.ai = ai
        self.problem = problem
        self.reason_text = reason
        self.reason = str(reason)


class Content(enum.StrEnum):
    DIGITS = "N"
    CSET82 = "X"


@dataclass(frozen=True, slots=True)
class AiSpec:
    """What one application identifier holds, as in the GS1 Barcode Syntax Dictionary."""

    ai: str
    title: str  # the GS1 data title, e.g. "BATCH/LOT"
    content: Content
    min_len: int
    max_len: int
    check_digit: bool = False  # the last digit is a GS1 mod-10 check digit
    yymmdd: bool = False  # a date; DD = 00 means the month without a day

    @property
    def predefined(self) -> bool:
        """No separator is needed after this AI: its length is fixed by its prefix."""
        return self.ai[:2] in PREDEFINED_LENGTH

    @property
    def decimals(self) -> int | None:
        """Implied decimal places of a measure (31nn-36nn: the AI's last digit)."""
        return int(self.ai[3]) if self.ai[:2] in _MEASURE_PREFIXES else None


_MEASURE_PREFIXES = frozenset({"31", "32", "33", "34", "35", "36"})


def _n(ai: str, title: str, length: int, **flags: bool) -> AiSpec:
    return AiSpec(ai, title, Content.DIGITS, length, length, **flags)


def _n_upto(ai: str, title: str, max_len: int) -> AiSpec:
    return AiSpec(ai, title, Content.DIGITS, 1, max_len)


def _x_upto(ai: str, title: str, max_len: int) -> AiSpec:
    return AiSpec(ai, title, Content.CSET82, 1, max_len)


def _measures(prefix: str, title: str) -> list[AiSpec]:
    """A measure AI family: prefix + n, n = 0..5 implied decimal places, six digits."""
    return [_n(f"{prefix}{n}", title, 6) for n in range(6)]


@functools.cache
def _known_ais() -> Mapping[str, AiSpec]:
    """The AI table, built on first use."""
    specs = [
        _n("00", "SSCC", 18, check_digit=True),
        _n("01", "GTIN", 14, check_digit=True),
        _n("02", "CONTENT", 14, check_digit=True),
        _x_upto("10", "BATCH/LOT", 20),
        _n("11", "PROD DATE", 6, yymmdd=True),
        _n("12", "DUE DATE", 6, yymmdd=True),
        _n("13", "PACK DATE", 6, yymmdd=True),
        _n("15", "BEST BEFORE", 6, yymmdd=True),
        _n("16", "SELL BY", 6, yymmdd=True),
        _n("17", "USE BY OR EXPIRY", 6, yymmdd=True),
        _n("20", "VARIANT", 2),
        _x_upto("21", "SERIAL", 20),
        _x_upto("22", "CPV", 20),
        _x_upto("240", "ADDITIONAL ID", 30),
        _x_upto("241", "CUST. PART No.", 30),
        _n_upto("242", "MTO VARIANT", 6),
        _x_upto("250", "SECONDARY SERIAL", 30),
        _x_upto("251", "REF. TO SOURCE", 30),
        _n_upto("30", "VAR. COUNT", 8),
        *_measures("310", "NET WEIGHT (kg)"),
        *_measures("311", "LENGTH (m)"),
        *_measures("312", "WIDTH (m)"),
        *_measures("313", "HEIGHT (m)"),
        *_measures("315", "NET VOLUME (l)"),
        *_measures("320", "NET WEIGHT (lb)"),
        *_measures("330", "GROSS WEIGHT (kg)"),
        *_measures("340", "GROSS WEIGHT (lb)"),
        _n_upto("37", "COUNT", 8),
        _x_upto("400", "ORDER NUMBER", 30),
        _x_upto("401", "GINC", 30),
        _n("402", "GSIN", 17, check_digit=True),
        _x_upto("403", "ROUTE", 30),
        _n("410", "SHIP TO LOC", 13, check_digit=True),
        _n("411", "BILL TO", 13, check_digit=True),
        _n("412", "PURCHASE FROM", 13, check_digit=True),
        _n("413", "SHIP FOR LOC", 13, check_digit=True),
        _n("414", "LOC No.", 13, check_digit=True),
        _n("415", "PAY TO", 13, check_digit=True),
        _n("416", "PROD/SERV LOC", 13, check_digit=True),
        _n("417", "PARTY", 13, check_digit=True),
        _x_upto("420", "SHIP TO POST", 20),
        _n("422", "ORIGIN", 3),
        _x_upto("8004", "GIAI", 30),
        _x_upto("90", "INTERNAL", 30),
        *(_x_upto(str(ai), "INTERNAL", 90) for ai in range(91, 100)),
    ]
    return MappingProxyType({s.ai: s for s in specs})


def ai_spec(ai: str) -> AiSpec | None:
    """The spec of a known AI, or None."""
    return _known_ais().get(ai)


def known_ais() -> list[AiSpec]:
    """Every AI this parser reads, in AI order."""
    return sorted(_known_ais().values(), key=lambda s: s.ai)


# -- check digits and dates ----------------------------------------------------------


def check_digit(body: str) -> str:
    """The GS1 mod-10 check digit for ``body`` (all digits but the check digit): weights
    3, 1, 3, … from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str(-total % 10)


def has_valid_check_digit(number: str) -> bool:
    """Whether a GTIN-8/12/13/14, SSCC, GLN … ends in the right check digit."""
    if len(number) < 2 or not _DIGITS.fullmatch(number):
        return False
    return check_digit(number[:-1]) == number[-1]


def _plausible_yymmdd(value: str) -> bool:
    """MM 01-12 and DD 00 or a day of that month. Leap years are those of 2000-2099
    (YY divisible by 4), the only century a live label can be in."""
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    if not 1 <= mm <= 12:
        return False
    return dd <= calendar.monthrange(2000 + yy, mm)[1]


def resolve_date(yymmdd: str, today: date) -> date:
    """The date a YYMMDD value means on ``today``.

    Century rule of GS1 General Specifications §7.12: with D = YY minus the last two
    digits of today's year, D in 51..99 is last century, D in -99..-50 next century,
    anything else this century (so the window is this year -49 .. +50). DD = 00 is the
    last day of the month, as GS1 defines it for best-before and expiry dates.
    """
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    this_yy = today.year % 100
    century = today.year - this_yy
    difference = yy - this_yy
    if difference >= 51:
        century -= 100
    elif difference <= -50:
        century += 100
    year = century + yy
    last_day = calendar.monthrange(year, mm)[1]
    # 29 February of 1900 or 2100 (not leap years) can only come from the century rule
    # far from today; the month's last day is the nearest real date.
    return date(year, mm, last_day if dd == 0 else min(dd, last_day))


# -- elements ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Element:
    """One application identifier and its value, as in the code."""

    ai: str
    value: str

    @property
    def spec(self) -> AiSpec:
        found = _known_ais().get(self.ai)
        if found is None:
            raise Gs1Error(self.ai, Gs1Problem.UNKNOWN_AI, _unknown(self.ai))
        return found


def _unknown(ai: str) -> Text:
    return t("application identifier ({ai}) is not one this line reads", ai=ai)


def _checked(ai: str, value: str) -> Element:
    """``Element(ai, value)`` after checking the value against the AI's spec."""
    spec = _known_ais().get(ai)
    if spec is None:
        raise Gs1Error(ai, Gs1Problem.UNKNOWN_AI, _unknown(ai))
    subject = f"{spec.title} {value}" if value else spec.title
    if not value:
        raise Gs1Error(ai, Gs1Problem.LENGTH, t("{title} is empty", title=spec.title))
    if not spec.min_len <= len(value) <= spec.max_len:
        wanted = (
            str(spec.max_len)
            if spec.min_len == spec.max_len
            else t("{min} to {max}", min=spec.min_len, max=spec.max_len)
        )
        raise Gs1Error(ai, Gs1Problem.LENGTH, _length(subject, len(value), wanted))
    if spec.content is Content.DIGITS:
        if not _DIGITS.fullmatch(value):
            raise Gs1Error(
                ai, Gs1Problem.CHARACTERS, t("{subject} must be digits only", subject=subject)
            )
    else:
        bad = next((c for c in value if c not in CSET82), None)
        if bad is not None:
            raise Gs1Error(
                ai,
                Gs1Problem.CHARACTERS,
                t("{title} contains {bad}, not allowed in GS1", title=spec.title, bad=repr(bad)),
            )
    if spec.check_digit and not has_valid_check_digit(value):
        raise Gs1Error(
            ai,
            Gs1Problem.CHECK_DIGIT,
            t(
                "{subject}: check digit wrong (should end in {digit})",
                subject=subject,
                digit=check_digit(value[:-1]),
            ),
        )
    if spec.yymmdd and not _plausible_yymmdd(value):
        raise Gs1Error(ai, Gs1Problem.DATE, t("{subject} is not a date (YYMMDD)", subject=subject))
    return Element(ai, value)


def _length(subject: str, length: int, wanted: str | Text) -> Text:
    return t(
        "{subject} has {length} characters, not {wanted}",
        subject=subject,
        length=length,
        wanted=wanted,
    )


@dataclass(frozen=True, slots=True)
class Gs1Data:
    """The checked elements of one GS1 code, in the order of the code."""

    elements: tuple[Element, ...]

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Gs1Data:
        """Check and collect (AI, value) pairs. An AI given twice with the same value
        counts once (GS1 allows that); with two different values it is an error."""
        seen: dict[str, str] = {}
        elements: list[Element] = []
        for ai, value in pairs:
            element = _checked(ai, value)
            if ai in seen:
                if seen[ai] != value:
                    raise Gs1Error(
                        ai,
                        Gs1Problem.DUPLICATE,
                        t(
                            "{title} appears twice: {first} and {second}",
                            title=element.spec.title,
                            first=seen[ai],
                            second=value,
                        ),
                    )
                continue
            seen[ai] = value
            elements.append(element)
        if not elements:
            raise Gs1Error(None, Gs1Problem.SYNTAX, t("no application identifier in the code"))
        return cls(tuple(elements))

    def value(self, ai: str) -> str | None:
        return next((e.value for e in self.elements if e.ai == ai), None)

    def __contains__(self, ai: object) -> bool:
        return any(e.ai == ai for e in self.elements)

    def as_dict(self) -> dict[str, str]:
        return {e.ai: e.value for e in self.elements}

    @property
    def sscc(self) -> str | None:
        return self.value("00")

    @property
    def gtin(self) -> str | None:
        return self.value("01")

    @property
    def lot(self) -> str | None:
        return self.value("10")

    @property
    def serial(self) -> str | None:
        return self.value("21")

    @property
    def additional_id(self) -> str | None:
        """AI 240: this line puts its own material id there."""
        return self.value("240")

    def date_of(self, ai: str, today: date) -> date | None:
        """A date AI (11, 13, 15, 16, 17 …) resolved on ``today``; None if absent."""
        value = self.value(ai)
        return None if value is None else resolve_date(value, today)

    def expiry(self, today: date) -> date | None:
        """AI 17, use by / expiry date."""
        return self.date_of("17", today)

    def measure(self, prefix: str) -> Decimal | None:
        """A measure by its three-digit prefix ("310" net weight in kg) with its implied
        decimals applied: (3103)001250 is 1.250."""
        for e in self.elements:
            if e.ai[:3] == prefix and e.spec.decimals is not None:
                return Decimal(e.value).scaleb(-e.spec.decimals)
        return None

    @property
    def net_weight_kg(self) -> Decimal | None:
        return self.measure("310")

    def element_string(self) -> str:
        """The data as encoded in the symbol (without FNC1 in first position): a GS
        after each AI of variable length, except the last."""
        parts: list[str] = []
        for i, e in enumerate(self.elements):
            parts.append(e.ai + e.value)
            if not e.spec.predefined and i < len(self.elements) - 1:
                parts.append(GS)
        return "".join(parts)

    def hri(self) -> str:
        """The human-readable form, ``(01)09501101530003(10)LOT42``. A "(" inside a value
        is written "\\(" so it cannot be taken for the start of an AI (the GS1 Barcode
        Syntax Engine's bracketed syntax does the same)."""
        return "".join(f"({e.ai}){_escape_hri(e.value)}" for e in self.elements)


def _escape_hri(value: str) -> str:
    return value.replace("(", "\\(")


# -- parsing -------------------------------------------------------------------------


def _ai_at(text: str, pos: int) -> AiSpec:
    # Known AIs are prefix-free (no AI is the start of another), so the first match wins.
    for length in (2, 3, 4):
        spec = _known_ais().get(text[pos : pos + length])
        if spec is not None:
            return spec
    head = text[pos : pos + 4]
    digits = _LEADING_DIGITS.match(head)
    if digits is None:
        raise Gs1Error(
            None,
            Gs1Problem.SYNTAX,
            t("expected an application identifier, found {head}", head=repr(head)),
        )
    # Where an unknown AI ends is unknowable: report the digits that could be it.
    raise Gs1Error(
        digits.group(),
        Gs1Problem.UNKNOWN_AI,
        t("no application identifier this line reads starts {digits}", digits=digits.group()),
    )


def parse_element_string(text: str) -> Gs1Data:
    """Parse the data of a GS1 symbol: AIs and values, GS (``\\x1d``) after values of
    variable length. A leading GS (FNC1 in first position, as some scanners send it)
    and a redundant GS after a predefined-length value are accepted."""
    body = text.lstrip(GS)
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        if body[pos] == GS:
            raise Gs1Error(None, Gs1Problem.SYNTAX, t("two separators in a row"))
        spec = _ai_at(body, pos)
        start = pos + len(spec.ai)
        if spec.predefined:
            end = start + spec.max_len
            value = body[start:end]
            if GS in value or len(value) < spec.max_len:
                value = value.split(GS, 1)[0]
                raise Gs1Error(
                    spec.ai,
                    Gs1Problem.LENGTH,
                    _length(f"{spec.title} {value}", len(value), str(spec.max_len)),
                )
            pos = end + 1 if body[end : end + 1] == GS else end
        else:
            end = body.find(GS, start)
            end = len(body) if end == -1 else end
            value = body[start:end]
            pos = end + 1
        pairs.append((spec.ai, value))
    return Gs1Data.of(pairs)


def parse_hri(text: str) -> Gs1Data:
    """Parse the human-readable form ``(01)09501101530003 (10)LOT42``. Spaces between
    elements are ignored (a space is never part of a GS1 value); "\\(" is a literal "(",
    as is a "(" that does not open a "(digits)" AI."""
    body = text.strip(" ")
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        opened = _HRI_AI.match(body, pos)
        if opened is None:
            raise Gs1Error(
                None,
                Gs1Problem.SYNTAX,
                t("expected '(AI)' at {text}", text=repr(body[pos : pos + 6])),
            )
        value: list[str] = []
        pos = opened.end()
        while pos < len(body):
            if body.startswith("\\(", pos):
                value.append("(")
                pos += 2
                continue
            if body[pos] == "(" and _HRI_AI.match(body, pos):
                break
            value.append(body[pos])
            pos += 1
        ai = opened.group(1)
        if ai not in _known_ais():
            raise Gs1Error(ai, Gs1Problem.UNKNOWN_AI, _unknown(ai))
        pairs.append((ai, "".join(value).strip(" ")))
    return Gs1Data.of(pairs)
