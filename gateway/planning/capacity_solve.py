"""The capacity check in the planning worker: the line and the forecast as one problem,
planned, searched for overtime, planned again with it (gateway/planning/capacity.py says
what is answered and how).

Imports the solver: only the worker process (gateway/planning/worker_child.py) and the
benchmarks import this module.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from gateway.config.line import LineConfig
from gateway.i18n import t
from gateway.orderbook.context import LineContext
from gateway.planner.execution import PlanningError
from gateway.planner.explain import explain_plan
from gateway.planner.model import solve
from gateway.planner.problem import Plan, Problem
from gateway.planning.capacity import CapacityJob
from gateway.planning.capacity_answer import (
    CapacityAnswer,
    Cutoff,
    LateRow,
    NoAnswer,
    Outcome,
    Overtime,
    SearchEnd,
    Shortfall,
    StationLoad,
)
from gateway.planning.capacity_calendar import ShiftSpan, SpanKey, shift_spans, with_overtime
from gateway.planning.capacity_forecast import (
    Forecast,
    forecast_work,
    read_forecast,
    shortfalls,
    waiting_need,
)
from gateway.planning.capacity_overtime import SearchLimits, search_overtime
from gateway.planning.line_plan import clock_text
from gateway.planning.line_problem import down_stations, line_problem
from gateway.store.db import Store
from gateway.store.outbox import Outbox
from gateway.store.rows import OrderStatus

__all__ = ["answer_capacity"]

_DAY_S = 86400
# The calendar the check plans in: past the last ship-by by this many days (the overtime
# and the late orders need room after it), at most the config's own limit of 60.
_DAYS_AFTER = 7
_MAX_DAYS = 60


class _At:
    """The check's instant as the core's clock (lot expiry, 'today')."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


@dataclass(frozen=True, slots=True)
class _Carrier:
    order_id: str
    carrier: str | None

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        return cls(str(r["order_id"]), None if r["carrier"] is None else str(r["carrier"]))


@dataclass(frozen=True, slots=True)
class _Line:
    """The line and the forecast as read in one snapshot of the database."""

    problem: Problem
    forecast: Forecast
    waiting: tuple[str, ...]  # backlog orders not planned: waiting for material
    carriers: Mapping[str, str | None]  # every planned order's carrier
    names: Mapping[str, str]  # station id → its name
    spans: Mapping[str, list[ShiftSpan]]
    materials: tuple[Shortfall, ...]  # what the forecast lacks


def answer_capacity(job: CapacityJob, *, workers: int) -> CapacityAnswer | NoAnswer:
    """The answer to ``job`` (see gateway/planning/capacity.py)."""
    started = time.monotonic()
    read = _read(job, None)
    if isinstance(read, NoAnswer):
        return read
    try:
        first = _solve(job, read.problem, workers)
    except PlanningError:  # the work does not fit the calendar: the longest one then
        read = _read(job, _MAX_DAYS)
        if isinstance(read, NoAnswer):
            return read
        try:
            first = _solve(job, read.problem, workers)
        except PlanningError:
            return NoAnswer(
                forecast=False,
                why=t(
                    "The work does not fit in the {days} days of shifts the check plans in.",
                    days=_MAX_DAYS,
                ),
            )
    tz = job.config.line.tzinfo
    plan = _outcome(job, read, read.problem, first)
    overtime: list[Overtime] = []
    with_ot: Outcome | None = None
    replans = 0
    if not first.late:
        end = SearchEnd.NOT_NEEDED
    else:
        s = job.settings
        found = search_overtime(
            read.problem,
            read.spans,
            SearchLimits(
                step_s=s.step_min * 60,
                max_s=int(s.max_overtime_h * 3600),
                max_replans=s.max_replans,
                deadline=time.monotonic() + s.search_s,
            ),
        )
        end, replans = found.end, found.replans
        if found.extra:
            overtime = _overtime_rows(job, read.spans, found.extra)
            longer = with_overtime(read.problem, read.spans, found.extra)
            final = _solve(job, longer, workers)
            with_ot = _outcome(job, read, longer, final)
            if end is SearchEnd.ON_TIME and final.late:  # the rule's plan was; keep its word
                end = SearchEnd.PARTLY
    return CapacityAnswer(
        now=_local(job, job.now),
        timezone=str(tz),
        forecast_orders=read.forecast.total,
        forecast_units=read.forecast.units,
        refused=list(read.forecast.refused),
        backlog_orders=len(read.problem.orders) - len(read.forecast.orders),
        waiting=list(read.waiting),
        plan=plan,
        materials=list(read.materials),
        overtime=overtime,
        overtime_cap_min=int(job.settings.max_overtime_h * 60),
        with_overtime=with_ot,
        search=end,
        replans=replans,
        wall_s=round(time.monotonic() - started, 3),
    )


def _solve(job: CapacityJob, problem: Problem, workers: int) -> Plan:
    s = job.settings
    return solve(problem, time_limit_s=s.solve_s, workers=workers, patience_s=s.patience_s).plan


def _read(job: CapacityJob, days: int | None) -> _Line | NoAnswer:
    """Read the line and the forecast in one read transaction (whatever the gateway
    commits meanwhile), and make them one problem. ``days``: of the calendar (default:
    to a week past the last ship-by)."""
    config = job.config
    store = Store(job.db_path)
    store.open_readonly()
    try:
        core = LineContext(config, store, Outbox(store, config.gateway_id), _At(job.now))
        store.conn.execute("BEGIN")
        version = store.get_setting("catalog_version")
        if version is not None:
            for doc in store.texts("SELECT doc FROM catalogs WHERE version = ?", (version,)):
                core.catalog.use_json(doc)
        core.reload_ledger()
        forecast = read_forecast(core, job.forecast)
        if isinstance(forecast, NoAnswer):
            return forecast
        if days is None:
            days = _calendar_days(core, job.now, forecast)
        planning = _with_days(config, days)
        lined = LineContext(planning, store, core.outbox, _At(job.now))
        lined.reload_ledger()
        lp = line_problem(lined, job.now, down=down_stations(lined), previous=job.previous)
        tasks, orders = forecast_work(core, forecast.orders, job.now)
        materials = shortfalls(core, forecast.orders, waiting_need(core))
        carriers = {
            c.order_id: c.carrier for c in _carriers(core, [o.id for o in lp.problem.orders])
        }
        store.conn.execute("COMMIT")
    finally:
        store.close()
    carriers |= {o.order_id: o.carrier for o in forecast.orders}
    problem = Problem(
        lp.problem.stations, (*lp.problem.tasks, *tasks), (*lp.problem.orders, *orders)
    )
    return _Line(
        problem=problem,
        forecast=forecast,
        waiting=tuple(sorted(lp.waiting)),
        carriers=carriers,
        names={sid: st.name or sid for sid, st in config.stations.items()},
        spans=shift_spans(planning, job.now, days),
        materials=tuple(materials),
    )


def _with_days(config: LineConfig, days: int) -> LineConfig:
    return config.model_copy(
        update={"planner": config.planner.model_copy(update={"calendar_days": days})}
    )


def _calendar_days(core: LineContext, now: datetime, forecast: Forecast) -> int:
    """Days of shifts to plan in: to a week past the last ship-by, backlog or forecast."""
    last = max(
        [o.ship_by for o in forecast.orders]
        + [
            datetime.fromisoformat(ts)
            for ts in core.store.texts(
                "SELECT max(ship_by) FROM orders WHERE status IN (?, ?) HAVING count(*) > 0",
                (OrderStatus.RELEASED, OrderStatus.WAITING_MATERIAL),
            )
        ],
        default=now,
    )
    ahead = math.ceil(max(0.0, (last - now).total_seconds()) / _DAY_S) + _DAYS_AFTER
    return max(core.config.planner.calendar_days, min(_MAX_DAYS, ahead))


def _carriers(core: LineContext, order_ids: Collection[str]) -> list[_Carrier]:
    ids = sorted(order_ids)
    out: list[_Carrier] = []
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        out += core.store.fetch_all(
            _Carrier,
            "SELECT order_id, json_extract(doc, '$.carrier') AS carrier FROM orders "
            f"WHERE order_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
    return out


def _local(job: CapacityJob, ts: datetime) -> str:
    return ts.astimezone(job.config.line.tzinfo).isoformat(timespec="seconds")


def _at(job: CapacityJob, offset: int) -> str:
    return _local(job, job.now + timedelta(seconds=offset))


def _outcome(job: CapacityJob, line: _Line, problem: Problem, plan: Plan) -> Outcome:
    """The plan as answered: finish, late orders with reasons, cut-offs, station loads."""
    tz = job.config.line.tzinfo
    plan = explain_plan(problem, plan, at=lambda t_: clock_text(tz, job.now, t_))
    forecast = {o.order_id for o in line.forecast.orders}
    late = [
        LateRow(
            order_id=o.order_id,
            forecast=o.order_id in forecast,
            carrier=line.carriers.get(o.order_id),
            ship_by=_at(job, o.ship_by),
            predicted_completion=_at(job, o.completion),
            late_s=o.lateness,
            reasons=list(o.reasons),
        )
        for o in sorted(plan.late, key=lambda o: (o.ship_by, o.order_id))
    ]
    finish = max(plan.completion.values(), default=None)
    loads = _loads(line, problem, plan, finish or 0)
    return Outcome(
        method=plan.method,
        finish=None if finish is None else _at(job, finish),
        orders=len(plan.completion),
        late=late,
        cutoffs=_cutoffs(job, line, problem, plan),
        stations=loads,
        bottleneck=loads[0].station if loads and loads[0].work_s > 0 else None,
    )


def _cutoffs(job: CapacityJob, line: _Line, problem: Problem, plan: Plan) -> list[Cutoff]:
    """Per carrier and ship-by, as the board counts them: orders, and those in time."""
    groups: dict[tuple[int, str | None], list[str]] = {}
    for order in problem.orders:
        if order.id in plan.completion:
            groups.setdefault((order.ship_by, line.carriers.get(order.id)), []).append(order.id)
    out: list[Cutoff] = []
    for (ship_by, carrier), ids in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] or "")):
        out.append(
            Cutoff(
                carrier=carrier,
                ship_by=_at(job, ship_by),
                orders=len(ids),
                left=len(ids),
                in_time=sum(plan.completion[o] <= ship_by for o in ids),
            )
        )
    return out


def _loads(line: _Line, problem: Problem, plan: Plan, finish: int) -> list[StationLoad]:
    """Each station's planned work against its working time from now to ``finish``."""
    work: dict[str, int] = {}
    for a in plan.assignments.values():
        work[a.station] = work.get(a.station, 0) + max(0, a.end - max(a.start, 0))
    out: list[StationLoad] = []
    for station in problem.stations:
        open_s = sum(max(0, min(b, finish) - max(a, 0)) for a, b in station.working_windows(finish))
        busy = work.get(station.id, 0)
        ratio = busy / open_s if open_s > 0 else (1.0 if busy else 0.0)
        out.append(
            StationLoad(
                station=station.id,
                name=line.names.get(station.id, station.id),
                work_s=busy,
                open_s=open_s,
                utilization=round(ratio, 4),
            )
        )
    out.sort(key=lambda r: (-r.utilization, -r.work_s, r.station))
    return out


def _overtime_rows(
    job: CapacityJob, spans: Mapping[str, list[ShiftSpan]], extra: Mapping[SpanKey, int]
) -> list[Overtime]:
    by_key = {s.key: s for found in spans.values() for s in found}
    rows = []
    for key, seconds in extra.items():
        span = by_key[key]
        rows.append(
            Overtime(
                station=span.station,
                shift=span.shift,
                day=span.day,
                minutes=seconds // 60,
                start=_at(job, span.end),
                end=_at(job, span.end + seconds),
            )
        )
    rows.sort(key=lambda r: (r.start, r.station))
    return rows
