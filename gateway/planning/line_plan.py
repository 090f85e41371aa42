"""The line's plan as the gateway holds it, and the job that asks a worker to make one.

The gateway keeps a plan in compact form: per station, four integer arrays (task ids in
planned order, starts, ends, setups) rather than an object per task, so that holding the
plan of a promotion surge (7,000 tasks) costs the gateway's process a few hundred KiB.
The plan is made in the worker process (gateway/planning/line_solve.py) from the line's database,
and arrives here already compact and explained.

Times are seconds from ``made_at`` (line time).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.config.line import LineConfig
from gateway.planner.problem import Assignment, LateOrder, Plan

__all__ = [
    "LineJob",
    "LinePlan",
    "StationPlan",
    "clock_text",
    "compact",
    "hint_of",
    "local_text",
]


@dataclass(frozen=True, slots=True)
class StationPlan:
    """One station's planned tasks, in order."""

    tasks: array[int]
    starts: array[int]
    ends: array[int]
    setups: array[int]

    def __len__(self) -> int:
        return len(self.tasks)


@dataclass(frozen=True, slots=True)
class LinePlan:
    """A plan of the line: what each station does next, and every order's forecast."""

    made_at: datetime
    method: str
    stations: Mapping[str, StationPlan]
    completion: Mapping[str, int]  # order → its predicted completion
    late: tuple[LateOrder, ...]  # with their reasons
    waiting: Mapping[str, tuple[str, ...]]  # order → the materials it lacks (not planned)
    down: frozenset[str]
    reasons: tuple[str, ...]  # why it was made (the replan's triggers)
    solve_s: float
    planned: array[int] = field(default_factory=lambda: array("q"))  # sorted task ids
    received: float = 0.0  # time.monotonic() when the gateway got it

    @property
    def empty(self) -> bool:
        return not self.planned

    def is_planned(self, task_id: int) -> bool:
        i = bisect.bisect_left(self.planned, task_id)
        return i < len(self.planned) and self.planned[i] == task_id

    def at(self, offset: int) -> datetime:
        return self.made_at + timedelta(seconds=offset)

    def sequence(self, station: str) -> array[int]:
        found = self.stations.get(station)
        return found.tasks if found is not None else array("q")

    def assignments(self) -> Iterator[tuple[int, Assignment]]:
        for sid, sp in self.stations.items():
            for i, task_id in enumerate(sp.tasks):
                yield task_id, Assignment(sid, sp.starts[i], sp.ends[i], sp.setups[i])


@dataclass(frozen=True, slots=True)
class LineJob:
    """What the worker needs to plan the line: its config, its database, the instant."""

    config: LineConfig
    db_path: Path
    now: datetime
    previous: LinePlan | None = None  # its sequences' heads stay first; its order, the hint
    reasons: tuple[str, ...] = ()


def compact(
    plan: Plan,
    made_at: datetime,
    *,
    waiting: Mapping[str, tuple[str, ...]],
    down: frozenset[str],
    reasons: tuple[str, ...],
    solve_s: float,
) -> LinePlan:
    """``plan`` (task ids are store ids as text) in the gateway's compact form."""
    rows: dict[str, list[tuple[int, int, int, int]]] = {}
    for task_id, a in plan.assignments.items():
        rows.setdefault(a.station, []).append((a.start, int(task_id), a.end, a.setup))
    stations: dict[str, StationPlan] = {}
    for sid, items in rows.items():
        items.sort()
        stations[sid] = StationPlan(
            array("q", (t for _, t, _, _ in items)),
            array("q", (s for s, _, _, _ in items)),
            array("q", (e for _, _, e, _ in items)),
            array("q", (u for _, _, _, u in items)),
        )
    return LinePlan(
        made_at=made_at,
        method=plan.method,
        stations=stations,
        completion=dict(plan.completion),
        late=plan.late,
        waiting=dict(waiting),
        down=down,
        reasons=reasons,
        solve_s=solve_s,
        planned=array("q", sorted(int(t) for t in plan.assignments)),
    )


def hint_of(previous: LinePlan, now: datetime) -> Plan:
    """The previous plan as the next solve's hint, its times moved to ``now``."""
    delta = int((now - previous.made_at).total_seconds())
    return Plan(
        {
            str(t): Assignment(a.station, a.start - delta, a.end - delta, a.setup)
            for t, a in previous.assignments()
        },
        {},
    )


def clock_text(tz: ZoneInfo, now: datetime, offset: int) -> str:
    """A time in the plan (``offset`` seconds from ``now``) as the floor reads it."""
    return local_text(tz, now, now + timedelta(seconds=offset))


def local_text(tz: ZoneInfo, now: datetime, ts: datetime) -> str:
    """``ts`` in the line's local time as the floor reads it: "14:30" on the day of ``now``,
    "Fri 08:10" within six days of it, "Fri 4 Dec 08:10" further off (a ship-by weeks past
    would otherwise read as a day of this week)."""
    local = ts.astimezone(tz)
    days = abs((local.date() - now.astimezone(tz).date()).days)
    if days == 0:
        return local.strftime("%H:%M")
    if days < 7:
        return local.strftime("%a %H:%M")
    return f"{local:%a} {local.day} {local:%b %H:%M}"
