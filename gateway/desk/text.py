"""What a person types or a scanner sends, made fit to keep and to say back.

A reason (pause, fail, reprint) is free text that goes into the store and into events for
the hub, so it is cleaned: control and format characters, lone surrogates and line or
paragraph separators go (the hub's PostgreSQL ``jsonb`` refuses ``\\u0000``; a zero-width
space makes a reason that reads as nothing), spaces are collapsed, and a reason with no
visible character left is no reason. A code (a badge, a scan) is not cleaned but judged:
one with such a character in it was misread or mistyped, and is refused as such.
"""

from __future__ import annotations

import unicodedata

__all__ = ["clean", "unreadable"]

# Control (Cc), format (Cf: zero-width space, BOM, bidi overrides …), surrogate code points
# (Cs: what an unpaired "\ud800" escape in JSON decodes to) and line/paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Letters, digits, punctuation and symbols: what a reader actually sees. A mark alone (a
# combining accent), a space or a private-use code point is not enough.
_VISIBLE = frozenset("LNPS")


def clean(raw: str) -> str:
    """``raw`` as a person meant it: without control and format characters, lone
    surrogates and line or paragraph separators (those among them that are whitespace,
    a tab or a newline, count as a space), each run of spaces (any Unicode space) made one
    ordinary space, none at either end; "" when no visible character remains."""
    kept: list[str] = []
    for ch in raw:
        if ch.isspace():
            # Tab, newline, NBSP, the ideographic space …: a space, whatever its category.
            kept.append(" ")
        elif unicodedata.category(ch) not in _INVISIBLE:
            kept.append(ch)
    text = " ".join(word for word in "".join(kept).split(" ") if word)
    if not any(unicodedata.category(ch)[0] in _VISIBLE for ch in text):
        return ""
    return text


def unreadable(code: str, allowed: str = "") -> bool:
    """True when ``code`` has a character no badge or label carries: a control or format
    character, a lone surrogate, a line or paragraph separator; ``allowed`` excepted (a GS
    in a GS1 code is FNC1, not noise)."""
    return any(ch not in allowed and unicodedata.category(ch) in _INVISIBLE for ch in code)
