"""The capacity check's answer in words, in English or Simplified Chinese: the summary a
line lead reads first (the command line and the page show the same sentences) and the
command line's tables (gateway/cli/capacity.py).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date, datetime

from gateway.i18n import Lang, Text, t
from gateway.planning.capacity_answer import (
    CapacityAnswer,
    LateRow,
    NoAnswer,
    Outcome,
    Overtime,
    SearchEnd,
)

__all__ = ["duration", "overtime_text", "report", "summary", "when", "why_none"]

_LATE_SHOWN = 50  # late orders a report lists; the JSON has them all


def _weekday(day: date) -> Text:
    return (t("Mon"), t("Tue"), t("Wed"), t("Thu"), t("Fri"), t("Sat"), t("Sun"))[day.weekday()]


def when(ts: str, now: str, lang: Lang) -> str:
    """A time of the answer as the floor reads it: "14:30" on the day of ``now``, with the
    weekday and date on another day."""
    at, base = datetime.fromisoformat(ts), datetime.fromisoformat(now)
    clock = at.strftime("%H:%M")
    if at.date() == base.date():
        return clock
    return t(
        "{weekday} {month}-{day} {time}",
        weekday=_weekday(at),
        month=at.month,
        day=at.day,
        time=clock,
    ).render(lang)


def _day(day: date, lang: Lang) -> str:
    return t(
        "{weekday} {month}-{day}",
        weekday=_weekday(day),
        month=day.month,
        day=day.day,
    ).render(lang)


def duration(seconds: int, lang: Lang) -> str:
    """ "45 s", "25 min", "2 h 30 min" (to the minute from ten minutes on)."""
    if seconds < 600:
        return t("{seconds} s", seconds=seconds).render(lang)
    hours, minutes = divmod((seconds + 30) // 60, 60)
    if not hours:
        return t("{minutes} min", minutes=minutes).render(lang)
    if not minutes:
        return t("{hours} h", hours=hours).render(lang)
    return t("{hours} h {minutes} min", hours=hours, minutes=minutes).render(lang)


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.0f}%"


def overtime_text(o: Overtime, now: str, lang: Lang) -> str:
    """One overtime: "emb-1: the late shift of Thu 11-26, 4 h longer (00:00 to 04:00)"."""
    return t(
        "{station}: the {shift} shift of {day}, {length} longer ({start} to {end})",
        station=o.station,
        shift=o.shift,
        day=_day(o.day, lang),
        length=duration(o.minutes * 60, lang),
        start=when(o.start, now, lang),
        end=when(o.end, now, lang),
    ).render(lang)


def why_none(answer: NoAnswer, lang: Lang) -> str:
    return answer.why.render(lang)


def _finish(outcome: Outcome, now: str, lang: Lang) -> Text:
    if outcome.finish is None:
        return t("Nothing to plan: the line has no open work.")
    return t("The line finishes the last order at {time}.", time=when(outcome.finish, now, lang))


def _late(outcome: Outcome) -> Text:
    if not outcome.late:
        return t("Every order makes its carrier's cut-off.")
    cutoffs = sum(1 for c in outcome.cutoffs if c.in_time is not None and c.in_time < c.orders)
    return t(
        "{late} of {orders} orders miss their carrier's cut-off ({cutoffs} cut-offs).",
        late=len(outcome.late),
        orders=outcome.orders,
        cutoffs=cutoffs,
    )


def _bottleneck(outcome: Outcome) -> Text | None:
    top = outcome.stations[0] if outcome.stations else None
    if outcome.bottleneck is None or top is None:
        return None
    return t(
        "Bottleneck: {station}, planned work fills {percent} of its working time until "
        "the finish (the highest load against available time).",
        station=outcome.bottleneck,
        percent=_percent(top.utilization),
    )


def summary(answer: CapacityAnswer, lang: Lang, *, each: bool = False) -> list[str]:
    """The answer in a few sentences, most important first; with ``each``, every overtime
    under the sentence that introduces them (a page lists them apart)."""
    now = answer.now
    out: list[Text] = [
        t(
            "Forecast: {taken} of {orders} orders taken ({units} units); {refused} refused "
            "by intake's rules.",
            taken=answer.forecast_orders - len(answer.refused),
            orders=answer.forecast_orders,
            units=answer.forecast_units,
            refused=len(answer.refused),
        ),
        t(
            "Backlog: {orders} open orders planned with it; {waiting} waiting for material "
            "(not planned).",
            orders=answer.backlog_orders,
            waiting=len(answer.waiting),
        ),
        _finish(answer.plan, now, lang),
        _late(answer.plan),
    ]
    neck = _bottleneck(answer.plan)
    if neck is not None:
        out.append(neck)
    if answer.materials:
        out.append(
            t(
                "{count} materials short for the forecast (the plan assumes they come).",
                count=len(answer.materials),
            )
        )
    return [x.render(lang) for x in out] + _overtime_summary(answer, lang, each)


def _overtime_summary(answer: CapacityAnswer, lang: Lang, each: bool) -> list[str]:
    end = answer.search
    if end is SearchEnd.NOT_NEEDED:
        return [t("No overtime needed.").render(lang)]
    if end is SearchEnd.CAP and not answer.overtime:
        return [t("The search for overtime reached its cap before it found any.").render(lang)]
    if not answer.overtime or answer.with_overtime is None:
        none = t(
            "No overtime brings the late orders in (at most {cap} more on one shift, ending "
            "before their cut-off).",
            cap=duration(answer.overtime_cap_min * 60, lang),
        )
        return [none.render(lang)]
    after = answer.with_overtime
    cap = duration(answer.overtime_cap_min * 60, lang)
    head = {
        SearchEnd.ON_TIME: t("Overtime that brings every order in on time:"),
        SearchEnd.PARTLY: t(
            "Overtime that brings orders in on time (not all of them; at most {cap} more on "
            "one shift):",
            cap=cap,
        ),
        SearchEnd.CAP: t("Overtime found before the search reached its cap (not all of it):"),
    }[end]
    total = sum(o.minutes for o in answer.overtime) * 60
    result = t(
        "With it: {hours} of overtime; the line finishes at {time}; {late} orders still late.",
        hours=duration(total, lang),
        time=when(after.finish, answer.now, lang) if after.finish else "-",
        late=len(after.late),
    )
    return [
        head.render(lang),
        *(f"  - {overtime_text(o, answer.now, lang)}" for o in answer.overtime if each),
        result.render(lang),
    ]


def report(answer: CapacityAnswer, lang: Lang) -> str:
    """The whole answer as text for a terminal: the summary, then tables."""
    now = answer.now
    lines = [*summary(answer, lang, each=True), ""]
    lines.append(t("Stations, from the highest load:").render(lang))
    lines += _table(
        [
            t("Station").render(lang),
            t("Work").render(lang),
            t("Working time").render(lang),
            t("Load").render(lang),
        ],
        [
            [s.station, duration(s.work_s, lang), duration(s.open_s, lang), _percent(s.utilization)]
            for s in answer.plan.stations
        ],
    )
    if answer.plan.late:
        heading = t("Orders that miss their cut-off:")
        lines += ["", *_late_table(answer.plan.late, now, lang, heading)]
    if answer.with_overtime is not None and answer.with_overtime.late:
        heading = t("Still late with the overtime:")
        lines += ["", *_late_table(answer.with_overtime.late, now, lang, heading)]
    if answer.materials:
        lines += ["", t("Materials short for the forecast:").render(lang)]
        lines += _table(
            [
                t("Material").render(lang),
                t("Needed").render(lang),
                t("Free today").render(lang),
                t("Short").render(lang),
                t("Orders short").render(lang),
            ],
            [
                [m.material, f"{m.need:g}", f"{m.available:g}", f"{m.short:g}", str(m.orders)]
                for m in answer.materials
            ],
        )
    if answer.refused:
        lines += ["", t("Forecast orders refused by intake's rules:").render(lang)]
        for r in answer.refused:
            for e in r.errors:
                lines.append(f"  #{r.index} {r.order_id or '?'}  {e.code}  {e.field}  {e.message}")
    if answer.waiting:
        lines += ["", t("Backlog orders waiting for material (not planned):").render(lang)]
        lines.append("  " + ", ".join(answer.waiting))
    return "\n".join(lines)


def _late_table(rows: Sequence[LateRow], now: str, lang: Lang, heading: Text) -> list[str]:
    out = [heading.render(lang)]
    out += _table(
        [
            t("Order").render(lang),
            t("Carrier").render(lang),
            t("Ship by").render(lang),
            t("Predicted").render(lang),
            t("Late by").render(lang),
            t("Why").render(lang),
        ],
        [
            [
                r.order_id + ("" if r.forecast else " *"),
                r.carrier or "-",
                when(r.ship_by, now, lang),
                when(r.predicted_completion, now, lang),
                duration(r.late_s, lang),
                "; ".join(r.reasons[:2]),
            ]
            for r in rows[:_LATE_SHOWN]
        ],
    )
    if len(rows) > _LATE_SHOWN:
        out.append(
            t("... and {more} more (--json lists them all)", more=len(rows) - _LATE_SHOWN).render(
                lang
            )
        )
    if any(not r.forecast for r in rows):
        out.append(t("* an order of the line's backlog").render(lang))
    return out


def _width(text: str) -> int:
    """Columns on a terminal: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c + " " * (widths[i] - _width(c)) for i, c in enumerate(cells)]
        return ("  " + "  ".join(padded)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
