"""How the analysis says its amounts, in both languages: durations, percentage points,
shares; and a :class:`~gateway.numbers.model.Words` from messages said in a row."""

from __future__ import annotations

from gateway.i18n import Lang, Text, t
from gateway.numbers.model import Words

__all__ = ["duration", "percent", "signed", "words"]

# The minus of typography, as the issue writes it ("OEE −6 pts"): a hyphen reads as a dash.
MINUS = "\u2212"


def duration(seconds: float) -> Text:
    """``45 s``, ``40 min``, ``2 h``, ``2 h 10 min`` (to the minute from a minute on)."""
    s = max(0, round(seconds))
    if s < 60:
        return t("{s} s", s=s)
    minutes = round(s / 60)
    if minutes < 60:
        return t("{m} min", m=minutes)
    hours, minutes = divmod(minutes, 60)
    if not minutes:
        return t("{h} h", h=hours)
    return t("{h} h {m} min", h=hours, m=minutes)


def signed(value: float, digits: int = 1) -> str:
    """``+4``, ``−6``, ``−5.5``, ``±0``: a change, its sign always shown."""
    text = f"{abs(value):.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "0":
        return "±0"
    return ("+" if value > 0 else MINUS) + text


def percent(ratio: float) -> str:
    """A share as a whole percentage: ``87%``."""
    return f"{round(100 * ratio)}%"


def words(*parts: Text) -> Words:
    """Messages said one after another: a space between them in English, none in Chinese
    (its sentences end in a full-width stop)."""
    return Words(
        en=" ".join(p.render(Lang.EN) for p in parts),
        zh="".join(p.render(Lang.ZH) for p in parts),
    )
