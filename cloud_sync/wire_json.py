"""JSON as the hub may send it, and what of it is not JSON a line can take.

Python's parser is more lenient than the wire: it reads ``NaN`` and ``Infinity`` (RFC 8259
has no such numbers), turns ``1e400`` into infinity, accepts a lone UTF-16 surrogate escape
(``"\\ud83d"``: half an emoji, which JavaScript shops produce when they cut a string; no
Unicode character, so it can be neither stored as UTF-8 nor sent on), and ``json.loads`` of
bytes even decodes UTF-16 and lets UTF-8-encoded surrogates through. The wire follows
I-JSON (RFC 7493), the profile of JSON made for exchanging messages: UTF-8, no lone
surrogates, numbers a double can hold (integers within ±(2**53 − 1)). On top of I-JSON a
line's text holds no C0 control character but tab, line feed and carriage return: U+0000
ends a C string, PostgreSQL's ``jsonb`` refuses it, and none of them prints.

:func:`parse` parses; :func:`problems` names, field by field, what in a parsed document
breaks those rules, so that one bad order in an array is refused alone, with its fields,
while the others go on. It only needs to look when :func:`parse` says the message may hold
such a value: the common message pays a look at each of its numbers while they are parsed
and one scan of its text for a backslash escape (a regular expression over every number in
the text cost four times as much).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

# I-JSON (RFC 7493, 2.2): integers beyond this lose precision in an IEEE 754 double.
MAX_SAFE_INTEGER = 2**53 - 1
# A lone surrogate, or a C0 control character but tab, line feed and carriage return (a
# multi-line engraving is text).
_NOT_TEXT = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f]")
# A surrogate or control character gets into a parsed text only through an escape: \uD800,
# \u0000, or one of the two short escapes of controls, \b and \f (a raw control byte is a
# syntax error, a raw surrogate invalid UTF-8). A match only means "look closer": an
# escaped backslash before a "b" matches too. It starts with a literal backslash, which
# the regular-expression engine skips to quickly.
_TEXT_ESCAPE = re.compile(rb"\\(?:u(?:[dD][89a-fA-F]|00[01])|[bf])")
# 2**53 has 16 digits: an integer of fewer is within I-JSON's range.
_SAFE_DIGITS = len(str(MAX_SAFE_INTEGER))
_MAX_PROBLEMS = 20


@dataclass(frozen=True)
class WireProblem:
    """One value that is not what the wire carries: ``code`` is the contract's error code
    (INVALID_JSON for a number JSON has not, SCHEMA for a string that is no text)."""

    code: str
    field: str
    message: str


class Parsed(NamedTuple):
    doc: Any
    # False: the document holds no value problems() would report; True: look.
    suspect: bool


def parse(payload: bytes) -> Parsed:
    """Parse a message: strict UTF-8 (RFC 8259, 8.1), then JSON; and say whether the
    document may hold a value :func:`problems` reports.

    Raises ValueError (UnicodeDecodeError is one) for what is not JSON text, RecursionError
    for nesting deeper than the parser goes. Non-finite numbers and lone surrogates parse:
    :func:`problems` finds them, so that they cost only the order that carries them.
    """
    odd = False

    def integer(text: str) -> int:
        nonlocal odd
        if len(text) >= _SAFE_DIGITS:  # "-" counts: a false alarm costs only a look
            odd = True
        return int(text)

    def decimal(text: str) -> float:
        nonlocal odd
        value = float(text)
        if math.isinf(value):  # 1e400
            odd = True
        return value

    def constant(name: str) -> float:
        nonlocal odd
        odd = True  # NaN, Infinity, -Infinity
        return float(name)

    doc = json.loads(
        payload.decode("utf-8"), parse_int=integer, parse_float=decimal, parse_constant=constant
    )
    return Parsed(doc, odd or _TEXT_ESCAPE.search(payload) is not None)


def problems(doc: Any, root: str = "") -> list[WireProblem]:
    """What in ``doc`` (as :func:`loads` returns it) is not wire JSON, by dotted field path
    (``lines.0.personalization.text``); at most twenty. Walks without recursion: a document
    is as deep as the parser let it be."""
    found: list[WireProblem] = []
    stack: list[tuple[str, Any]] = [(root, doc)]
    while stack and len(found) < _MAX_PROBLEMS:
        path, value = stack.pop()
        if isinstance(value, str):
            why = text_problem(value)
            if why is not None:
                found.append(WireProblem("SCHEMA", path, why))
        elif isinstance(value, float):
            if not math.isfinite(value):
                found.append(
                    WireProblem("INVALID_JSON", path, "NaN and Infinity are not JSON numbers")
                )
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_SAFE_INTEGER:
                found.append(
                    WireProblem(
                        "INVALID_JSON",
                        path,
                        f"an integer of {len(str(abs(value)))} digits: beyond ±(2**53 − 1), "
                        "a double cannot hold it (I-JSON, RFC 7493)",
                    )
                )
        elif isinstance(value, dict):
            items = list(value.items())
            for key, item in reversed(items):
                why = text_problem(key)
                if why is not None:
                    found.append(WireProblem("SCHEMA", path, f"a field name: {why}"))
                    key = clean_text(key)  # a path must be text too: U+FFFD for the half
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            for i in range(len(value) - 1, -1, -1):
                stack.append((f"{path}.{i}" if path else str(i), value[i]))
    return found


def text_problem(text: str) -> str | None:
    """Why ``text`` is not text a line can keep and pass on, or None."""
    bad = _NOT_TEXT.search(text)
    if bad is None:
        return None
    point = ord(bad.group())
    if point >= 0xD800:
        return (
            f"U+{point:04X} is half of a UTF-16 surrogate pair without its other half "
            "(a character cut in two, such as an emoji): no Unicode text"
        )
    return f"U+{point:04X} is a control character, not text"


def clean_text(text: str) -> str:
    """``text`` with each lone surrogate as U+FFFD and each control character but tab, line
    feed and carriage return left out: for text that must be kept whatever it holds (a
    cancel's reason), where refusing the whole message would do more harm."""
    return _NOT_TEXT.sub(lambda m: "\ufffd" if ord(m.group()) >= 0xD800 else "", text)


def cleaned(doc: Any) -> Any:
    """``doc`` made wire JSON: text through :func:`clean_text`, NaN and Infinity as null,
    an integer no double holds as its text. For what a line sends, where a value that is no
    JSON must not cost the event (the hub would refuse the whole message)."""
    if isinstance(doc, str):
        return clean_text(doc)
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, int) and not isinstance(doc, bool) and abs(doc) > MAX_SAFE_INTEGER:
        return str(doc)
    if isinstance(doc, dict):
        return {clean_text(str(k)): cleaned(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [cleaned(v) for v in doc]
    return doc


def dumps_raw(doc: Any) -> bytes:
    """``doc`` as JSON bytes whatever it holds: a lone surrogate as its escape, NaN and
    Infinity as Python writes them. For keeping a refused order as it came."""
    try:
        return json.dumps(doc, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(doc).encode()
