"""How a report writes its figures: percentages with one decimal, times in words (2 h 10
min), money with its currency, instants in the line's time zone. "–" for a figure that
has no value (a ratio whose denominator is 0)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.i18n import Lang, t

__all__ = ["NONE", "duration", "local", "money", "number", "pct", "points", "quantity"]

NONE = "–"


def pct(ratio: float | None) -> str:
    return NONE if ratio is None else f"{ratio * 100:.1f}%"


def points(now: float | None, before: float | None, lang: Lang) -> str:
    """The change of a ratio in percentage points: "+3.4 pts"."""
    if now is None or before is None:
        return NONE
    change = f"{(now - before) * 100:+.1f}"
    return t("{change} pts", change=change).render(lang)


def duration(seconds: float | None, lang: Lang) -> str:
    if seconds is None:
        return NONE
    s = round(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 60:
        return sign + t("{s} s", s=s).render(lang)
    minutes = round(s / 60)
    if minutes < 60:
        return sign + t("{m} min", m=minutes).render(lang)
    return sign + t("{h} h {m} min", h=minutes // 60, m=minutes % 60).render(lang)


def money(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return NONE
    return f"{amount:,.2f} {currency}" if currency else f"{amount:,.2f}"


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return NONE
    return f"{value:,.{digits}f}"


def quantity(value: float) -> str:
    """A material's quantity: as many decimals as it has, up to three."""
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def local(instant: str | None, tz: ZoneInfo, *, seconds: bool = False) -> str:
    if instant is None:
        return NONE
    at = datetime.fromisoformat(instant).astimezone(tz)
    return at.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
