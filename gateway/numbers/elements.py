"""The elements of [start, end) from the store's history (see gateway/numbers/model.py).

How a station's time is classed, moment by moment (ISO 22400-2; docs/architecture.md):

- its state is EXECUTE → APT (actual production time);
- a fault or hold (HELD, ABORTED, SUSPENDED, a STOPPED machine …) while work is in hand,
  or HELD/ABORTED at any time → ADET, by its reason (the machine's stop reason, the
  pause's reason, else the state's name);
- a changeover (a task taken whose setup value differs from the station's last; from
  taking it to starting it) → AUST;
- other time with a task taken (fetching the unit, scanning lots; a machine waiting for
  its operator) → ADET "handling";
- otherwise, within the station's shifts and outside their breaks → ADOT (idle: no work).

PBT is their sum: the planned time, plus any time worked outside it (a station kept busy
through a break was in fact planned busy then), so that availability never exceeds 1.
Work "in hand" runs from taking a task to the end of its attempt. Counts (PQ, GQ …) and
standard times are those of the attempts that ended in the period.

Every element is additive over adjoining periods: [a, c) = [a, b) + [b, c).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from sqlite3 import Row
from typing import Self
from zoneinfo import ZoneInfo

from gateway.clock import iso
from gateway.numbers.model import (
    CostSum,
    DefectCount,
    Elements,
    HourOutput,
    LateOrder,
    MaterialUse,
    OperatorElements,
    StationElements,
    Wip,
)
from gateway.numbers.periods import Window, merge, planned_windows, shift_windows
from gateway.orderbook import tasks
from gateway.orderbook.context import LineContext
from gateway.orderbook.kpi import fpy_counts, otd_counts
from gateway.percentiles import percentile
from gateway.store.documents import SkuSnapshot
from gateway.store.rows import Disposition, Outcome, TaskRow, TaskStatus

__all__ = ["HANDLING", "PACK_ERROR_CODES", "StateSpan", "classify", "compute", "compute_parts"]

EXECUTE = "EXECUTE"
# Always a delay, with or without a task in hand: the unit is not available.
HARD_FAULTS = frozenset({"HELD", "HOLDING", "ABORTED", "ABORTING"})
# A delay only while work is in hand (a machine sitting STOPPED between jobs is normal).
SOFT_FAULTS = frozenset({"SUSPENDED", "SUSPENDING", "STOPPED", "STOPPING", "CLEARING"})
HANDLING = "handling"
# Refusals at a pack station that are a wrong or missing item stopped there (the errors
# the line made and packing caught), as opposed to a slip of the packer's own.
PACK_ERROR_CODES = frozenset(
    {
        "FOREIGN_UNIT",
        "UNIT_CLOSED",
        "UNIT_NOT_DONE",
        "UNITS_MISSING",
        "ORDER_INCOMPLETE",
        "MATERIALS_MISSING",
        "WRONG_MATERIAL",
    }
)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _s(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


@dataclass(frozen=True, slots=True)
class StateSpan:
    state: str
    reason: str | None
    since: datetime
    until: datetime | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["state"]),
            None if r["reason"] is None else str(r["reason"]),
            _t(str(r["since"])),
            None if r["until"] is None else _t(str(r["until"])),
        )


@dataclass(frozen=True, slots=True)
class _Attempt:
    task_id: int
    serial: str | None
    order_id: str
    station: str | None
    operator: str | None
    started: datetime | None
    ended: datetime
    dispatched: datetime | None
    outcome: Outcome
    standard_s: float
    setup_s: float
    sku: str | None
    op: str
    ready: datetime | None  # when its unit (or order, for packing) was ready for it

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["task_id"]),
            None if r["serial"] is None else str(r["serial"]),
            str(r["order_id"]),
            None if r["station"] is None else str(r["station"]),
            None if r["operator"] is None else str(r["operator"]),
            None if r["started_at"] is None else _t(str(r["started_at"])),
            _t(str(r["ended_at"])),
            None if r["dispatched_at"] is None else _t(str(r["dispatched_at"])),
            Outcome(r["outcome"]),
            float(r["standard_s"] or 0.0),
            float(r["setup_s"] or 0.0),
            None if r["sku"] is None else str(r["sku"]),
            str(r["op"]),
            None if r["ready"] is None else _t(str(r["ready"])),
        )


@dataclass(frozen=True, slots=True)
class _Running:
    """A task taken at a station and not ended yet (its attempt is not recorded)."""

    station: str
    operator: str | None
    dispatched: datetime | None
    started: datetime | None
    setup: bool

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["station"]),
            None if r["operator"] is None else str(r["operator"]),
            None if r["dispatched_at"] is None else _t(str(r["dispatched_at"])),
            None if r["started_at"] is None else _t(str(r["started_at"])),
            bool(r["changeover"]),
        )


@dataclass(frozen=True, slots=True)
class _Seen:
    """An attendance interval."""

    operator: str
    station: str
    since: datetime
    until: datetime | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["operator"]),
            str(r["station"]),
            _t(str(r["since"])),
            None if r["until"] is None else _t(str(r["until"])),
        )


def _clip(windows: Iterable[Window], s: datetime, e: datetime) -> list[Window]:
    return [(max(a, s), min(b, e)) for a, b in windows if b > s and a < e and min(b, e) > max(a, s)]


def _total(windows: Iterable[Window]) -> float:
    return sum(_s(a, b) for a, b in windows)


_ATTEMPTS_SQL = """
SELECT a.*, CASE
    WHEN a.serial IS NULL THEN (SELECT max(u.completed_at) FROM units u
                                WHERE u.order_id = a.order_id AND u.status = 'done')
    ELSE coalesce((SELECT max(b.ended_at) FROM attempts b WHERE b.serial = a.serial
                   AND b.id < a.id AND b.outcome = 'completed'),
                  (SELECT u.created_at FROM units u WHERE u.serial = a.serial))
    END AS ready
FROM attempts a WHERE {where}
"""


def _attempts(core: LineContext, where: str, params: tuple[object, ...]) -> list[_Attempt]:
    return core.store.fetch_all(_Attempt, _ATTEMPTS_SQL.format(where=where), params)


def _running(core: LineContext, e: str) -> list[_Running]:
    """Tasks taken before ``e`` and not ended, with whether each is a changeover (the rule
    tasks.record_attempt applies when its attempt ends)."""
    out = []
    for task in core.store.fetch_all(
        TaskRow,
        "SELECT * FROM tasks WHERE station IS NOT NULL AND status IN (?, ?, ?) "
        "AND dispatched_at < ?",
        (TaskStatus.DISPATCHED, TaskStatus.RUNNING, TaskStatus.PAUSED, e),
    ):
        assert task.station is not None
        setup = tasks.measure(core, task)[2] if task.started_at is not None else None
        out.append(
            _Running(
                task.station,
                task.operator,
                None if task.dispatched_at is None else _t(task.dispatched_at),
                None if task.started_at is None else _t(task.started_at),
                tasks.is_changeover(core, task, setup),
            )
        )
    return out


def classify(
    s: datetime,
    e: datetime,
    planned: list[Window],
    states: list[StateSpan],
    in_hand: list[Window],
    setups: list[Window],
) -> StationElements:
    """A station's time in [s, e) by class (the module's docstring): ``planned`` its
    shifts less breaks, ``states`` its state record in order, ``in_hand`` when it had a
    task taken, ``setups`` its changeovers."""
    points = {s, e}
    for a, b in planned + in_hand + setups:
        points.update((a, b))
    for st in states:
        points.add(st.since)
        if st.until is not None:
            points.add(st.until)
    cuts = sorted(p for p in points if s <= p <= e)
    out = StationElements()
    si = 0
    for a, b in itertools.pairwise(cuts):
        if b <= a:
            continue
        mid = a + (b - a) / 2
        while si + 1 < len(states) and states[si + 1].since <= mid:
            si += 1
        state: StateSpan | None = states[si] if states and states[si].since <= mid else None
        if state is not None and state.until is not None and state.until <= mid:
            state = None  # a gap in the record: no state known (idle)
        name = state.state if state is not None else "IDLE"
        working = any(x <= mid < y for x, y in in_hand)
        planned_now = any(x <= mid < y for x, y in planned)
        secs = _s(a, b)
        if name == EXECUTE:
            out.apt_s += secs
        elif name in HARD_FAULTS or (name in SOFT_FAULTS and working):
            if not (planned_now or working):
                continue
            reason = (state.reason if state is not None else None) or name.lower()
            out.adet_s += secs
            out.downtime[reason] = out.downtime.get(reason, 0.0) + secs
        elif any(x <= mid < y for x, y in setups):
            out.aust_s += secs
        elif working:
            out.adet_s += secs
            out.downtime[HANDLING] = out.downtime.get(HANDLING, 0.0) + secs
        elif planned_now:
            out.adot_s += secs
        else:
            continue
        out.pbt_s += secs
    return out


def _states(core: LineContext, station: str, s: str, e: str) -> list[StateSpan]:
    return core.store.fetch_all(
        StateSpan,
        "SELECT state, reason, since, until FROM station_states WHERE station = ? "
        "AND since < ? AND (until IS NULL OR until > ?) ORDER BY id",
        (station, e, s),
    )


def compute(core: LineContext, start: datetime, end: datetime) -> Elements:
    """The elements of [start, end) (UTC instants)."""
    parts = list(compute_parts(core, start, end))
    return parts[-1]


def compute_parts(core: LineContext, start: datetime, end: datetime) -> Iterator[Elements]:
    """:func:`compute` as a generator: it yields its unfinished result between its parts
    (each a few queries), so a caller on the event loop lets other work run between them;
    the last value yielded is the whole."""
    s, e = iso(start), iso(end)
    store = core.store
    out = Elements(start=s, end=e)
    tz = core.config.line.tzinfo

    ended = _attempts(core, "a.ended_at >= ? AND a.ended_at < ?", (s, e))
    # Attempts that overlap the period (their work time is clipped to it).
    overlapping = _attempts(
        core,
        "a.ended_at >= ? AND coalesce(a.dispatched_at, a.started_at, a.ended_at) < ?",
        (s, e),
    )
    running = _running(core, e)
    yield out

    # -- stations --------------------------------------------------------------------
    for station in sorted(core.config.stations):
        in_hand: list[Window] = []
        setups: list[Window] = []
        for a in overlapping:
            if a.station != station:
                continue
            taken = a.dispatched or a.started
            if taken is not None:
                in_hand.append((taken, a.ended))
            if a.setup_s > 0 and a.started is not None:
                setups.append(
                    (max(taken or a.started, a.started - timedelta(seconds=a.setup_s)), a.started)
                )
        for r in running:
            if r.station != station:
                continue
            taken = r.dispatched or r.started
            if taken is not None:
                in_hand.append((taken, end))
            if r.setup and r.dispatched is not None and r.started is not None:
                setups.append((r.dispatched, r.started))
        el = classify(
            start,
            end,
            planned_windows(core.config.shifts, station, tz, start, end),
            _states(core, station, s, e),
            merge(_clip(in_hand, start, end)),
            merge(_clip(setups, start, end)),
        )
        el.machine = core.config.stations[station].machine_id
        for a in ended:
            if a.station != station:
                continue
            el.pq += 1
            el.pri_pq_s += a.standard_s
            if a.outcome is Outcome.COMPLETED:
                el.tasks_completed += 1
            else:
                el.tasks_failed += 1
            if a.started is not None:
                el.busy_s += _s(a.started, a.ended)
            if a.ready is not None and a.dispatched is not None:
                el.queue_wait_s += max(0.0, _s(a.ready, a.dispatched))
                el.queued += 1
        out.stations[station] = el
        yield out

    # Quality by station: a failed attempt is bad; a completed one with a defect "used as
    # is" on record is not good either (a concession, not a good part).
    defects = _defects(core, s, e)
    for station, el in out.stations.items():
        used_as_is = sum(
            d.count
            for d in defects
            if d.station == station and d.disposition == Disposition.USE_AS_IS
        )
        el.gq = max(0, el.tasks_completed - used_as_is)
        el.sq = sum(
            d.count for d in defects if d.station == station and d.disposition == Disposition.SCRAP
        )
        el.rq = sum(
            d.count for d in defects if d.station == station and d.disposition == Disposition.REWORK
        )
    out.defects = defects
    out.units_scrapped = sum(d.count for d in defects if d.disposition == Disposition.SCRAP)
    yield out

    # -- operators ------------------------------------------------------------------
    _operators(core, out, start, end, overlapping, ended, running)
    yield out

    # -- orders and units ------------------------------------------------------------
    out.orders_on_time, out.orders_due = otd_counts(store, s, e)
    out.late = [
        LateOrder(order_id=str(r[0]), ship_by=str(r[1]), completed_at=r[2])
        for r in store.conn.execute(
            "SELECT order_id, ship_by, completed_at FROM orders WHERE ship_by >= ? "
            "AND ship_by < ? AND status != 'cancelled' "
            "AND (completed_at IS NULL OR completed_at > ship_by) ORDER BY ship_by, order_id",
            (s, e),
        )
    ]
    out.units_first_pass, out.units_completed = fpy_counts(store, s, e)
    done = list(
        store.conn.execute(
            "SELECT accepted_at, completed_at FROM orders WHERE completed_at >= ? "
            "AND completed_at < ?",
            (s, e),
        )
    )
    out.orders_completed = len(done)
    out.lead_times_s = sorted(round(_s(_t(a), _t(c)), 3) for a, c in done)
    out.checks = store.count("SELECT count(*) FROM quality WHERE ts >= ? AND ts < ?", (s, e))
    out.checks_passed = store.count(
        "SELECT count(*) FROM quality WHERE ts >= ? AND ts < ? AND passed", (s, e)
    )
    for hour_utc, units in store.conn.execute(
        "SELECT substr(completed_at, 1, 13), count(*) FROM units WHERE completed_at >= ? "
        "AND completed_at < ? GROUP BY 1",
        (s, e),
    ):
        key = _local_hour(str(hour_utc), tz)
        out.hourly.setdefault(key, HourOutput()).units += int(units)
    for hour_utc, orders in store.conn.execute(
        "SELECT substr(completed_at, 1, 13), count(*) FROM orders WHERE completed_at >= ? "
        "AND completed_at < ? GROUP BY 1",
        (s, e),
    ):
        key = _local_hour(str(hour_utc), tz)
        out.hourly.setdefault(key, HourOutput()).orders += int(orders)
    out.wip = _wip(core, end)
    yield out

    # -- packing errors ------------------------------------------------------------
    out.orders_packed = sum(1 for a in ended if a.serial is None and a.outcome is Outcome.COMPLETED)
    for code, n in store.conn.execute(
        "SELECT code, count(*) FROM refusals WHERE ts >= ? AND ts < ? AND at_pack GROUP BY code",
        (s, e),
    ):
        if code in PACK_ERROR_CODES:
            out.pack_errors_by_code[str(code)] = int(n)
    misweighed = store.count(
        "SELECT count(*) FROM quality q JOIN tasks t ON t.task_id = q.task_id "
        "WHERE q.ts >= ? AND q.ts < ? AND q.check_kind = 'weight' AND NOT q.passed "
        "AND t.serial IS NULL",
        (s, e),
    )
    if misweighed:
        out.pack_errors_by_code["WEIGHT_OFF"] = misweighed
    out.pack_errors = sum(out.pack_errors_by_code.values())

    # -- materials against the BOM ---------------------------------------------------
    _materials(core, out, s, e)
    yield out

    # -- cost (order.costed) ----------------------------------------------------------
    _costs(core, out, s, e)
    plan = store.conn.execute(
        "SELECT units, orders, source FROM period_plans WHERE period_start = ? "
        "AND period_end = ? LIMIT 1",
        (s, e),
    ).fetchone()
    if plan is not None:
        out.planned_units, out.planned_orders, out.plan_source = (
            int(plan[0]),
            int(plan[1]),
            str(plan[2]),
        )
    yield out


def _local_hour(utc_hour: str, tz: ZoneInfo) -> str:
    """'2026-11-26T02' (UTC) → '2026-11-26T10:00' local."""
    at = datetime.fromisoformat(utc_hour + ":00:00+00:00").astimezone(tz)
    return at.strftime("%Y-%m-%dT%H:00")


def _defects(core: LineContext, s: str, e: str) -> list[DefectCount]:
    rows = core.store.conn.execute(
        "SELECT d.reason, d.station, w.sku, d.operator, d.disposition, count(*) "
        "FROM defects d LEFT JOIN units u ON u.serial = d.serial "
        "LEFT JOIN work_orders w ON w.wo_id = u.wo_id "
        "WHERE d.ts >= ? AND d.ts < ? GROUP BY 1, 2, 3, 4, 5 ORDER BY 6 DESC",
        (s, e),
    )
    return [
        DefectCount(
            reason=str(r[0]),
            station=r[1],
            sku=r[2],
            operator=r[3],
            disposition=str(r[4]),
            count=int(r[5]),
        )
        for r in rows
    ]


def _operators(
    core: LineContext,
    out: Elements,
    start: datetime,
    end: datetime,
    overlapping: list[_Attempt],
    ended: list[_Attempt],
    running: list[_Running],
) -> None:
    s, e = iso(start), iso(end)
    tz = core.config.line.tzinfo
    seen = core.store.fetch_all(
        _Seen,
        "SELECT operator, station, since, until FROM attendance WHERE since < ? "
        "AND (until IS NULL OR until > ?)",
        (e, s),
    )
    for v in seen:
        until = v.until or end
        span = _clip([(v.since, until)], start, end)
        if not span:
            continue
        # Breaks are not attendance: the station's planned time within its shifts. A
        # station that no shift names is always open (nothing to take off).
        planned = planned_windows(core.config.shifts, v.station, tz, span[0][0], span[0][1])
        shifts_span = _shift_span(core, v.station, span[0][0], span[0][1])
        off = _total(shifts_span) - _total(planned)
        el = out.operators.setdefault(v.operator, OperatorElements())
        el.apat_s += _total(span) - max(0.0, off)
    for a in overlapping:
        if a.operator is None or a.started is None:
            continue
        work = _clip([(a.started, a.ended)], start, end)
        out.operators.setdefault(a.operator, OperatorElements()).apwt_s += _total(work)
    for r in running:
        if r.operator is None or r.started is None:
            continue
        work = _clip([(r.started, end)], start, end)
        out.operators.setdefault(r.operator, OperatorElements()).apwt_s += _total(work)
    for a in ended:
        if a.operator is None:
            continue
        el = out.operators.setdefault(a.operator, OperatorElements())
        if a.outcome is Outcome.COMPLETED:
            el.completed += 1
            el.earned_s += a.standard_s
        else:
            el.failed += 1


def _shift_span(core: LineContext, station: str, start: datetime, end: datetime) -> list[Window]:
    """The station's shifts within [start, end), breaks included."""
    return shift_windows(core.config.shifts, station, core.config.line.tzinfo, start, end)


def _wip(core: LineContext, end: datetime) -> Wip:
    e = iso(end)
    ages = [
        _s(_t(str(r[0])), end)
        for r in core.store.conn.execute(
            "SELECT o.accepted_at FROM orders o WHERE o.accepted_at < ? "
            "AND (o.completed_at IS NULL OR o.completed_at >= ?) "
            "AND NOT EXISTS (SELECT 1 FROM order_stages g WHERE g.order_id = o.order_id "
            "AND g.stage = 'cancelled' AND g.at < ?) "
            "AND NOT (o.status = 'cancelled' AND NOT EXISTS (SELECT 1 FROM order_stages g "
            "WHERE g.order_id = o.order_id AND g.stage = 'cancelled'))",
            (e, e, e),
        )
    ]
    if not ages:
        return Wip()
    return Wip(
        count=len(ages),
        age_p50_s=round(percentile(ages, 50), 1),
        age_max_s=round(max(ages), 1),
    )


def _materials(core: LineContext, out: Elements, s: str, e: str) -> None:
    """Used: what was consumed in the period. Standard: the BOM's quantity for each
    operation completed in it (a parcel: the pack lines of each unit that shipped in it)."""
    for material, qty in core.store.conn.execute(
        "SELECT material, sum(qty) FROM consumption WHERE ts >= ? AND ts < ? GROUP BY 1",
        (s, e),
    ):
        out.materials.setdefault(str(material), MaterialUse()).used += float(qty)
    # (work order, op) → how many times completed: two queries for the whole period, each
    # work order's SKU snapshot parsed once.
    done: dict[tuple[int, str], int] = {}
    for wo_id, op, n in core.store.conn.execute(
        "SELECT u.wo_id, a.op, count(*) FROM attempts a JOIN units u ON u.serial = a.serial "
        "WHERE a.ended_at >= ? AND a.ended_at < ? AND a.outcome = ? GROUP BY 1, 2",
        (s, e, Outcome.COMPLETED),
    ):
        done[(int(wo_id), str(op))] = done.get((int(wo_id), str(op)), 0) + int(n)
    for wo_id, op, n in core.store.conn.execute(
        "SELECT u.wo_id, a.op, count(*) FROM attempts a JOIN units u ON u.order_id = a.order_id "
        "WHERE a.ended_at >= ? AND a.ended_at < ? AND a.outcome = ? AND +a.serial IS NULL "
        "AND u.status = 'done' GROUP BY 1, 2",
        (s, e, Outcome.COMPLETED),
    ):
        done[(int(wo_id), str(op))] = done.get((int(wo_id), str(op)), 0) + int(n)
    snapshots: dict[int, SkuSnapshot] = {}
    for (wo_id, op), n in done.items():
        doc = snapshots.get(wo_id)
        if doc is None:
            text = core.store.texts("SELECT sku_doc FROM work_orders WHERE wo_id = ?", (wo_id,))
            if not text:
                continue
            doc = snapshots[wo_id] = SkuSnapshot.model_validate_json(text[0])
        for line in doc.bom:
            if line.op == op:
                out.materials.setdefault(line.material, MaterialUse()).standard += line.qty * n
    for use in out.materials.values():
        use.used = round(use.used, 6)
        use.standard = round(use.standard, 6)


def _costs(core: LineContext, out: Elements, s: str, e: str) -> None:
    for (doc_text,) in core.store.conn.execute(
        "SELECT doc FROM order_costs WHERE costed_at >= ? AND costed_at < ?", (s, e)
    ):
        doc = json.loads(str(doc_text))
        cost = doc.get("cost", {})
        out.currency = out.currency or cost.get("currency")
        by_sku: dict[str, dict[str, float]] = doc.get("by_sku") or {}
        if not by_sku:
            continue
        for sku, part in by_sku.items():
            c = out.costs.setdefault(sku, CostSum())
            c.orders += float(part.get("share", 1.0))
            c.units += int(part.get("units", 0))
            for name in ("labour", "machine", "materials", "scrap", "total"):
                setattr(c, name, getattr(c, name) + float(part.get(name, 0.0)))
