"""The line board's order flow: how many orders stand at each stage, and each carrier's
cut-offs with what is left and what the plan brings in on time.

"Today" is the line's local day (``[line] timezone``) of the instant asked about. Stages
are the ones reported with ``order.progress`` (gateway/orderbook/progress.py), kept in the
transaction of each change, so counting them reads no task.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Self

from pydantic import BaseModel, ConfigDict

from gateway.clock import iso
from gateway.orderbook.context import LineContext
from gateway.orderbook.progress import Stage, stages
from gateway.store.rows import OrderStatus

# Types only: the order book lies below planning (the layers in pyproject.toml); what it
# reads of a plan it reads by duck typing.
if TYPE_CHECKING:
    from gateway.planning.planner import LinePlanner


__all__ = ["Cutoff", "cutoffs", "flow"]

_OPEN = (OrderStatus.RELEASED, OrderStatus.WAITING_MATERIAL)


def _today(core: LineContext, now: datetime) -> tuple[str, str]:
    """The line's local day of ``now``, from midnight to midnight, as the store's text."""
    local = core.local(now)
    start = datetime.combine(local.date(), time(), local.tzinfo)
    end = datetime.combine(local.date() + timedelta(days=1), time(), local.tzinfo)
    return iso(start), iso(end)


def flow(core: LineContext, now: datetime) -> dict[Stage, int]:
    """Open orders per stage; for ``completed`` and ``cancelled``, the orders completed,
    or cancelled, in the line's local day of ``now``. Every stage is a key."""
    store = core.store
    out = dict.fromkeys(Stage, 0)
    for stage, count in store.conn.execute(
        "SELECT p.stage, count(*) FROM orders o JOIN order_progress p "
        "ON p.order_id = o.order_id WHERE o.status IN (?, ?) GROUP BY p.stage",
        _OPEN,
    ):
        out[Stage(stage)] += int(count)
    # An order the tracker could not report (a bug it logged) is counted all the same.
    unreported = store.texts(
        "SELECT o.order_id FROM orders o LEFT JOIN order_progress p "
        "ON p.order_id = o.order_id WHERE o.status IN (?, ?) AND p.order_id IS NULL",
        _OPEN,
    )
    for stage in stages(core, unreported).values():
        out[stage] += 1
    start, end = _today(core, now)
    out[Stage.COMPLETED] = store.count(
        "SELECT count(*) FROM orders WHERE completed_at >= ? AND completed_at < ? AND status = ?",
        (start, end, OrderStatus.COMPLETED),
    )
    out[Stage.CANCELLED] = store.count(
        "SELECT count(DISTINCT order_id) FROM order_stages WHERE stage = ? AND at >= ? AND at < ?",
        (Stage.CANCELLED, start, end),
    )
    return out


class Cutoff(BaseModel):
    """One carrier's cut-off (an order's ``ship_by``): its orders, those left to finish,
    and those finished or predicted to finish by then."""

    model_config = ConfigDict(frozen=True)

    carrier: str | None
    ship_by: str
    orders: int
    left: int  # not completed yet
    in_time: int | None  # completed by ship-by, or so predicted; None: no plan


@dataclass(frozen=True, slots=True)
class _Parcel:
    """An order as the cut-offs count it."""

    order_id: str
    ship_by: str
    completed_at: str | None
    carrier: str | None

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        carrier = r["carrier"]
        done = r["completed_at"]
        return cls(
            str(r["order_id"]),
            str(r["ship_by"]),
            None if done is None else str(done),
            None if carrier is None else str(carrier),
        )


def cutoffs(core: LineContext, planner: LinePlanner | None, now: datetime) -> list[Cutoff]:
    """Per carrier and ship-by, among open orders and those completed in the line's day of
    ``now`` (cancelled ones leave the count): how many, how many left, and how many are
    in time by the plan in force (a completed order by its completion, an open one by
    its predicted completion; one the plan does not know is not). Earliest cut-off first."""
    start, end = _today(core, now)
    columns = "order_id, ship_by, completed_at, json_extract(doc, '$.carrier') AS carrier"
    parcels = core.store.fetch_all(
        _Parcel,
        f"SELECT {columns} FROM orders WHERE status IN (?, ?) "
        f"UNION ALL SELECT {columns} FROM orders "
        "WHERE completed_at >= ? AND completed_at < ? AND status = ?",
        (*_OPEN, start, end, OrderStatus.COMPLETED),
    )
    plan = planner.replanner.current if planner is not None else None
    groups: dict[tuple[str, str | None], list[_Parcel]] = {}
    for p in parcels:
        groups.setdefault((p.ship_by, p.carrier), []).append(p)
    out: list[Cutoff] = []
    for (ship_by, carrier), members in sorted(
        groups.items(), key=lambda g: (g[0][0], g[0][1] or "")
    ):
        in_time: int | None = None
        if plan is not None:
            due = datetime.fromisoformat(ship_by)
            in_time = 0
            for p in members:
                offset = plan.completion.get(p.order_id)
                if p.completed_at is not None:
                    in_time += int(p.completed_at <= ship_by)  # texts in one form compare as times
                elif offset is not None:
                    in_time += int(plan.at(offset) <= due)
        out.append(
            Cutoff(
                carrier=carrier,
                ship_by=ship_by,
                orders=len(members),
                left=sum(p.completed_at is None for p in members),
                in_time=in_time,
            )
        )
    return out
