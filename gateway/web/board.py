"""The line board's data (``/board``): one typed snapshot of the whole line, computed once and
shared by every board open on it (a laptop, a TV on the wall read from five metres).

:meth:`BoardData.snapshot` reads the store, the floor and the planner's current plan at an
instant; :meth:`BoardData.latest` hands every caller the same snapshot, computed again only
when something changed (the outbox's seq, a sign-in, a device, :meth:`BoardData.touch`),
at most once per interval, and at least every :data:`MAX_AGE_S` (ages and elapsed times
move with the clock).

Each station tile has one andon state (:class:`AndonState`), decided by the first rule that
holds, in this order (a line lead needs the worst thing first):

1. ``fault`` (red): the station is stopped by something broken. Its machine, connected,
   reports a PackML fault state (HOLDING, HELD, ABORTING, ABORTED), or STOPPED/STOPPING
   with a task in work; or a device of the station spent its restart budget (FAILED); or a
   major or critical alarm is raised on the station (a machine fault, a device offline, a
   printer out of paper: an alarm's source ``station/device`` names its station).
2. ``held`` (amber): the station's task is paused (by the operator, a line lead, the
   operator signing out, or the gateway for a machine fault that has cleared since), or
   it waits for a line lead's override (a weight out of tolerance: weigh again or override).
3. ``setup`` (blue): a changeover before the task: the station's task is handed to it, not
   started, and the plan puts a setup before it (ink profile, thread colour, fixture).
   PackML states carry no changeover (that is a unit *mode*, which the machines' drivers do
   not read), so the machine cannot say so here.
4. ``running`` (green): a task in progress: started, or handed to the station with its
   operator signed in (fetching the unit, scanning materials).
5. ``idle`` (slate, grey-blue): an operator signed in, no task, and work waiting in the
   station's queue (between two tasks: a long idle is the operator's to explain).
6. ``starved`` (amber): an operator signed in and nothing waiting for the station: capacity
   lost, the trouble is upstream (or there are no orders).
7. ``offline`` (grey): nobody signed in and no task in work: the station is not staffed. A
   device reconnecting is not offline (its station works by hand meanwhile): the tile's
   ``devices`` shows it, and it becomes a fault once its restart budget is spent.

Each state has an English and a Chinese label: colour alone is not enough.

The rest of the board: open alarms worst first, with their age; the orders the current plan
predicts late, with its reasons, latest first; OTD and FPY of the line's local day so far
(gateway/orderbook/kpi.py's definitions); units and orders done per local hour, against what
the plan completes in the hours left; each station's next ``gantt_hours`` of the plan; open
orders by stage and each carrier's cut-offs (gateway/orderbook/flow.py); the station
constraining output in the shift so far (gateway/web/board_bottleneck.py).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from drivers.base import DriverState
from drivers.opcua_machine.packml import FAULT_STATES as PACKML_FAULT_STATES
from gateway.clock import iso
from gateway.config.calendar import WEEKDAYS
from gateway.config.line import LineConfig, StationConfig
from gateway.desk.service import StationService
from gateway.floor.floor import Floor
from gateway.orderbook.alarms import active_alarms
from gateway.orderbook.context import LineContext
from gateway.orderbook.flow import cutoffs as carrier_cutoffs
from gateway.orderbook.flow import flow as order_flow
from gateway.orderbook.kpi import fpy_counts, otd_counts
from gateway.orderbook.picking import StationPicks, picks_by_station
from gateway.planner.scenarios import PACK_PER_EXTRA_UNIT_S
from gateway.planning.line_plan import LinePlan
from gateway.planning.planner import LinePlanner
from gateway.store.rows import (
    OPEN_TASKS,
    OrderStatus,
    Row,
    SessionRow,
    Severity,
    TaskRow,
    TaskStatus,
)
from gateway.web.board_bottleneck import BoardBottleneck, BottleneckTile

__all__ = [
    "MAX_AGE_S",
    "AlarmTile",
    "AndonColor",
    "AndonState",
    "AtRiskOrder",
    "Board",
    "BoardData",
    "DeviceTile",
    "GanttRow",
    "GanttTask",
    "HourOutput",
    "MachineTile",
    "OperatorRef",
    "PlanInfo",
    "Ratio",
    "StationTile",
]

# The longest a shared snapshot is handed out while nothing seems to change: ages of
# alarms and elapsed times move with the clock.
MAX_AGE_S = 5.0
# A stopped machine is a fault only in the middle of a job (many sit STOPPED between jobs,
# gateway/floor/machines.py).
_STOPPED = frozenset({"STOPPED", "STOPPING"})
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.MAJOR: 1, Severity.WARNING: 2}
_STOPS_STATION = frozenset({Severity.MAJOR, Severity.CRITICAL})
_HOUR = timedelta(hours=1)
_SQL_CHUNK = 500  # ids per IN (...) list
_TASK_STATUS = {s.value: s for s in TaskStatus}


class AndonState(StrEnum):
    """A station's state on the board; see the module docstring for the precedence."""

    FAULT = "fault"
    HELD = "held"
    SETUP = "setup"
    RUNNING = "running"
    IDLE = "idle"
    STARVED = "starved"
    OFFLINE = "offline"


class AndonColor(StrEnum):
    """The andon colours: red stopped by a fault, amber needs attention (held, or no work
    coming), blue changeover, green running, slate (grey-blue) between two tasks, grey not
    staffed."""

    RED = "red"
    AMBER = "amber"
    BLUE = "blue"
    GREEN = "green"
    SLATE = "slate"
    GREY = "grey"


@dataclass(frozen=True, slots=True)
class _Look:
    label: str
    label_zh: str
    color: AndonColor


_LOOKS: Mapping[AndonState, _Look] = {
    AndonState.FAULT: _Look("Fault", "故障", AndonColor.RED),
    AndonState.HELD: _Look("Held", "暂停", AndonColor.AMBER),
    AndonState.SETUP: _Look("Setup", "换型", AndonColor.BLUE),
    AndonState.RUNNING: _Look("Running", "运行", AndonColor.GREEN),
    AndonState.IDLE: _Look("Idle", "空闲", AndonColor.SLATE),
    AndonState.STARVED: _Look("No work", "无任务", AndonColor.AMBER),
    AndonState.OFFLINE: _Look("Offline", "离线", AndonColor.GREY),
}
# What a page paints them with (the colour names stay the contract).
COLOR_HEX: Mapping[AndonColor, str] = {
    AndonColor.RED: "#d32f2f",
    AndonColor.AMBER: "#ffb300",
    AndonColor.BLUE: "#1e88e5",
    AndonColor.GREEN: "#43a047",
    AndonColor.SLATE: "#78909c",
    AndonColor.GREY: "#616161",
}


# -- the snapshot ---------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class OperatorRef(_Model):
    badge: str
    name: str


class DeviceTile(_Model):
    device: str  # its name at the station ("scanner", "machine" …)
    kind: str
    state: str  # the supervisor's: stopped, connecting, ready, degraded, failed
    ok: bool  # ready


class MachineTile(_Model):
    machine: str  # station/device, as the line knows it
    state: str | None  # PackML name: the machine's own while connected, else synthesised
    connected: bool  # while connected, ``state`` is the machine's own
    fault: str | None  # the machine's stop reason
    job_id: str | None  # the job of the station's task on the machine, else its last
    job_done: bool  # the machine reported the task's job finished
    good: int | None  # the machine's own counters
    bad: int | None


class StationTile(_Model):
    station: str
    name: str
    state: AndonState
    label: str
    label_zh: str
    color: AndonColor
    color_hex: str
    reason: str | None  # why it is held or in fault, or not staffed
    operator: OperatorRef | None
    task_id: int | None
    task_status: TaskStatus | None
    order_id: str | None
    serial: str | None  # None for a pack task
    op: str | None
    task_started_at: datetime | None
    elapsed_s: float | None  # since the task started, pauses included
    standard_s: float | None  # the operation's standard time (the planner's duration)
    setup_s: int | None  # the plan's changeover before this task
    queue_len: int  # ready tasks of its capabilities (shared with stations like it)
    machine: MachineTile | None
    devices: list[DeviceTile]
    devices_ok: bool
    open_alarms: int


class AtRiskOrder(_Model):
    order_id: str
    ship_by: datetime
    predicted_completion: datetime
    late_s: int
    reasons: list[str]


class HourOutput(_Model):
    """One local hour of the day: units done in it, and what the plan completes in it."""

    hour: datetime  # the hour's first instant
    label: str  # its local clock time, "07:00"
    done: int  # units completed in it
    planned: int  # open units the current plan completes in it (from now on)
    orders_done: int  # orders completed (packed, label confirmed) in it
    orders_planned: int  # open orders the current plan completes in it (from now on)


class Ratio(_Model):
    numerator: int
    denominator: int
    value: float | None  # numerator / denominator; None when nothing counts yet


class GanttTask(_Model):
    task_id: int
    order_id: str
    serial: str | None
    op: str
    in_work: bool  # handed to the station (dispatched, running or paused)
    start: datetime
    end: datetime
    setup_s: int
    late: bool  # its order is predicted late


class GanttRow(_Model):
    station: str
    name: str
    tasks: list[GanttTask]


class AlarmTile(_Model):
    alarm_id: str
    kind: str
    severity: Severity
    station: str | None  # the station its source belongs to
    source: str
    message: str
    message_zh: str | None
    raised_at: datetime
    age_s: float
    acked_by: str | None
    acked_at: datetime | None


class PlanInfo(_Model):
    made_at: datetime
    method: str
    source: str  # what orders the queues: "plan", or the rule and why


class Board(_Model):
    """Everything the board shows, as of ``as_of``, reflecting the events up to ``seq``."""

    as_of: datetime
    seq: int
    line: str
    timezone: str
    day: date  # the line's local date of ``as_of``: "today" of the KPIs and the hours
    stations: list[StationTile]
    at_risk: list[AtRiskOrder]
    output_by_hour: list[HourOutput]
    otd_today: Ratio
    fpy_today: Ratio
    gantt_hours: float
    gantt: list[GanttRow]
    alarms: list[AlarmTile]
    plan: PlanInfo | None
    # gateway/orderbook/flow.py's: open orders by stage (with those completed and cancelled
    # today), and per carrier cut-off the orders left and those in time by the plan.
    flow: dict[str, int] = Field(default_factory=dict)
    cutoffs: list[dict[str, Any]] = Field(default_factory=list)
    # The station constraining output in the shift so far (gateway/web/board_bottleneck.py).
    bottleneck: BottleneckTile | None = None
    # Per station, what the warehouse was asked to bring and what arrived
    # (gateway/orderbook/picking.py).
    picks: list[StationPicks] = Field(default_factory=list)


# -- rows of the queries here ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ready:
    """``SELECT capability, count(*) AS n`` of ready tasks."""

    capability: str
    n: int

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(str(r["capability"]), int(r["n"]))


@dataclass(frozen=True, slots=True)
class _Done:
    """``SELECT <key> AS key, completed_at`` of units or orders."""

    key: str
    completed_at: str

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(str(r["key"]), str(r["completed_at"]))


@dataclass(frozen=True, slots=True)
class _TaskBrief:
    """``SELECT task_id, order_id, serial, op`` of tasks: what a plan's task shows."""

    task_id: int
    order_id: str
    serial: str | None
    op: str

    @classmethod
    def from_row(cls, r: Row) -> Self:
        serial = r["serial"]
        return cls(
            int(r["task_id"]),
            str(r["order_id"]),
            None if serial is None else str(serial),
            str(r["op"]),
        )


@dataclass(frozen=True, slots=True)
class _Moved:
    """``SELECT task_id, status`` of tasks."""

    task_id: int
    status: TaskStatus

    @classmethod
    def from_row(cls, r: Row) -> Self:
        # A dict, not TaskStatus(...): an enum's call costs microseconds, and a plan has
        # thousands of tasks.
        return cls(int(r["task_id"]), _TASK_STATUS[r["status"]])


@dataclass(frozen=True, slots=True)
class _RaisedAlarm:
    """An alarm as :func:`active_alarms` lists it (``message_zh`` once the rows have it)."""

    alarm_id: str
    kind: str
    source: str
    severity: Severity
    message: str
    message_zh: str | None
    raised_at: str
    acked_at: str | None
    acked_by: str | None

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Self:
        zh = d.get("message_zh")
        return cls(
            str(d["alarm_id"]),
            str(d["kind"]),
            str(d["source"]),
            Severity(d["severity"]),
            str(d["message"]),
            zh if isinstance(zh, str) and zh else None,
            str(d["raised_at"]),
            None if d.get("acked_at") is None else str(d["acked_at"]),
            None if d.get("acked_by") is None else str(d["acked_by"]),
        )


@dataclass(frozen=True, slots=True)
class _Day:
    """The line's local day of an instant, and its hours as instants."""

    day: date
    start: datetime
    end: datetime

    @property
    def hours(self) -> int:
        """23, 24 or 25 (a daylight-saving change)."""
        return round((self.end - self.start) / _HOUR)

    def hour_of(self, ts: datetime) -> int:
        return math.floor((ts - self.start) / _HOUR)


@dataclass(frozen=True, slots=True)
class _PlanIndex:
    """What the board needs of a plan's tasks, read once per plan: each task's order, unit
    and operation, and each unit's predicted completion (its last planned task's end); and
    the Gantt's bars, each made once (a thousand of them would be most of a snapshot)."""

    plan: LinePlan
    tasks: Mapping[int, _TaskBrief]
    unit_ends: Mapping[str, int]  # serial → seconds from the plan's made_at
    late: frozenset[str]  # orders predicted late
    bars: dict[tuple[str, int], GanttTask | None] = field(default_factory=dict)

    def bar(self, station: str, i: int) -> GanttTask | None:
        """The bar of the ``i``-th task planned at ``station`` (not handed over yet)."""
        key = (station, i)
        if key in self.bars:
            return self.bars[key]
        plan = self.plan
        sp = plan.stations[station]
        t = self.tasks.get(sp.tasks[i])
        # Built as is: every value is typed already (no validation to pay for).
        bar = (
            None
            if t is None
            else GanttTask.model_construct(
                task_id=t.task_id,
                order_id=t.order_id,
                serial=t.serial,
                op=t.op,
                in_work=False,
                start=plan.at(sp.starts[i]),
                end=plan.at(sp.ends[i]),
                setup_s=sp.setups[i],
                late=t.order_id in self.late,
            )
        )
        self.bars[key] = bar
        return bar


# -- the data -------------------------------------------------------------------------------


class BoardData:
    """The board's snapshot of the line, and one shared copy of it for every board."""

    def __init__(
        self,
        service: StationService,
        floor: Floor | None,
        planner: LinePlanner | None,
        *,
        gantt_hours: float = 4.0,
        gantt_per_station: int = 40,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if gantt_hours <= 0 or gantt_per_station < 1:
            raise ValueError("gantt_hours must be positive and gantt_per_station at least 1")
        self.service = service
        self.core: LineContext = service.core
        self.floor = floor
        self.planner = planner
        self.gantt_hours = gantt_hours
        self.gantt_per_station = gantt_per_station
        self._monotonic = monotonic
        self._tz = ZoneInfo(self.core.config.line.timezone)
        self._names = {o.badge: o.name for o in self.core.config.operators}
        self._standards: dict[int, float | None] = {}  # task id → its standard time
        self._plan_index: _PlanIndex | None = None
        # Sharing: the last snapshot, when it was computed (monotonic), what it reflects.
        self._lock = asyncio.Lock()
        self._board: Board | None = None
        self._computed_at = 0.0
        self._unreported_seen: tuple[object, ...] = ()
        self._dirty = False
        self.computations = 0  # snapshots computed by latest(): what sharing saves
        self.bottleneck = BoardBottleneck(self.core, monotonic)

    # -- sharing ------------------------------------------------------------------------

    def touch(self) -> None:
        """Something the board shows changed without an event (a device, a machine's state
        not reported): the next :meth:`latest` computes again."""
        self._dirty = True

    async def latest(self, min_interval_s: float = 0.25) -> Board:
        """The shared snapshot: computed again only when something changed since (the
        outbox's seq moved; a sign-in, a machine's state, an acknowledgement or a device
        changed; :meth:`touch` was called), at most once per ``min_interval_s`` and at least every
        :data:`MAX_AGE_S`."""
        async with self._lock:
            board = self._board
            if board is not None:
                age = self._monotonic() - self._computed_at
                if age < min_interval_s:
                    return board
                if age < MAX_AGE_S and not self._changed(board):
                    return board
            self._dirty = False
            self._unreported_seen = self._unreported()
            board = await self._snapshot_yielding(self.core.clock.now())
            self._board, self._computed_at = board, self._monotonic()
            self.computations += 1
            return board

    def _changed(self, board: Board) -> bool:
        return (
            self._dirty
            or self.core.outbox.last_seq != board.seq
            or self._unreported() != self._unreported_seen
        )

    def _unreported(self) -> tuple[object, ...]:
        """What changes without an event: who is signed in where (a sign-in reports none),
        a machine's state not reported (telemetry thinned while the hub is away), an alarm
        acknowledged, each device's state, the machines connected, the last pick request
        that arrived. Three small reads: the stations' rows, the raised alarms, an index."""
        store = self.core.store
        sessions = store.texts(
            "SELECT group_concat(station || ':' || coalesce(operator, '') || ':' || "
            "coalesce(task_id, '') || ':' || coalesce(machine_state, ''), ';') FROM sessions"
        )
        acked = store.texts(
            "SELECT group_concat(alarm_id || ':' || coalesce(acked_at, ''), ';') FROM alarms "
            "WHERE cleared_at IS NULL"
        )
        # A pick request arriving at its station is told by no event (an indexed max).
        arrived = store.texts(
            "SELECT max(arrived_at) FROM pick_requests WHERE arrived_at IS NOT NULL"
        )
        if self.floor is None:
            return (sessions, acked, arrived)
        sups = self.floor.devices.supervisors.values()
        machines = frozenset(self.core.live_machines)
        return (sessions, acked, arrived, tuple(s.state for s in sups), machines)

    # -- the snapshot -------------------------------------------------------------------

    def snapshot(self, now: datetime) -> Board:
        """The board at ``now`` (an aware instant)."""
        steps = self._build(now)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                board: Board = done.value
                return board

    async def _snapshot_yielding(self, now: datetime) -> Board:
        """:meth:`snapshot`, letting the loop answer between its parts: an operator's
        action waits for one part (a few ms), not for the whole board."""
        steps = self._build(now)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                board: Board = done.value
                return board
            await asyncio.sleep(0)

    def _build(self, now: datetime) -> Generator[None, None, Board]:
        """The board's parts, one per step. The seq is read first: the board shows at
        least the events up to it (a part computed a moment later may show more)."""
        if now.tzinfo is None:
            raise ValueError("the board's instant must be aware (UTC or with an offset)")
        core = self.core
        config = core.config
        seq = core.outbox.last_seq
        live = self.planner.replanner.current if self.planner is not None else None
        alarms = self._alarms(now)
        day = self._day(now)
        otd, fpy = _otd_fpy(core, day.start, max(now, day.start))
        plan = None
        if live is not None and self.planner is not None:
            plan = PlanInfo(made_at=live.made_at, method=live.method, source=self.planner.source())
        yield
        # Since the plan was made, to tell what it plans that is done already (a day at
        # most: a plan older than that is long stale).
        since = day.start if live is None else min(day.start, live.made_at)
        since = max(since, day.start - timedelta(days=1))
        units = _done(core, "serial", "units", since)
        orders = _done(core, "order_id", "orders", since)
        yield
        stations = self._stations(now, live, alarms)
        yield
        bottleneck = yield from self.bottleneck.parts(now)
        at_risk = self._at_risk(live)
        output = self._output(now, day, live, units, orders)
        yield
        gantt = self._gantt(now, live)
        yield
        flow = {stage.value: n for stage, n in order_flow(core, now).items()}
        yield
        cutoffs = [c.model_dump(mode="json") for c in carrier_cutoffs(core, self.planner, now)]
        picks = picks_by_station(core)
        return Board(
            as_of=now,
            seq=seq,
            line=config.line.name or config.gateway_id,
            timezone=config.line.timezone,
            day=day.day,
            stations=stations,
            at_risk=at_risk,
            output_by_hour=output,
            otd_today=otd,
            fpy_today=fpy,
            gantt_hours=self.gantt_hours,
            gantt=gantt,
            alarms=alarms,
            plan=plan,
            flow=flow,
            cutoffs=cutoffs,
            bottleneck=bottleneck,
            picks=picks,
        )

    # -- stations -----------------------------------------------------------------------

    def _stations(
        self, now: datetime, live: LinePlan | None, alarms: Sequence[AlarmTile]
    ) -> list[StationTile]:
        core = self.core
        store = core.store
        sessions = {r.station: r for r in store.fetch_all(SessionRow, "SELECT * FROM sessions")}
        task_ids = [r.task_id for r in sessions.values() if r.task_id is not None]
        current = {t.task_id: t for t in _tasks(core, task_ids)}
        ready = {
            r.capability: r.n
            for r in store.fetch_all(
                _Ready,
                "SELECT capability, count(*) AS n FROM tasks WHERE status = ? GROUP BY capability",
                (TaskStatus.READY,),
            )
        }
        by_station: dict[str, list[AlarmTile]] = {}
        for a in alarms:
            if a.station is not None:
                by_station.setdefault(a.station, []).append(a)
        devices = self._devices()
        out = []
        for sid, cfg in core.config.stations.items():
            session = sessions.get(sid)
            task = current.get(session.task_id) if session and session.task_id else None
            if task is not None and not task.status.in_work:
                task = None
            out.append(
                self._tile(
                    now,
                    cfg,
                    session,
                    task,
                    sum(ready.get(c, 0) for c in cfg.capabilities),
                    by_station.get(sid, []),
                    devices.get(sid, []),
                    live,
                )
            )
        return out

    def _tile(
        self,
        now: datetime,
        cfg: StationConfig,
        session: SessionRow | None,
        task: TaskRow | None,
        queue_len: int,
        alarms: Sequence[AlarmTile],
        devices: list[DeviceTile],
        live: LinePlan | None,
    ) -> StationTile:
        badge = session.operator if session is not None else None
        machine = self._machine(cfg, session, task)
        setup_s = _planned_setup(live, cfg.id, task.task_id) if task is not None else None
        state, reason = _andon(badge, task, queue_len, machine, alarms, devices, setup_s)
        look = _LOOKS[state]
        started = datetime.fromisoformat(task.started_at) if task and task.started_at else None
        return StationTile(
            station=cfg.id,
            name=cfg.name or cfg.id,
            state=state,
            label=look.label,
            label_zh=look.label_zh,
            color=look.color,
            color_hex=COLOR_HEX[look.color],
            reason=reason,
            operator=OperatorRef(badge=badge, name=self._names.get(badge, badge))
            if badge is not None
            else None,
            task_id=task.task_id if task else None,
            task_status=task.status if task else None,
            order_id=task.order_id if task else None,
            serial=task.serial if task else None,
            op=task.op if task else None,
            task_started_at=started,
            elapsed_s=round((now - started).total_seconds(), 1) if started else None,
            standard_s=self._standard_s(task) if task else None,
            setup_s=setup_s,
            queue_len=queue_len,
            machine=machine,
            devices=devices,
            devices_ok=all(d.ok for d in devices),
            open_alarms=len(alarms),
        )

    def _machine(
        self, cfg: StationConfig, session: SessionRow | None, task: TaskRow | None
    ) -> MachineTile | None:
        machine_id = cfg.machine_id
        if machine_id is None:
            return None
        connected = cfg.id in self.core.live_machines
        driver = None
        if self.floor is not None:
            devs = self.floor.devices.stations.get(cfg.id)
            driver = devs.machine if devs is not None else None
        status = driver.status if driver is not None else None
        progress = task.progress() if task is not None else None
        job = progress.machine_job if progress is not None else None
        return MachineTile(
            machine=machine_id,
            state=session.machine_state if session is not None else None,
            connected=connected,
            fault=status.fault if status is not None and connected else None,
            job_id=job or (status.job_id if status is not None else None),
            job_done=progress.machine_done if progress is not None else False,
            good=status.good if status is not None else None,
            bad=status.bad if status is not None else None,
        )

    def _devices(self) -> dict[str, list[DeviceTile]]:
        out: dict[str, list[DeviceTile]] = {}
        if self.floor is None:
            return out
        for name, sup in self.floor.devices.supervisors.items():
            station, _, local = name.partition("/")
            out.setdefault(station, []).append(
                DeviceTile(
                    device=local,
                    kind=sup.driver.kind,
                    state=sup.state.value,
                    ok=sup.state is DriverState.READY,
                )
            )
        return out

    def _standard_s(self, task: TaskRow) -> float | None:
        """The task's standard time as the planner takes it (gateway/planning/line_problem.py):
        its operation's run time in the routing its order was accepted with; a pack task,
        the order's longest pack time and a little per extra unit."""
        if task.task_id in self._standards:
            return self._standards[task.task_id]
        if len(self._standards) > 10_000:
            self._standards.clear()
        core = self.core
        found: float | None = None
        if task.wo_id is not None:
            frozen = core.store.texts(
                "SELECT operations FROM work_orders WHERE wo_id = ?", (task.wo_id,)
            )
            ops = core.catalog.operations(frozen[0]) if frozen else ()
            op = next((o for o in ops if o.op == task.op), None)
            found = float(op.run_s) if op is not None else None
        else:
            runs = [
                float(o.run_s)
                for frozen in core.store.texts(
                    "SELECT operations FROM work_orders WHERE order_id = ?", (task.order_id,)
                )
                for o in core.catalog.operations(frozen)
                if o.capability == task.capability
            ]
            units = core.store.count(
                "SELECT units FROM orders WHERE order_id = ?", (task.order_id,)
            )
            if runs:
                found = max(runs) + PACK_PER_EXTRA_UNIT_S * max(0, units - 1)
        self._standards[task.task_id] = found
        return found

    # -- alarms -------------------------------------------------------------------------

    def _alarms(self, now: datetime) -> list[AlarmTile]:
        stations = self.core.config.stations
        out = []
        for a in map(_RaisedAlarm.of, active_alarms(self.core)):
            raised = datetime.fromisoformat(a.raised_at)
            out.append(
                AlarmTile(
                    alarm_id=a.alarm_id,
                    kind=a.kind,
                    severity=a.severity,
                    station=_station_of(stations, a.source),
                    source=a.source,
                    message=a.message,
                    message_zh=a.message_zh,
                    raised_at=raised,
                    age_s=round(max(0.0, (now - raised).total_seconds()), 1),
                    acked_by=a.acked_by,
                    acked_at=datetime.fromisoformat(a.acked_at) if a.acked_at else None,
                )
            )
        # The worst first, then the oldest (active_alarms lists them oldest first).
        out.sort(key=lambda a: _SEVERITY_RANK.get(a.severity, 9))
        return out

    # -- the plan -----------------------------------------------------------------------

    def _at_risk(self, live: LinePlan | None) -> list[AtRiskOrder]:
        if live is None or not live.late:
            return []
        still_open = _open_orders(self.core, [o.order_id for o in live.late])
        late = sorted(
            (o for o in live.late if o.order_id in still_open),
            key=lambda o: (-o.lateness, o.order_id),
        )
        return [
            AtRiskOrder(
                order_id=o.order_id,
                ship_by=live.at(o.ship_by),
                predicted_completion=live.at(o.completion),
                late_s=o.lateness,
                reasons=list(o.reasons),
            )
            for o in late
        ]

    def _gantt(self, now: datetime, live: LinePlan | None) -> list[GanttRow]:
        """Each station's planned tasks that overlap the next ``gantt_hours``, unfinished."""
        if live is None:
            return []
        begin = int((now - live.made_at).total_seconds())
        until = begin + int(self.gantt_hours * 3600)
        index = self._index(live)
        spans: dict[str, tuple[int, int]] = {}
        ids: list[int] = []
        for sid in self.core.config.stations:
            sp = live.stations.get(sid)
            if sp is None:
                continue
            # A station does one task at a time: its starts and ends are both in order.
            lo, hi = bisect.bisect_right(sp.ends, begin), bisect.bisect_left(sp.starts, until)
            hi = min(hi, lo + self.gantt_per_station * 2)  # finished ones are left out below
            spans[sid] = (lo, hi)
            ids.extend(sp.tasks[lo:hi])
        # Only the tasks that moved on since the plan are read: handed over or finished.
        moved = {t.task_id: t.status for t in _moved(self.core, ids)}
        rows = []
        for sid, cfg in self.core.config.stations.items():
            shown: list[GanttTask] = []
            sp = live.stations.get(sid)
            lo, hi = spans.get(sid, (0, 0))
            for i in range(lo, hi):
                assert sp is not None
                status = moved.get(sp.tasks[i])
                if status is not None and status.finished:
                    continue
                bar = index.bar(sid, i)
                if bar is None:
                    continue
                if status is not None and status.in_work:
                    bar = bar.model_copy(update={"in_work": True})
                shown.append(bar)
                if len(shown) >= self.gantt_per_station:
                    break
            rows.append(GanttRow(station=sid, name=cfg.name or sid, tasks=shown))
        return rows

    def _index(self, live: LinePlan) -> _PlanIndex:
        """The plan's tasks and units (see :class:`_PlanIndex`), read once per plan."""
        cached = self._plan_index
        if cached is not None and cached.plan is live:
            return cached
        marks = ",".join("?" * len(OPEN_TASKS))
        tasks = {
            t.task_id: t
            for t in self.core.store.fetch_all(
                _TaskBrief,
                f"SELECT task_id, order_id, serial, op FROM tasks WHERE status IN ({marks})",
                OPEN_TASKS,
            )
            if live.is_planned(t.task_id)
        }
        ends: dict[str, int] = {}
        for sp in live.stations.values():
            for task_id, end in zip(sp.tasks, sp.ends, strict=True):
                found = tasks.get(task_id)
                if found is not None and found.serial is not None:
                    ends[found.serial] = max(ends.get(found.serial, end), end)
        self._plan_index = _PlanIndex(live, tasks, ends, frozenset(o.order_id for o in live.late))
        return self._plan_index

    # -- output and the day -------------------------------------------------------------

    def _day(self, now: datetime) -> _Day:
        local = now.astimezone(self._tz).date()
        return _Day(local, _local(local, self._tz), _local(local + timedelta(days=1), self._tz))

    def _output(
        self,
        now: datetime,
        day: _Day,
        live: LinePlan | None,
        units: Sequence[_Done],
        orders: Sequence[_Done],
    ) -> list[HourOutput]:
        """Units and orders done per local hour today, and what the plan completes in the
        hours left. A planned completion already past (the plan is behind) counts in the
        hour of ``now``: it is still expected, and soon."""
        size = day.hours
        units_done, orders_done = [0] * size, [0] * size
        units_planned, orders_planned = [0] * size, [0] * size
        for rows, counts in ((units, units_done), (orders, orders_done)):
            for r in rows:
                hour = day.hour_of(datetime.fromisoformat(r.completed_at))
                if 0 <= hour < size:
                    counts[hour] += 1
        if live is not None:
            # In seconds from the plan's made_at: thousands of units, no datetime each.
            base = (live.made_at - day.start).total_seconds()
            now_s = (now - live.made_at).total_seconds()
            for ends, done, counts in (
                (self._index(live).unit_ends, {r.key for r in units}, units_planned),
                (live.completion, {r.key for r in orders}, orders_planned),
            ):
                for key, end in ends.items():
                    if key in done:
                        continue
                    hour = math.floor((base + max(end, now_s)) / 3600)
                    if 0 <= hour < size:
                        counts[hour] += 1
        first, last = _shift_hours(self.core.config, day, self._tz)
        counted = (units_done, orders_done, units_planned, orders_planned)
        busy = [h for h in range(size) if any(c[h] for c in counted)]
        now_hour = day.hour_of(now)
        first = min([first, now_hour, *busy])
        last = max([last, now_hour + 1, *(h + 1 for h in busy)])
        first, last = max(0, first), min(size, last)
        hours = []
        for h in range(first, last):
            start = day.start + h * _HOUR
            hours.append(
                HourOutput(
                    hour=start,
                    label=start.astimezone(self._tz).strftime("%H:%M"),
                    done=units_done[h],
                    planned=units_planned[h],
                    orders_done=orders_done[h],
                    orders_planned=orders_planned[h],
                )
            )
        return hours


# -- helpers --------------------------------------------------------------------------------


def _andon(
    badge: str | None,
    task: TaskRow | None,
    queue_len: int,
    machine: MachineTile | None,
    alarms: Sequence[AlarmTile],
    devices: Sequence[DeviceTile],
    setup_s: int | None,
) -> tuple[AndonState, str | None]:
    """The station's andon state and why; the precedence is the module docstring's."""
    if machine is not None and machine.connected and machine.state is not None:
        in_work = task is not None
        if machine.state in PACKML_FAULT_STATES or (in_work and machine.state in _STOPPED):
            why = machine.fault or machine.state.lower()
            return AndonState.FAULT, f"{machine.machine} is {machine.state}: {why}"
    stopping = [a for a in alarms if a.severity in _STOPS_STATION]
    if stopping:
        return AndonState.FAULT, stopping[0].message
    failed = [d for d in devices if d.state == DriverState.FAILED.value]
    if failed:
        return AndonState.FAULT, f"{failed[0].device} ({failed[0].kind}) is offline"
    if task is not None:
        progress = task.progress()
        if task.status is TaskStatus.PAUSED:
            return AndonState.HELD, f"paused: {progress.pause_reason or 'no reason given'}"
        if progress.weight_g is not None and not progress.weight_ok:
            return (
                AndonState.HELD,
                f"weight {progress.weight_g:g} g out of tolerance: weigh again, or a line "
                "lead overrides",
            )
        if task.status is TaskStatus.DISPATCHED and setup_s:
            return AndonState.SETUP, f"changeover before {task.op} ({setup_s} s planned)"
        if task.status is TaskStatus.RUNNING or badge is not None:
            return AndonState.RUNNING, None
    if badge is None:
        return AndonState.OFFLINE, "no operator signed in"
    return (AndonState.IDLE, None) if queue_len else (AndonState.STARVED, None)


def _planned_setup(live: LinePlan | None, station: str, task_id: int) -> int | None:
    """The changeover the plan puts before ``task_id`` at ``station``; None unplanned."""
    sp = live.stations.get(station) if live is not None else None
    if sp is None:
        return None
    try:
        return sp.setups[sp.tasks.index(task_id)]
    except ValueError:
        return None


def _station_of(stations: Mapping[str, StationConfig], source: str) -> str | None:
    """The station an alarm's source belongs to: a device's (``station/device``) or a
    station's own; None for the line's (the hub, the store, a material)."""
    station = source.partition("/")[0]
    return station if station in stations else None


def _local(day: date, tz: ZoneInfo, hour: int = 0, minute: int = 0) -> datetime:
    """A local clock time of ``day`` as a UTC instant (so that arithmetic on it is in
    elapsed time: Python adds to an aware local time on the wall clock)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).astimezone(UTC)


def _shift_hours(config: LineConfig, day: _Day, tz: ZoneInfo) -> tuple[int, int]:
    """The hours of ``day`` from the start of its first shift to the end of its last (a
    night shift of the day before counts from midnight); the whole day without shifts."""
    windows: list[tuple[datetime, datetime]] = []
    for shift in config.shifts:
        for d in (day.day - timedelta(days=1), day.day):
            if WEEKDAYS[d.weekday()] not in shift.days:
                continue
            hours, minutes = (int(x) for x in shift.start.split(":"))
            begin = _local(d, tz, hours, minutes)
            end = begin + timedelta(minutes=shift.length_min)
            start, stop = max(begin, day.start), min(end, day.end)
            if start < stop:
                windows.append((start, stop))
    if not windows:
        return 0, day.hours
    first = min(w[0] for w in windows)
    last = max(w[1] for w in windows)
    return day.hour_of(first), math.ceil((last - day.start) / _HOUR)


def _tasks(core: LineContext, ids: Sequence[int]) -> list[TaskRow]:
    out: list[TaskRow] = []
    for i in range(0, len(ids), _SQL_CHUNK):
        chunk = ids[i : i + _SQL_CHUNK]
        out += core.store.fetch_all(
            TaskRow, f"SELECT * FROM tasks WHERE task_id IN ({','.join('?' * len(chunk))})", chunk
        )
    return out


def _moved(core: LineContext, ids: Sequence[int]) -> list[_Moved]:
    """Those of ``ids`` no longer waiting (blocked or ready): handed over, or finished."""
    out: list[_Moved] = []
    for i in range(0, len(ids), _SQL_CHUNK):
        chunk = ids[i : i + _SQL_CHUNK]
        out += core.store.fetch_all(
            _Moved,
            "SELECT task_id, status FROM tasks "
            f"WHERE task_id IN ({','.join('?' * len(chunk))}) AND status NOT IN (?, ?)",
            (*chunk, TaskStatus.BLOCKED, TaskStatus.READY),
        )
    return out


def _open_orders(core: LineContext, ids: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(ids), _SQL_CHUNK):
        chunk = ids[i : i + _SQL_CHUNK]
        out.update(
            core.store.texts(
                "SELECT order_id FROM orders "
                f"WHERE order_id IN ({','.join('?' * len(chunk))}) AND status NOT IN (?, ?)",
                (*chunk, OrderStatus.COMPLETED, OrderStatus.CANCELLED),
            )
        )
    return out


def _done(core: LineContext, key: str, table: str, since: datetime) -> list[_Done]:
    """Units (``serial``) or orders (``order_id``) completed since ``since``."""
    return core.store.fetch_all(
        _Done,
        f"SELECT {key} AS key, completed_at FROM {table} WHERE completed_at >= ?",
        (iso(since),),
    )


def _ratio(numerator: int, denominator: int) -> Ratio:
    value = round(numerator / denominator, 4) if denominator else None
    return Ratio(numerator=numerator, denominator=denominator, value=value)


def _otd_fpy(core: LineContext, start: datetime, end: datetime) -> tuple[Ratio, Ratio]:
    """OTD and FPY of [start, end), by gateway/orderbook/kpi.py's definitions. Not
    ``period_kpis`` itself: the rest of what it computes (every attempt of the period for
    station times, lead times) was two thirds of a board's snapshot, thrown away."""
    s, e = iso(start), iso(end)
    on_time, due = otd_counts(core.store, s, e)
    first_pass, units = fpy_counts(core.store, s, e)
    return _ratio(on_time, due), _ratio(first_pass, units)
