"""What the stations need from the warehouse, read from the plan in force; and whether an
open request must change for it (gateway/planning/picks.py applies it).

**The need.** Each task the plan puts within the horizon (planned start ≤ now + horizon,
not finished) needs its materials at its operation (:func:`gateway.orderbook.tasks.needs`)
at its station; a task in work needs them where it is in work, less what was scanned for
it already (that is at the station, held by the task: gateway/orderbook/picking.py). A
lot-tracked material is needed of the lots reserved for the task (first-expiry-first-out
at kitting), else of the lot that would be suggested to the operator.

**The request.** Per (station, material, lot), the station's stock (arrived, not consumed,
not held) covers the uses in the order of their planned starts; what it does not cover is
to be requested: its quantity, ``need_by`` the planned start of the first use not covered
less the lead, its orders those of the uses not covered.

**The tolerance.** An open request is revised when the quantity to request moved by more
than the larger of ``tolerance_abs`` and ``tolerance_rel`` × the station's whole need of
it within the horizon, or its need_by moved earlier by more than ``need_by_step_min``; it
is withdrawn when nothing is to be requested any more. Measured against the whole need,
not the request: a request made for the first two tasks past the station's stock would
otherwise be revised for each task the moving horizon adds. So on a steady line a request
lags the need by at most a tenth of the horizon's work (by default), and is revised about
that often; a replan that moves a task or two says nothing.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from gateway.config.picking import PickingSection
from gateway.orderbook import tasks
from gateway.orderbook.context import LineContext
from gateway.orderbook.picking import NO_LOT, PickKey, PickRequestRow
from gateway.planning.line_plan import LinePlan
from gateway.store.rows import TaskRow, TaskStatus

__all__ = [
    "Change",
    "Need",
    "Use",
    "Uses",
    "Wanted",
    "decide",
    "gather",
    "in_horizon",
    "keys_of",
    "settle",
    "task_uses",
    "wanted",
]

_EPS = 1e-9
_CHUNK = 100  # tasks read at a time
_SLICE_S = 0.005  # a slice's work at most (one task may take longer); then the loop runs
_IN_WORK = (TaskStatus.DISPATCHED, TaskStatus.RUNNING, TaskStatus.PAUSED)
_WAITING = frozenset({TaskStatus.READY.value, TaskStatus.BLOCKED.value})


@dataclass(frozen=True, slots=True)
class Use:
    """One task's use of one material (of one lot) at a station."""

    start: datetime  # the task's planned start (now, for one in work the plan does not know)
    qty: float
    order_id: str
    task_id: int


@dataclass(slots=True)
class Need:
    """The uses of one (station, material, lot) within the horizon."""

    key: PickKey
    uses: list[Use] = field(default_factory=list)

    @property
    def qty(self) -> float:
        return sum(u.qty for u in self.uses)


# Each task's uses, by task id: what a slice of the work adds up.
Uses = dict[int, list[tuple[PickKey, Use]]]


def in_horizon(plan: LinePlan, until: datetime) -> dict[int, tuple[str, datetime]]:
    """The tasks ``plan`` starts by ``until``: task id → (station, planned start). A
    station's tasks are in order of their starts, so each station's share is a bisection."""
    limit = (until - plan.made_at).total_seconds()
    out: dict[int, tuple[str, datetime]] = {}
    for station, sp in plan.stations.items():
        for i in range(bisect.bisect_right(sp.starts, limit)):
            out[sp.tasks[i]] = (station, plan.at(sp.starts[i]))
    return out


def _lots(core: LineContext, task: TaskRow, need: tasks.Need) -> list[tuple[str, float]]:
    """Of which lots ``need`` is taken: the task's reservations (first-expiry-first-out at
    kitting), else the lot that would be suggested, else none named."""
    if not need.lot_tracked:
        return [(NO_LOT, need.qty)]
    held = [
        (r.lot, r.qty)
        for r in tasks.reservations(core, task)
        if r.material == need.material and r.lot != NO_LOT
    ]
    if held and sum(q for _, q in held) >= need.qty - _EPS:
        out: list[tuple[str, float]] = []
        left = need.qty
        for lot, qty in held:
            take = min(qty, left)
            if take > _EPS:
                out.append((lot, take))
                left -= take
        return out
    suggested = tasks.suggested_lot(core, task, need.material)
    return [(suggested or NO_LOT, need.qty)]


def task_uses(
    core: LineContext, task: TaskRow, station: str, start: datetime
) -> list[tuple[PickKey, Use]]:
    """What ``task`` takes at ``station`` from ``start``; a task in work, less what was
    scanned for it."""
    scanned = {e.material for e in task.progress().lots} if task.status in _IN_WORK else set()
    out: list[tuple[PickKey, Use]] = []
    for need in tasks.needs(core, task):
        if need.material in scanned:
            continue
        for lot, qty in _lots(core, task, need):
            out.append(
                (
                    PickKey(station, need.material, lot),
                    Use(start, qty, task.order_id, task.task_id),
                )
            )
    return out


def _rows(core: LineContext, ids: Sequence[int]) -> list[TaskRow]:
    marks = ",".join("?" * len(ids))
    return core.store.fetch_all(TaskRow, f"SELECT * FROM tasks WHERE task_id IN ({marks})", ids)


def gather(
    core: LineContext, planned: Mapping[int, tuple[str, datetime]]
) -> Generator[None, None, Uses]:
    """The uses of the ``planned`` tasks that are not in work (nor finished), a slice per
    step: the caller lets the loop run between two (a surge's horizon holds a thousand
    tasks). Tasks in work are :func:`settle`'s, read in the transaction that decides."""
    ids = sorted(planned)
    out: Uses = {}
    began = time.perf_counter()
    for i in range(0, len(ids), _CHUNK):
        for task in _rows(core, ids[i : i + _CHUNK]):
            if task.status.finished or task.status in _IN_WORK:
                continue
            station, start = planned[task.task_id]
            out[task.task_id] = task_uses(core, task, station, start)
            # By time, not by count: one order's parcel may take a while to work out.
            if time.perf_counter() - began > _SLICE_S:
                yield
                began = time.perf_counter()
    return out


def settle(
    core: LineContext, planned: Mapping[int, tuple[str, datetime]], gathered: Uses, now: datetime
) -> dict[PickKey, Need]:
    """The need as of now, from what :func:`gather` found a moment ago: without the tasks
    that finished or went into work since, with every task in work at its station as it
    stands. Reads a few rows: call it in the transaction that acts on it."""
    ids = sorted(gathered)
    waiting: set[int] = set()  # still neither begun nor finished (nor gone: a revision)
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        marks = ",".join("?" * len(part))
        # The status is compared here, not in SQL: with it there, SQLite reads the tasks
        # by their status index (every open task of a surge) instead of by these ids.
        waiting.update(
            int(task_id)
            for task_id, status in core.store.conn.execute(
                f"SELECT task_id, status FROM tasks WHERE task_id IN ({marks})", part
            )
            if status in _WAITING
        )
    uses = {task_id: found for task_id, found in gathered.items() if task_id in waiting}
    for task in core.store.fetch_all(
        TaskRow,
        "SELECT * FROM tasks WHERE status IN (?, ?, ?) AND station IS NOT NULL",
        _IN_WORK,
    ):
        assert task.station is not None
        found = planned.get(task.task_id)
        start = found[1] if found is not None else now
        uses[task.task_id] = task_uses(core, task, task.station, min(start, now))
    out: dict[PickKey, Need] = {}
    for contributions in uses.values():
        for key, use in contributions:
            out.setdefault(key, Need(key)).uses.append(use)
    return out


@dataclass(frozen=True, slots=True)
class Wanted:
    """What an open request of a key should ask for now."""

    qty: float
    need_by: datetime
    orders: tuple[str, ...]


def wanted(need: Need | None, here: float, lead: timedelta) -> Wanted | None:
    """What to request of ``need`` with ``here`` at the station (see the module's
    docstring); None when the station has it all."""
    if need is None:
        return None
    cover = max(0.0, here)
    qty = 0.0
    first: datetime | None = None
    orders: set[str] = set()
    for use in sorted(need.uses, key=lambda u: (u.start, u.task_id)):
        if cover >= use.qty - _EPS:
            cover -= use.qty
            continue
        qty += use.qty - cover
        cover = 0.0
        first = use.start if first is None else first
        orders.add(use.order_id)
    if first is None or qty <= _EPS:
        return None
    return Wanted(qty, first - lead, tuple(sorted(orders)))


class Change(Enum):
    NONE = "none"
    REQUEST = "request"
    REVISE = "revise"
    WITHDRAW = "withdraw"


def decide(
    row: PickRequestRow | None, want: Wanted | None, whole: float, settings: PickingSection
) -> Change:
    """What becomes of the open request ``row`` (None: there is none) when ``want`` is
    what should be asked now, of a need of ``whole`` within the horizon."""
    if row is None:
        return Change.NONE if want is None else Change.REQUEST
    if want is None:
        return Change.WITHDRAW
    tolerance = max(settings.tolerance_abs, settings.tolerance_rel * max(whole, row.qty))
    if abs(want.qty - row.qty) > tolerance + _EPS:
        return Change.REVISE
    earlier = (datetime.fromisoformat(row.need_by) - want.need_by).total_seconds()
    if earlier > settings.need_by_step_min * 60.0:
        return Change.REVISE
    return Change.NONE


def keys_of(needs: Iterable[PickKey], rows: Iterable[PickRequestRow]) -> list[PickKey]:
    """Every key a decision is made for: those needed, and those with an open request."""
    return sorted(set(needs) | {r.key for r in rows})
