"""What changed from one period to the next, and who or what drove it.

For each headline KPI (:class:`Kpi`) a :class:`Change`: the KPI in both periods, the
change (percentage points for a ratio, seconds for the lead time, per 1,000 orders for the
errors caught at pack) and its largest contributors, with a sentence in both languages
("OEE −6 pts (58%, was 64%): emb-1 availability −18 pts, 2 h 10 min held for thread
break").

**Attribution.** A line ratio is a sum over parts divided by a sum: availability =
Σ APT / Σ PBT over stations, performance = Σ PRI×PQ / Σ APT, quality = Σ GQ / Σ PQ,
operator efficiency = Σ earned / Σ APAT over operators, errors at pack = 1,000 × Σ errors /
orders packed over refusal codes. Part *i*, with weight w = its share of the denominator
and r its own ratio, contributes

    c_i = w_i′ (r_i′ − R) − w_i (r_i − R)          (′: this period; R: the line's before)

and Σ c_i is exactly the line's change (Σ w = 1 in both periods). A part that kept the
line's old ratio contributes nothing, whatever its weight; one that came in below it, or
grew while below it, pulls the line down. (The plain difference of shares, num_i / Σ den,
would blame a part for merely working more hours.)

OEE = A × P × Q = X × Q with X = Σ PRI×PQ / Σ PBT: each of X and Q is attributed as above
(c_i^X, c_i^Q), and station *i* contributes c_i^X × (Q + Q′)/2 + c_i^Q × (X + X′)/2,
which again adds up exactly (ΔXQ = ΔX·mean Q + ΔQ·mean X). Each station is then named by
its own factor that moved most in the same direction, with what explains it: the downtime
reason that grew (or shrank) most for availability, its time per unit against the standard
for performance, its commonest defect for quality.

First pass yield has no per-SKU denominator among the elements, so its contributors are
counted, not attributed: the SKUs and the defect reasons whose defect count moved most in
the direction of the change (``delta`` None, ``count_delta`` the count's change). OTD names
the late orders' counts (why each was late is in the report's list of late orders); the
lead time p50 has no contributors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from gateway.i18n import Text, listing, t
from gateway.numbers.analysis.saying import MINUS, duration, percent, signed, words
from gateway.numbers.kpis import line_elements
from gateway.numbers.model import Elements, StationElements, Words
from gateway.percentiles import percentile

__all__ = ["Change", "Contributor", "ContributorKind", "Kpi", "Unit", "drift"]

_CONFIG = ConfigDict(extra="forbid", frozen=True)
MAX_CONTRIBUTORS = 3
# Contributions smaller than this (in the change's unit) are not named.
_NEGLIGIBLE = 0.05


class Kpi(StrEnum):
    OEE = "oee"
    AVAILABILITY = "availability"
    PERFORMANCE = "performance"
    QUALITY = "quality"
    OTD = "otd"
    FPY = "fpy"
    OPERATOR_EFFICIENCY = "operator_efficiency"
    LEAD_TIME_P50 = "lead_time_p50"
    PACK_ERRORS = "pack_errors"


class Unit(StrEnum):
    POINTS = "pts"  # percentage points: 100 × the ratio's change
    SECONDS = "s"
    PER_1000 = "per_1000"  # per 1,000 orders packed


class ContributorKind(StrEnum):
    STATION = "station"
    OPERATOR = "operator"
    SKU = "sku"
    REASON = "reason"  # a defect's reason
    CODE = "code"  # a refusal's code at packing


class Contributor(BaseModel):
    model_config = _CONFIG

    kind: ContributorKind
    name: str
    delta: float | None  # its part of the change, in the change's unit; None: not attributed
    count: int | None = None  # defects this period (FPY's contributors)
    count_delta: int | None = None
    words: Words


class Change(BaseModel):
    model_config = _CONFIG

    kpi: Kpi
    unit: Unit
    current: float | None  # the KPI this period: a ratio, seconds or per 1,000
    previous: float | None
    delta: float | None  # in ``unit``; None when either period has no value
    contributors: list[Contributor]
    words: Words


Parts = Mapping[str, tuple[float, float]]  # part → (numerator, denominator)


def drift(current: Elements, previous: Elements) -> list[Change]:
    """Every headline KPI's change from ``previous`` to ``current``, in :class:`Kpi` order."""
    return [
        _oee(current, previous),
        _station_ratio(Kpi.AVAILABILITY, current, previous, lambda e: (e.apt_s, e.pbt_s)),
        _station_ratio(Kpi.PERFORMANCE, current, previous, lambda e: (e.pri_pq_s, e.apt_s)),
        _station_ratio(Kpi.QUALITY, current, previous, lambda e: (float(e.gq), float(e.pq))),
        _otd(current, previous),
        _fpy(current, previous),
        _efficiency(current, previous),
        _lead_time(current, previous),
        _pack_errors(current, previous),
    ]


# -- arithmetic ------------------------------------------------------------------------


def _ratio(parts: Parts) -> float | None:
    den = sum(d for _, d in parts.values())
    return sum(n for n, _ in parts.values()) / den if den else None


def _contributions(cur: Parts, prev: Parts) -> dict[str, float] | None:
    """c_i = w_i′ (r_i′ − R) − w_i (r_i − R) (the module docstring); None when either
    period's denominator is 0."""
    d1 = sum(d for _, d in cur.values())
    d0 = sum(d for _, d in prev.values())
    if not d1 or not d0:
        return None
    r0 = sum(n for n, _ in prev.values()) / d0
    out = {}
    for key in sorted(set(cur) | set(prev)):
        n1, e1 = cur.get(key, (0.0, 0.0))
        n0, e0 = prev.get(key, (0.0, 0.0))
        out[key] = (n1 - r0 * e1) / d1 - (n0 - r0 * e0) / d0
    return out


def _own(el: StationElements | None, kpi: Kpi) -> float | None:
    if el is None:
        return None
    num, den = {
        Kpi.AVAILABILITY: (el.apt_s, el.pbt_s),
        Kpi.PERFORMANCE: (el.pri_pq_s, el.apt_s),
        Kpi.QUALITY: (float(el.gq), float(el.pq)),
    }[kpi]
    return num / den if den else None


def _ranked(contributions: Mapping[str, float], delta: float) -> list[tuple[str, float]]:
    """The parts that moved the line the way it went, the largest first (both in the
    change's unit)."""
    if delta == 0:
        return []
    sign = 1.0 if delta > 0 else -1.0
    moved = [(k, c) for k, c in contributions.items() if sign * c >= _NEGLIGIBLE]
    moved.sort(key=lambda kc: (-sign * kc[1], kc[0]))
    return moved[:MAX_CONTRIBUTORS]


# -- words -----------------------------------------------------------------------------


def _name(kpi: Kpi) -> Text:
    """A station factor's name within a sentence ("emb-1 availability −18 pts")."""
    if kpi is Kpi.AVAILABILITY:
        return t("availability")
    if kpi is Kpi.PERFORMANCE:
        return t("performance")
    return t("quality")


def _pts(ratio_change: float) -> Text:
    return t("{change} pts", change=signed(100 * ratio_change))


def _signed_duration(seconds: float) -> Text:
    sign = "+" if seconds > 0 else MINUS if seconds < 0 else "±"
    return t("{sign}{amount}", sign=sign, amount=duration(abs(seconds)))


def _title(kpi: Kpi) -> Text:
    """The KPI's name at the head of a sentence."""
    titles = {
        Kpi.OEE: t("OEE"),
        Kpi.AVAILABILITY: t("Availability"),
        Kpi.PERFORMANCE: t("Performance"),
        Kpi.QUALITY: t("Quality"),
        Kpi.OTD: t("On-time delivery"),
        Kpi.FPY: t("First pass yield"),
        Kpi.OPERATOR_EFFICIENCY: t("Operator efficiency"),
        Kpi.LEAD_TIME_P50: t("Lead time p50"),
        Kpi.PACK_ERRORS: t("Errors caught at pack"),
    }
    return titles[kpi]


def _headline(kpi: Kpi, unit: Unit, now: float | None, before: float | None) -> Text:
    name = _title(kpi)
    if now is None and before is None:
        return t("{kpi}: nothing counted in either period", kpi=name)
    if before is None:
        return t("{kpi}: nothing to compare with in the previous period", kpi=name)
    if now is None:
        return t("{kpi}: nothing counted in this period", kpi=name)
    if unit is Unit.POINTS:
        return t(
            "{kpi} {change} ({now}, was {before})",
            kpi=name,
            change=_pts(now - before),
            now=percent(now),
            before=percent(before),
        )
    if unit is Unit.SECONDS:
        return t(
            "{kpi} {change} ({now}, was {before})",
            kpi=name,
            change=_signed_duration(now - before),
            now=duration(now),
            before=duration(before),
        )
    # Formatted apart: Babel's extractor stops at an f-string inside the call.
    now_text, before_text = f"{now:.1f}", f"{before:.1f}"
    return t(
        "{kpi} {change} per 1,000 orders ({now}, was {before})",
        kpi=name,
        change=signed(now - before),
        now=now_text,
        before=before_text,
    )


def _change(
    kpi: Kpi,
    unit: Unit,
    now: float | None,
    before: float | None,
    contributors: list[tuple[Contributor, Text]],
    detail: Text | None = None,
) -> Change:
    head = _headline(kpi, unit, now, before)
    if detail is not None:
        head = t("{headline}, {detail}", headline=head, detail=detail)
    if contributors:
        head = t(
            "{headline}: {contributors}",
            headline=head,
            contributors=listing([text for _, text in contributors], "; "),
        )
    delta = None
    if now is not None and before is not None:
        scale = 100.0 if unit is Unit.POINTS else 1.0
        delta = round(scale * (now - before), 3)
    return Change(
        kpi=kpi,
        unit=unit,
        current=None if now is None else round(now, 6),
        previous=None if before is None else round(before, 6),
        delta=delta,
        contributors=[c for c, _ in contributors],
        words=words(head),
    )


def _contributor(
    kind: ContributorKind, name: str, delta: float | None, text: Text, **counts: int
) -> tuple[Contributor, Text]:
    return (
        Contributor(
            kind=kind,
            name=name,
            delta=None if delta is None else round(delta, 3),
            words=words(text),
            **counts,
        ),
        text,
    )


# -- stations --------------------------------------------------------------------------


def _station_words(kpi: Kpi, station: str, cur: Elements, prev: Elements, direction: float) -> Text:
    """How a station moved in ``kpi`` (for OEE: its factor that moved most the way of
    ``direction``), with what explains it."""
    now_el, before_el = cur.stations.get(station), prev.stations.get(station)
    if kpi is Kpi.OEE:
        moves = {}
        for factor in (Kpi.AVAILABILITY, Kpi.PERFORMANCE, Kpi.QUALITY):
            a, b = _own(now_el, factor), _own(before_el, factor)
            if a is not None and b is not None:
                moves[factor] = a - b
        same = {f: d for f, d in moves.items() if d * direction > 0}
        pool = same or moves
        if not pool:
            return t("{station} (new in this period)", station=station)
        kpi = max(pool, key=lambda f: (abs(pool[f]), f.value))
    a, b = _own(now_el, kpi), _own(before_el, kpi)
    if a is None or b is None:
        return (
            t("{station} (new in this period)", station=station)
            if b is None
            else t("{station} (not working in this period)", station=station)
        )
    head = t("{station} {kpi} {change}", station=station, kpi=_name(kpi), change=_pts(a - b))
    detail = _explain(kpi, station, now_el, before_el, cur, a - b)
    return head if detail is None else t("{headline}, {detail}", headline=head, detail=detail)


def _explain(
    kpi: Kpi,
    station: str,
    now_el: StationElements | None,
    before_el: StationElements | None,
    cur: Elements,
    change: float,
) -> Text | None:
    if now_el is None:
        return None
    if kpi is Kpi.AVAILABILITY:
        before = before_el.downtime if before_el is not None else {}
        grew = {r: now_el.downtime.get(r, 0.0) - before.get(r, 0.0) for r in now_el.downtime}
        shrank = {r: before[r] - now_el.downtime.get(r, 0.0) for r in before}
        if change < 0 and grew:
            reason = max(grew, key=lambda r: (grew[r], r))
            if grew[reason] > 0:
                return t(
                    "{duration} held for {reason}",
                    duration=duration(now_el.downtime[reason]),
                    reason=reason,
                )
        if change > 0 and shrank:
            reason = max(shrank, key=lambda r: (shrank[r], r))
            if shrank[reason] > 0:
                return t(
                    "{duration} less held for {reason}",
                    duration=duration(shrank[reason]),
                    reason=reason,
                )
        return None
    if kpi is Kpi.PERFORMANCE:
        if not now_el.pq:
            return None
        return t(
            "{actual} a unit against {standard} standard",
            actual=duration(now_el.apt_s / now_el.pq),
            standard=duration(now_el.pri_pq_s / now_el.pq),
        )
    found = [d for d in cur.defects if d.station == station]
    if not found:
        return None
    by_reason: dict[str, int] = {}
    for d in found:
        by_reason[d.reason] = by_reason.get(d.reason, 0) + d.count
    reason = max(by_reason, key=lambda r: (by_reason[r], r))
    return t("{count} × {reason}", count=by_reason[reason], reason=reason)


def _parts(el: Elements, of: Callable[[StationElements], tuple[float, float]]) -> Parts:
    return {s: of(e) for s, e in el.stations.items()}


def _station_ratio(
    kpi: Kpi,
    cur: Elements,
    prev: Elements,
    of: Callable[[StationElements], tuple[float, float]],
) -> Change:
    now_parts, before_parts = _parts(cur, of), _parts(prev, of)
    now, before = _ratio(now_parts), _ratio(before_parts)
    found: list[tuple[Contributor, Text]] = []
    shares = _contributions(now_parts, before_parts)
    if shares is not None and now is not None and before is not None:
        points = {s: 100 * c for s, c in shares.items()}
        for station, c in _ranked(points, 100 * (now - before)):
            text = _station_words(kpi, station, cur, prev, now - before)
            found.append(_contributor(ContributorKind.STATION, station, c, text))
    return _change(kpi, Unit.POINTS, now, before, found)


def _oee(cur: Elements, prev: Elements) -> Change:
    def x(e: StationElements) -> tuple[float, float]:
        return (e.pri_pq_s, e.pbt_s)

    def q(e: StationElements) -> tuple[float, float]:
        return (float(e.gq), float(e.pq))

    now, before = _line_oee(cur), _line_oee(prev)
    found: list[tuple[Contributor, Text]] = []
    if now is not None and before is not None:
        cx = _contributions(_parts(cur, x), _parts(prev, x))
        cq = _contributions(_parts(cur, q), _parts(prev, q))
        x1, x0 = _ratio(_parts(cur, x)), _ratio(_parts(prev, x))
        q1, q0 = _ratio(_parts(cur, q)), _ratio(_parts(prev, q))
        if cx is not None and cq is not None and None not in (x1, x0, q1, q0):
            assert x1 is not None and x0 is not None and q1 is not None and q0 is not None
            mean_q, mean_x = (q1 + q0) / 2, (x1 + x0) / 2
            points = {s: 100 * (cx[s] * mean_q + cq.get(s, 0.0) * mean_x) for s in cx}
            for station, c in _ranked(points, 100 * (now - before)):
                text = _station_words(Kpi.OEE, station, cur, prev, now - before)
                found.append(_contributor(ContributorKind.STATION, station, c, text))
    return _change(Kpi.OEE, Unit.POINTS, now, before, found)


def _line_oee(el: Elements) -> float | None:
    """The line's OEE as gateway/numbers/kpis.py has it: A × P × Q of the summed elements,
    None unless all three are defined."""
    line = line_elements(el.stations)
    if not (line.pbt_s and line.apt_s and line.pq):
        return None
    return (line.apt_s / line.pbt_s) * (line.pri_pq_s / line.apt_s) * (line.gq / line.pq)


# -- orders, units, operators ------------------------------------------------------------


def _otd(cur: Elements, prev: Elements) -> Change:
    now = cur.orders_on_time / cur.orders_due if cur.orders_due else None
    before = prev.orders_on_time / prev.orders_due if prev.orders_due else None
    detail = None
    if now is not None and before is not None:
        detail = t(
            "{late} late of {due} due (was {late_before} of {due_before})",
            late=cur.orders_due - cur.orders_on_time,
            due=cur.orders_due,
            late_before=prev.orders_due - prev.orders_on_time,
            due_before=prev.orders_due,
        )
    return _change(Kpi.OTD, Unit.POINTS, now, before, [], detail)


def _defect_counts(el: Elements, key: Callable[[str | None, str], str | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in el.defects:
        k = key(d.sku, d.reason)
        if k is not None:
            out[k] = out.get(k, 0) + d.count
    return out


def _fpy(cur: Elements, prev: Elements) -> Change:
    now = cur.units_first_pass / cur.units_completed if cur.units_completed else None
    before = prev.units_first_pass / prev.units_completed if prev.units_completed else None
    found: list[tuple[Contributor, Text]] = []
    if now is not None and before is not None and now != before:
        # Fewer first-pass units: more defects, and the other way round.
        sign = 1 if now < before else -1
        for kind, key in (
            (ContributorKind.SKU, lambda sku, _r: sku),
            (ContributorKind.REASON, lambda _s, reason: reason),
        ):
            a, b = _defect_counts(cur, key), _defect_counts(prev, key)
            moved = sorted(
                ((k, a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)),
                key=lambda kd: (-sign * kd[1], kd[0]),
            )
            for name, d in [kd for kd in moved if sign * kd[1] > 0][:2]:
                text = (
                    t(
                        "{sku} {count} defects ({change})",
                        sku=name,
                        count=a.get(name, 0),
                        change=signed(d, 0),
                    )
                    if kind is ContributorKind.SKU
                    else t(
                        "{reason} {count} ({change})",
                        reason=name,
                        count=a.get(name, 0),
                        change=signed(d, 0),
                    )
                )
                found.append(
                    _contributor(kind, name, None, text, count=a.get(name, 0), count_delta=d)
                )
    return _change(Kpi.FPY, Unit.POINTS, now, before, found)


def _efficiency(cur: Elements, prev: Elements) -> Change:
    now_parts = {o: (e.earned_s, e.apat_s) for o, e in cur.operators.items()}
    before_parts = {o: (e.earned_s, e.apat_s) for o, e in prev.operators.items()}
    now, before = _ratio(now_parts), _ratio(before_parts)
    found: list[tuple[Contributor, Text]] = []
    shares = _contributions(now_parts, before_parts)
    if shares is not None and now is not None and before is not None:
        points = {o: 100 * c for o, c in shares.items()}
        for op, c in _ranked(points, 100 * (now - before)):
            a, b = (
                _ratio({op: now_parts.get(op, (0.0, 0.0))}),
                _ratio({op: before_parts.get(op, (0.0, 0.0))}),
            )
            if a is not None and b is not None:
                text = t(
                    "{operator} {change} ({now}, was {before})",
                    operator=op,
                    change=_pts(a - b),
                    now=percent(a),
                    before=percent(b),
                )
            elif a is not None:
                text = t("{operator} {now}, not signed in before", operator=op, now=percent(a))
            else:
                text = t("{operator} not signed in this period", operator=op)
            found.append(_contributor(ContributorKind.OPERATOR, op, c, text))
    return _change(Kpi.OPERATOR_EFFICIENCY, Unit.POINTS, now, before, found)


def _lead_time(cur: Elements, prev: Elements) -> Change:
    now = percentile(sorted(cur.lead_times_s), 50) if cur.lead_times_s else None
    before = percentile(sorted(prev.lead_times_s), 50) if prev.lead_times_s else None
    return _change(Kpi.LEAD_TIME_P50, Unit.SECONDS, now, before, [])


def _pack_errors(cur: Elements, prev: Elements) -> Change:
    now = 1000 * cur.pack_errors / cur.orders_packed if cur.orders_packed else None
    before = 1000 * prev.pack_errors / prev.orders_packed if prev.orders_packed else None
    found: list[tuple[Contributor, Text]] = []
    if now is not None and before is not None:
        codes = set(cur.pack_errors_by_code) | set(prev.pack_errors_by_code)
        shares = {
            c: 1000 * cur.pack_errors_by_code.get(c, 0) / cur.orders_packed
            - 1000 * prev.pack_errors_by_code.get(c, 0) / prev.orders_packed
            for c in codes
        }
        for code, c in _ranked(shares, now - before):
            text = t("{code} {change}", code=code, change=signed(c))
            found.append(_contributor(ContributorKind.CODE, code, c, text))
    return _change(Kpi.PACK_ERRORS, Unit.PER_1000, now, before, found)
