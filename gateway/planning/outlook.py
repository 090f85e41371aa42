"""What the line's current plan expects of a period: the units and orders it completes in
[start, end) (output against plan, gateway/numbers/closing.py notes it as a period
begins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from sqlite3 import Row
from typing import Self

from gateway.orderbook.context import LineContext
from gateway.planning.planner import LinePlanner

__all__ = ["planned_output"]


@dataclass(frozen=True, slots=True)
class _UnitOf:
    task_id: int
    serial: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(int(r["task_id"]), None if r["serial"] is None else str(r["serial"]))


def planned_output(
    core: LineContext, planner: LinePlanner, start: datetime, end: datetime
) -> tuple[int, int, str] | None:
    """(units, orders, how the plan was made) the current plan completes in [start, end);
    None without a plan. A unit completes with its last planned task; an order with its
    predicted completion."""
    live = planner.replanner.current
    if live is None or live.empty:
        return None
    lo = (start - live.made_at).total_seconds()
    hi = (end - live.made_at).total_seconds()
    serial_of = {
        r.task_id: r.serial
        for r in core.store.fetch_all(
            _UnitOf,
            "SELECT task_id, serial FROM tasks WHERE status NOT IN ('done', 'cancelled') "
            "AND serial IS NOT NULL",
        )
    }
    unit_end: dict[str, int] = {}
    for sp in live.stations.values():
        for task_id, task_end in zip(sp.tasks, sp.ends, strict=True):
            serial = serial_of.get(task_id)
            if serial is not None:
                unit_end[serial] = max(unit_end.get(serial, task_end), task_end)
    units = sum(1 for e in unit_end.values() if lo <= e < hi)
    orders = sum(1 for e in live.completion.values() if lo <= e < hi)
    return units, orders, live.method
