"""``order.progress`` (contract 1.1): where each order stands, and when it will be done.

**Stages.** An order's stage is decided from its row and its tasks, first match wins:

- ``cancelled``: the order's status is cancelled (``in/cancel``), whatever its units do after;
- ``completed``: its status is completed: packed, weighed and labelled (``order.completed``);
- ``waiting_material``: its status is waiting_material: the kitting check could not reserve
  the materials of one of its open units (gateway/orderbook/workorders.py ``kit_order``,
  ``report_shortage``). Such units are not planned (the plan lists the order in
  ``LinePlan.waiting``). It wins over ``in_process``: a replacement for a scrapped unit that
  waits for material holds the whole order;
- ``packing``: its pack task (the order's one task without a serial) has begun;
- ``in_process``: one of its tasks has begun;
- ``queued``: accepted, every unit kitted, nothing begun.

A task *has begun* once it was started (``started_at``), or once an attempt of it ended:
a failed attempt to be redone (``attempt`` > 1) clears ``started_at`` but the work has begun.

**When.** The events of a transaction that name an order (``core.emit``) mark it; before the
transaction commits, the tracker (a :class:`~gateway.store.db.Writer`) decides the marked
orders' stages and emits ``order.progress`` in that same transaction for each whose stage
differs from the last one reported (table ``order_progress``), so a rolled-back action
reports nothing and a committed one always has its report. A new stock snapshot marks the
orders waiting for material (kitting them emits nothing of their own). Each new plan is
compared with what was last reported of every open order: an order is reported again when
its predicted completion moved by more than ``[hub] progress_step_min`` (15 minutes by
default), appeared or vanished, its ``at_risk`` changed, or the causes its reasons name
changed. A reason's cause is its kind and subject ("bottleneck: dtg-1", "material:
INK-DTG-CMYK", "shift: early"), not the times and durations every plan restates
(gateway/planner/explain.py): a late order is not reported again at each replan for its
queue being a minute shorter.

**Forecast.** From the plan in force (``LinePlan.completion``): ``at_risk`` when the
predicted completion is after ship-by, with the plan's reasons (``LinePlan.late``), else no
reason. An order the plan does not know (waiting for material, or newer than the plan) has
no prediction (null) and is not at risk. A completed order's prediction is its completion.

This module does not import gateway/orderbook/context.py: the context builds the tracker.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, Self

from pydantic import TypeAdapter

from gateway.clock import iso
from gateway.store.bulk import BulkInserts
from gateway.store.db import Store
from gateway.store.outbox import Outbox
from gateway.store.rows import OrderStatus, TaskStatus, UnitStatus

# Types only: the order book lies below planning (the layers in pyproject.toml); what it
# reads of a plan it reads by duck typing.
if TYPE_CHECKING:
    from gateway.planning.line_plan import LinePlan
    from gateway.planning.replanning import Replanner


__all__ = [
    "PROGRESS",
    "Forecast",
    "HasStore",
    "ProgressTracker",
    "Stage",
    "StageAt",
    "causes",
    "forecast_of",
    "history",
    "order_forecast",
    "stage_of",
    "stages",
]

logger = logging.getLogger(__name__)

PROGRESS = "order.progress"
_ACCEPTED = "order.accepted"


class Stage(StrEnum):
    """Where an order stands (see the module docstring for how each is decided)."""

    WAITING_MATERIAL = "waiting_material"
    QUEUED = "queued"
    IN_PROCESS = "in_process"
    PACKING = "packing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def open(self) -> bool:
        return self not in (Stage.COMPLETED, Stage.CANCELLED)


class HasStore(Protocol):
    """What reading stages needs of the line's context."""

    @property
    def store(self) -> Store: ...


class Core(HasStore, Protocol):
    """What the tracker needs of the line's context (gateway/orderbook/context.py)."""

    @property
    def outbox(self) -> Outbox: ...

    @property
    def bulk(self) -> BulkInserts: ...

    def emit(self, type_: str, data: dict[str, Any], order_id: str | None = None) -> int: ...

    def now_iso(self) -> str: ...


# -- stages ----------------------------------------------------------------------------------

_CHUNK = 500  # ids per IN (...) list
_TURN = 100  # open orders compared with a new plan per transaction (a few ms)
_OPEN_ORDERS = (OrderStatus.RELEASED, OrderStatus.WAITING_MATERIAL)
_BEGUN = "(started_at IS NOT NULL OR attempt > 1)"
_REASONS: TypeAdapter[tuple[str, ...]] = TypeAdapter(tuple[str, ...])
_CAUSE = re.compile(r"[a-z_]+: [^\s(;,]+")


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _marks(ids: Sequence[str]) -> str:
    return ",".join("?" * len(ids))


@dataclass(frozen=True, slots=True)
class _Known:
    """An order as the tracker reads it: its row, and what was last reported of it."""

    order_id: str
    status: OrderStatus
    ship_by: str
    units: int
    accepted_at: str
    completed_at: str | None
    stage: Stage | None  # None: never reported
    predicted: str | None
    at_risk: bool
    reasons_doc: str  # JSON, read only when it matters (see reasons)

    @property
    def reasons(self) -> tuple[str, ...]:
        return _REASONS.validate_json(self.reasons_doc)

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        stage, reasons = r["stage"], r["reasons"]
        return cls(
            str(r["order_id"]),
            OrderStatus(r["status"]),
            str(r["ship_by"]),
            int(r["units"]),
            str(r["accepted_at"]),
            None if r["completed_at"] is None else str(r["completed_at"]),
            None if stage is None else Stage(stage),
            None if r["predicted"] is None else str(r["predicted"]),
            bool(r["at_risk"]),
            "[]" if reasons is None else str(reasons),
        )


_KNOWN = (
    "SELECT o.order_id, o.status, o.ship_by, o.units, o.accepted_at, o.completed_at, "
    "p.stage, p.predicted, p.at_risk, p.reasons "
    "FROM orders o LEFT JOIN order_progress p ON p.order_id = o.order_id "
)


def _known(store: Store, order_ids: Collection[str]) -> list[_Known]:
    ids = sorted(order_ids)
    out: list[_Known] = []
    for chunk in _chunks(ids):
        out += store.fetch_all(_Known, f"{_KNOWN} WHERE o.order_id IN ({_marks(chunk)})", chunk)
    return out


@dataclass(frozen=True, slots=True)
class _Begun:
    """Whether any task of an order has begun, and its pack task."""

    order_id: str
    begun: bool
    packing: bool

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        return cls(str(r["order_id"]), bool(r["begun"]), bool(r["packing"]))


def _begun(store: Store, order_ids: Sequence[str]) -> dict[str, _Begun]:
    out: dict[str, _Begun] = {}
    for chunk in _chunks(order_ids):
        for row in store.fetch_all(
            _Begun,
            f"SELECT order_id, max({_BEGUN}) AS begun, "
            f"max(serial IS NULL AND status != ? AND {_BEGUN}) AS packing "
            f"FROM tasks WHERE order_id IN ({_marks(chunk)}) GROUP BY order_id",
            (TaskStatus.CANCELLED, *chunk),
        ):
            out[row.order_id] = row
    return out


def _decide(status: OrderStatus, begun: _Begun | None) -> Stage:
    if status is OrderStatus.CANCELLED:
        return Stage.CANCELLED
    if status is OrderStatus.COMPLETED:
        return Stage.COMPLETED
    if status is OrderStatus.WAITING_MATERIAL:
        return Stage.WAITING_MATERIAL
    if begun is not None and begun.packing:
        return Stage.PACKING
    if begun is not None and begun.begun:
        return Stage.IN_PROCESS
    return Stage.QUEUED


def _stages_of(
    store: Store, orders: Sequence[_Known], fresh: Collection[str] = ()
) -> dict[str, Stage]:
    """The stage of each order; one of ``fresh`` (accepted in this transaction) has only
    the tasks it was just given, none begun (a revision is refused once work has begun),
    so its tasks are not read: intake pays nothing for them."""
    released = [
        o.order_id for o in orders if o.status is OrderStatus.RELEASED and o.order_id not in fresh
    ]
    begun = _begun(store, released) if released else {}
    return {o.order_id: _decide(o.status, begun.get(o.order_id)) for o in orders}


def stages(core: HasStore, order_ids: Collection[str]) -> dict[str, Stage]:
    """The stage of each of ``order_ids`` the line knows (unknown ids are left out)."""
    return _stages_of(core.store, _known(core.store, order_ids))


def stage_of(core: HasStore, order_id: str) -> Stage | None:
    """The order's stage; None for an order the line does not know."""
    return stages(core, [order_id]).get(order_id)


@dataclass(frozen=True, slots=True)
class StageAt:
    """A stage an order reached, and when (the line's instant, UTC)."""

    stage: Stage
    at: str

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        return cls(Stage(r["stage"]), str(r["at"]))


def history(core: HasStore, order_id: str) -> list[StageAt]:
    """The stages the order reached, oldest first, as reported with ``order.progress``
    (an order accepted before linegate reported stages has only those reached since)."""
    return core.store.fetch_all(
        StageAt,
        "SELECT stage, at FROM order_stages WHERE order_id = ? ORDER BY id",
        (order_id,),
    )


# -- forecasts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forecast:
    """An order's predicted completion against its ship-by."""

    predicted: datetime | None = None  # None: the plan does not know the order
    at_risk: bool = False
    reasons: tuple[str, ...] = ()


# A late order the plan gave no reason for (how late is in its forecast).
_LATE = "late: predicted to complete after its ship-by"


def forecast_of(plan: LinePlan | None, order_id: str, ship_by: datetime) -> Forecast:
    """What ``plan`` predicts for an open order: at risk when its predicted completion is
    after ``ship_by``, with the plan's reasons."""
    if plan is None:
        return Forecast()
    offset = plan.completion.get(order_id)
    if offset is None:
        return Forecast()
    predicted = plan.at(offset)
    if predicted <= ship_by:
        return Forecast(predicted)
    late = next((o for o in plan.late if o.order_id == order_id), None)
    reasons = tuple(late.reasons) if late is not None and late.reasons else ()
    return Forecast(predicted, True, reasons or (_LATE,))


def causes(reasons: Sequence[str]) -> frozenset[str]:
    """What ``reasons`` blame, without their times and durations: each reason's kind and
    subject ("bottleneck: dtg-1 (queued 40 min)" blames "bottleneck: dtg-1"), or the
    whole text of a reason without that form."""
    out: set[str] = set()
    for reason in reasons:
        found = _CAUSE.match(reason)
        out.add(found.group(0) if found is not None else reason)
    return frozenset(out)


def order_forecast(
    plan: LinePlan | None, order_id: str, stage: Stage, ship_by: str, completed_at: str | None
) -> Forecast:
    """The forecast reported for an order at ``stage`` (``ship_by`` and ``completed_at`` as
    the store has them): a completed order's prediction is its completion, a cancelled
    one has none, an open one is :func:`forecast_of`."""
    if stage is Stage.COMPLETED:
        return Forecast(None if completed_at is None else datetime.fromisoformat(completed_at))
    if stage is Stage.CANCELLED:
        return Forecast()
    return forecast_of(plan, order_id, datetime.fromisoformat(ship_by))


def _forecast(order: _Known, stage: Stage, plan: LinePlan | None) -> Forecast:
    return order_forecast(plan, order.order_id, stage, order.ship_by, order.completed_at)


# -- what is reported ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Current:
    """A task being worked on (started, not finished)."""

    order_id: str
    serial: str | None
    op: str
    station: str | None

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        serial, station = r["serial"], r["station"]
        return cls(
            str(r["order_id"]),
            None if serial is None else str(serial),
            str(r["op"]),
            None if station is None else str(station),
        )


@dataclass(frozen=True, slots=True)
class _Done:
    order_id: str
    units: int

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        return cls(str(r["order_id"]), int(r["units"]))


def _work(
    store: Store, order_ids: Sequence[str]
) -> tuple[dict[str, int], dict[str, list[_Current]]]:
    """Units done, and the tasks being worked on (running or paused), per order."""
    done: dict[str, int] = {}
    current: dict[str, list[_Current]] = {}
    for chunk in _chunks(order_ids):
        marks = _marks(chunk)
        for d in store.fetch_all(
            _Done,
            f"SELECT order_id, count(*) AS units FROM units WHERE order_id IN ({marks}) "
            "AND status = ? GROUP BY order_id",
            (*chunk, UnitStatus.DONE),
        ):
            done[d.order_id] = d.units
        for c in store.fetch_all(
            _Current,
            f"SELECT order_id, serial, op, station FROM tasks WHERE order_id IN ({marks}) "
            "AND status IN (?, ?) ORDER BY task_id",
            (*chunk, TaskStatus.RUNNING, TaskStatus.PAUSED),
        ):
            current.setdefault(c.order_id, []).append(c)
    return done, current


@dataclass(frozen=True, slots=True)
class _Report:
    order: _Known
    stage: Stage
    forecast: Forecast

    def data(self, units_done: int, current: Sequence[_Current]) -> dict[str, Any]:
        """The event's data: the contract's fields."""
        predicted = self.forecast.predicted
        return {
            "stage": self.stage.value,
            "units_total": self.order.units,
            "units_done": units_done,
            "current": [{"serial": c.serial, "op": c.op, "station": c.station} for c in current],
            "predicted_completion": None if predicted is None else iso(predicted),
            "ship_by": self.order.ship_by,
            "at_risk": self.forecast.at_risk,
            "reasons": list(self.forecast.reasons),
        }


class ProgressTracker:
    """Decides and emits ``order.progress`` (see the module docstring). Built by the line's
    context, which tells it of every event naming an order (:meth:`touch`) and of new stock
    (:meth:`stock_changed`); :meth:`follow` ties it to the planner's plans."""

    def __init__(self, core: Core, step_min: float) -> None:
        self._core = core
        self._step_s = step_min * 60.0
        self._txn = -1  # the transaction the marked orders belong to
        self._orders: set[str] = set()
        self._fresh: set[str] = set()  # of those, accepted in the transaction
        self._plan: Callable[[], LinePlan | None] = lambda: None
        self._comparing: asyncio.Task[None] | None = None  # a new plan's, in turns
        core.store.add_writer(self)

    def follow(self, replanner: Replanner[LinePlan]) -> None:
        """Read forecasts from ``replanner``'s plan in force, and compare every new one with
        what was last reported."""
        self._plan = lambda: replanner.current
        replanner.on_adopt(self.plan_adopted)

    # -- marking ---------------------------------------------------------------------------

    def touch(self, type_: str, order_id: str) -> None:
        """An event of ``type_`` about ``order_id`` in the current transaction (on the hot
        path of intake and of every operator action: a set add, nothing more)."""
        if type_ != PROGRESS:
            self._mark(order_id)
            if type_ == _ACCEPTED:
                self._fresh.add(order_id)

    def stock_changed(self) -> None:
        """A new stock snapshot in the current transaction: the orders waiting for material
        may be kitted by it, which emits nothing of their own."""
        store = self._core.store
        if not store.in_transaction:
            return  # the ledger loaded at start-up, or by a planning worker: nothing changes
        for order_id in store.texts(
            "SELECT order_id FROM orders WHERE status = ?", (OrderStatus.WAITING_MATERIAL,)
        ):
            self._mark(order_id)

    def _mark(self, order_id: str) -> None:
        txn = self._core.store.transaction_id
        if txn != self._txn:  # marks of a transaction that ended, either way, are void
            self._txn = txn
            self._orders = set()
            self._fresh = set()
        self._orders.add(order_id)

    def _give_back(self, txn: int, orders: set[str]) -> None:
        """The savepoint (or transaction) around a flush rolled back: its orders are
        marked again, to be decided at the commit."""
        if txn == self._txn:
            self._orders |= orders

    # -- the store's writer ----------------------------------------------------------------

    def flush(self) -> None:
        """Report the marked orders whose stage changed, into the current transaction."""
        store = self._core.store
        if self._txn != store.transaction_id or not self._orders:
            return
        orders, self._orders = self._orders, set()
        store.undo(functools.partial(self._give_back, self._txn, orders))
        # The units and tasks of orders accepted in this transaction are read.
        self._core.bulk.flush()
        try:
            with store.savepoint():
                known = _known(store, orders)
                emitted = self._report(known, self._plan(), decide=True, fresh=self._fresh)
        except sqlite3.OperationalError:
            raise  # the store itself failed: so does the transaction
        except Exception:
            # A bug here must not undo an operator's action: it commits unreported (the
            # savepoint took back what was half done), and the order's next event reports
            # the stage it is at then.
            logger.exception("order.progress of %d orders could not be decided", len(orders))
            return
        if emitted:
            self._core.outbox.flush()  # it wrote its rows before this writer's turn

    def committed(self) -> None:
        self._orders = set()
        self._fresh = set()

    # -- plans -----------------------------------------------------------------------------

    def plan_adopted(self, plan: LinePlan) -> None:
        """A new plan is in force: report the open orders whose forecast moved.

        In the running gateway, a few orders per transaction with the event loop free
        in between: a surge's first plan moves thousands of forecasts, and the stations'
        actions must not wait behind them. A newer plan takes over from an older one's
        comparison. Outside an event loop (a command, a test), all at once."""
        if self._comparing is not None:
            self._comparing.cancel()
            self._comparing = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._compare(plan, self._open_orders())
            return
        self._comparing = loop.create_task(self._compare_in_turns(plan), name="order.progress")

    def _open_orders(self) -> list[str]:
        return self._core.store.texts(
            "SELECT order_id FROM orders WHERE status IN (?, ?) ORDER BY ship_by, order_id",
            _OPEN_ORDERS,
        )

    def _compare(self, plan: LinePlan, order_ids: Sequence[str]) -> int:
        with self._core.store.transaction():
            open_orders = [
                o for o in _known(self._core.store, order_ids) if o.status in _OPEN_ORDERS
            ]
            return self._report(open_orders, plan, decide=False)

    async def _compare_in_turns(self, plan: LinePlan) -> None:
        try:
            emitted = 0
            order_ids = self._open_orders()
            for i in range(0, len(order_ids), _TURN):
                emitted += self._compare(plan, order_ids[i : i + _TURN])
                await asyncio.sleep(0)
            if emitted:
                logger.debug("a new plan moved the forecast of %d orders", emitted)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next plan compares again
            logger.exception("comparing a new plan's forecasts failed")

    # -- deciding --------------------------------------------------------------------------

    def _moved(self, order: _Known, forecast: Forecast) -> bool:
        if order.at_risk != forecast.at_risk:
            return True
        reported = order.reasons if order.reasons_doc != "[]" else ()
        if causes(reported) != causes(forecast.reasons):
            return True
        before, now = order.predicted, forecast.predicted
        if before is None or now is None:
            return (before is None) != (now is None)
        return abs((now - datetime.fromisoformat(before)).total_seconds()) > self._step_s

    def _report(
        self,
        orders: Sequence[_Known],
        plan: LinePlan | None,
        *,
        decide: bool,
        fresh: Collection[str] = (),
    ) -> int:
        """Emit ``order.progress`` for each of ``orders`` whose stage is not the one last
        reported, or whose forecast moved; returns how many. With ``decide`` the stages
        are read from the tables, else the last reported are taken (a new plan changes
        forecasts, not stages). ``fresh``: orders accepted in this transaction."""
        core = self._core
        store = core.store
        at = core.now_iso()
        undecided = orders if decide else [o for o in orders if o.stage is None]
        decided = _stages_of(store, undecided, fresh)
        due: list[_Report] = []
        for order in orders:
            stage = decided.get(order.order_id, order.stage)
            assert stage is not None  # decided when none was reported
            forecast = _forecast(order, stage, plan)
            if stage is not order.stage or self._moved(order, forecast):
                due.append(_Report(order, stage, forecast))
        if not due:
            return 0
        # An order accepted in this transaction has nothing done and nothing in work.
        done, current = _work(
            store, [r.order.order_id for r in due if r.order.order_id not in fresh]
        )
        rows: list[tuple[Any, ...]] = []
        reached: list[tuple[str, str, str]] = []
        for r in due:
            order_id = r.order.order_id
            core.emit(PROGRESS, r.data(done.get(order_id, 0), current.get(order_id, ())), order_id)
            predicted = r.forecast.predicted
            rows.append(
                (
                    order_id,
                    r.stage,
                    None if predicted is None else iso(predicted),
                    int(r.forecast.at_risk),
                    json.dumps(list(r.forecast.reasons), ensure_ascii=False),
                )
            )
            if r.stage is not r.order.stage:
                reached.append((order_id, r.stage, at))
        conn = store.conn
        conn.executemany(
            "INSERT INTO order_progress (order_id, stage, predicted, at_risk, reasons) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(order_id) DO UPDATE SET "
            "stage = excluded.stage, predicted = excluded.predicted, "
            "at_risk = excluded.at_risk, reasons = excluded.reasons",
            rows,
        )
        if reached:
            conn.executemany(
                "INSERT INTO order_stages (order_id, stage, at) VALUES (?, ?, ?)", reached
            )
        return len(due)
