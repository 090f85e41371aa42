"""The line as a planning problem: open tasks, stations, shifts, materials, frozen tasks.

Read from the store when a replan starts, by the worker process (gateway/planning/line_solve.py),
in one read transaction. No solver here: this module only builds plain data (see
gateway/planner/problem.py). Times are seconds from ``now``.

- A task is open while it is blocked, ready, dispatched, running or paused. Its duration is
  its operation's standard time (the routing the order was accepted with); a pack task
  takes the longest pack time of its order plus a little per extra unit.
- Running tasks are frozen where they run, started when they started, and last the rest of
  their standard time (at least a second: one that overruns ends "now"). Dispatched and
  paused tasks are frozen as their station's next task; so is the first ready task of the
  previous plan's sequence at a station that has none, because that is the task the
  station is handed when it asks.
- A unit waiting for its materials (not kitted) is not planned: nobody knows when the
  material comes. Its order is reported as waiting, with the materials it lacks.
- A station whose machine is faulted or offline is planned closed for
  ``down_assumed_s`` from now.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gateway.config.calendar import working_windows
from gateway.config.line import LineConfig
from gateway.orderbook.context import LineContext
from gateway.planner.problem import Frozen, Order, Problem, Station, Task
from gateway.planner.scenarios import PACK_PER_EXTRA_UNIT_S
from gateway.store.rows import (
    OPEN_TASKS,
    AlarmRow,
    LastStarted,
    OrderRow,
    OrderStatus,
    TaskOfUnit,
    TaskRow,
    TaskStatus,
    WorkOrderRow,
)

__all__ = ["LineProblem", "down_station", "down_stations", "line_problem", "task_key"]

OPEN = OPEN_TASKS


def task_key(task_id: int) -> str:
    """A store task id as a planner task id."""
    return str(task_id)


def down_station(config: LineConfig, kind: str, source: str) -> str | None:
    """The station an alarm takes down: a machine fault (its source is the machine,
    ``station/device``, or the station), or its machine's device offline. A scanner or a
    scale offline does not: the operator types the code or the weight."""
    if kind == "machine_fault":
        station = source.split("/", 1)[0]
        return station if station in config.stations else None
    if kind == "device_offline":
        for sid, st in config.stations.items():
            if st.machine_id == source:
                return sid
    return None


def down_stations(core: LineContext) -> frozenset[str]:
    """The stations an active alarm takes down."""
    out: set[str] = set()
    for alarm in core.store.fetch_all(
        AlarmRow,
        "SELECT * FROM alarms WHERE cleared_at IS NULL "
        "AND kind IN ('machine_fault', 'device_offline')",
    ):
        station = down_station(core.config, alarm.kind, alarm.source)
        if station is not None:
            out.add(station)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class LineProblem:
    """The problem, and what was left out of it and why."""

    problem: Problem
    now: datetime
    waiting: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # order → materials
    down: frozenset[str] = frozenset()


def line_problem(
    core: LineContext,
    now: datetime,
    *,
    down: Collection[str] = (),
    previous: Mapping[str, Sequence[int]] | None = None,
) -> LineProblem:
    """The line's open work at ``now``; ``previous`` is the current plan's sequence per
    station (its heads become the stations' frozen next tasks)."""
    found = core.store.fetch_all(
        TaskOfUnit,
        "SELECT t.*, u.kitted, u.wo_id AS unit_wo "
        "FROM tasks t LEFT JOIN units u ON u.serial = t.serial "
        f"WHERE t.status IN ({','.join('?' * len(OPEN))}) ORDER BY t.task_id",
        OPEN,
    )
    order_ids = sorted({r.task.order_id for r in found})
    orders = _orders(core, order_ids, now)
    ops, pack_s = _operations(core, order_ids)
    setups = _last_setups(core, ops)

    waiting = _waiting(core, [r for r in found if r.task.serial is not None and not r.kitted])
    rows = [r.task for r in found if r.task.order_id in orders and r.task.order_id not in waiting]

    stations = _stations(core, now, down, setups)
    station_ids = {s.id for s in stations}
    # Unit tasks chained in routing order; the pack task after the last task of each unit.
    by_serial: dict[str, list[TaskRow]] = {}
    packs: dict[str, TaskRow] = {}
    for r in rows:
        if r.serial is None:
            packs[r.order_id] = r
        else:
            by_serial.setdefault(r.serial, []).append(r)
    # A down station keeps what it holds, but the previous plan's head is not pinned to it.
    heads = {sid: seq for sid, seq in (previous or {}).items() if sid not in down}
    frozen = _frozen(rows, now, ops, station_ids, heads)
    tasks: list[Task] = []
    last_of_order: dict[str, list[str]] = {}
    for chain in by_serial.values():
        chain.sort(key=lambda r: r.op_index)
        prev: str | None = None
        for r in chain:
            op = ops.get((r.wo_id or 0, r.op), _Op(0, None, 0))
            task = _task(r, op, (prev,) if prev else (), frozen.get(r.task_id))
            tasks.append(task)
            prev = task.id
        if prev is not None:
            last_of_order.setdefault(chain[0].order_id, []).append(prev)
    for order_id, r in packs.items():
        units = orders[order_id][1]
        op = _Op(pack_s.get(order_id, 0) + PACK_PER_EXTRA_UNIT_S * max(0, units - 1), None, 0)
        tasks.append(_task(r, op, tuple(last_of_order.get(order_id, ())), frozen.get(r.task_id)))
    planned = {t.order_id for t in tasks}
    plan_orders = tuple(o for oid, (o, _) in orders.items() if oid in planned)
    return LineProblem(
        Problem(tuple(stations), tuple(tasks), plan_orders),
        now,
        waiting,
        frozenset(d for d in down if d in station_ids),
    )


@dataclass(frozen=True, slots=True)
class _Op:
    run_s: int
    setup_key: str | None  # the value (e.g. "gold"), not the key's name
    setup_s: int


def _seconds(ts: str, now: datetime) -> int:
    return int((datetime.fromisoformat(ts) - now).total_seconds())


def _orders(
    core: LineContext, order_ids: Sequence[str], now: datetime
) -> dict[str, tuple[Order, int]]:
    """Open orders as planner orders, with their unit counts."""
    out: dict[str, tuple[Order, int]] = {}
    for chunk in _chunks(order_ids):
        for r in core.store.fetch_all(
            OrderRow,
            f"SELECT * FROM orders WHERE order_id IN ({','.join('?' * len(chunk))}) "
            "AND status IN (?, ?)",
            (*chunk, OrderStatus.RELEASED, OrderStatus.WAITING_MATERIAL),
        ):
            order = Order(
                r.order_id,
                _seconds(r.ship_by, now),
                r.priority,
                _seconds(r.accepted_at, now),
            )
            out[r.order_id] = (order, r.units)
    return out


def _setup(setup_key: str | None, person: Mapping[str, object]) -> str | None:
    """The value of an operation's setup key in this work order's personalisation."""
    value = person.get(setup_key) if setup_key else None
    return str(value) if value not in (None, "") else None


def _operations(
    core: LineContext, order_ids: Sequence[str]
) -> tuple[dict[tuple[int, str], _Op], dict[str, int]]:
    """(work order, op) → standard time and setup, from the routing each order was accepted
    with and its personalization (the setup key's value); and each order's longest pack
    time."""
    out: dict[tuple[int, str], _Op] = {}
    pack_s: dict[str, int] = {}
    for chunk in _chunks(order_ids):
        for wo in core.store.fetch_all(
            WorkOrderRow,
            f"SELECT * FROM work_orders WHERE order_id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            person = wo.personalization() if wo.personalization_doc != "{}" else {}
            for op in core.catalog.operations(wo.operations):
                if op.capability == "pack":
                    pack_s[wo.order_id] = max(pack_s.get(wo.order_id, 0), int(op.run_s))
                    continue
                value = _setup(op.setup_key, person)
                out[(wo.wo_id, op.op)] = _Op(
                    int(op.run_s), value, int(op.setup_s) if value is not None else 0
                )
    return out, pack_s


def _last_setups(core: LineContext, ops: Mapping[tuple[int, str], _Op]) -> dict[str, str | None]:
    """What each station is set up for: the setup of the last task started there."""
    out: dict[str, str | None] = {}
    for r in core.store.fetch_all(
        LastStarted,
        "SELECT station, wo_id, op, max(started_at) FROM tasks "
        "WHERE station IS NOT NULL AND started_at IS NOT NULL AND wo_id IS NOT NULL "
        "GROUP BY station",
    ):
        op = ops.get((r.wo_id, r.op))
        if op is None:  # a finished order's work order: read its routing once
            op = _one_op(core, r.wo_id, r.op)
        out[r.station] = op.setup_key if op is not None else None
    return out


def _one_op(core: LineContext, wo_id: int, op_name: str) -> _Op | None:
    wo = core.store.fetch_one(WorkOrderRow, "SELECT * FROM work_orders WHERE wo_id = ?", (wo_id,))
    if wo is None:
        return None
    person = wo.personalization()
    for op in core.catalog.operations(wo.operations):
        if op.op == op_name:
            return _Op(int(op.run_s), _setup(op.setup_key, person), 0)
    return None


def _waiting(core: LineContext, rows: Sequence[TaskOfUnit]) -> dict[str, tuple[str, ...]]:
    """Orders with units not kitted → the materials they lack now (sorted)."""
    if not rows:
        return {}
    today = core.today()
    margin = core.config.policies.lot_expiry_margin_days
    need: dict[str, dict[str, float]] = {}
    seen: set[str] = set()
    for r in rows:
        serial = r.task.serial
        if serial is None or serial in seen:
            continue
        seen.add(serial)
        wo = (
            core.store.fetch_one(
                WorkOrderRow, "SELECT * FROM work_orders WHERE wo_id = ?", (r.unit_wo,)
            )
            if r.unit_wo is not None
            else None
        )
        mine = need.setdefault(r.task.order_id, {})
        for line in wo.snapshot().bom if wo is not None else ():
            mine[line.material] = mine.get(line.material, 0.0) + line.qty
    out: dict[str, tuple[str, ...]] = {}
    for order_id, materials in need.items():
        short = sorted(
            m for m, q in materials.items() if core.ledger.available(m, today, margin) < q - 1e-9
        )
        out[order_id] = tuple(short)
    return out


def _stations(
    core: LineContext, now: datetime, down: Collection[str], setups: Mapping[str, str | None]
) -> list[Station]:
    cfg = core.config
    out: list[Station] = []
    for sid, station in cfg.stations.items():
        shifts, breaks = working_windows(
            cfg.shifts, sid, cfg.line.tzinfo, now, cfg.planner.calendar_days
        )
        if sid in down and cfg.planner.down_assumed_s > 0:
            # Closed until it is assumed back: a break from now (a closing of an
            # always-open station works the same way).
            breaks = tuple(sorted((*breaks, (0, cfg.planner.down_assumed_s))))
        out.append(
            Station(
                sid,
                frozenset(station.capabilities),
                shifts,
                breaks,
                setup=setups.get(sid),
                name=station.name or sid,
            )
        )
    return out


def _frozen(
    rows: Sequence[TaskRow],
    now: datetime,
    ops: Mapping[tuple[int, str], _Op],
    stations: Collection[str],
    previous: Mapping[str, Sequence[int]],
) -> dict[int, tuple[Frozen, int | None]]:
    """task id → (its freeze, its remaining duration when started)."""
    out: dict[int, tuple[Frozen, int | None]] = {}
    running: dict[str, list[TaskRow]] = {}
    has_next: set[str] = set()
    for r in rows:
        station = r.station
        if station is None or station not in stations:
            continue
        if r.status is TaskStatus.RUNNING and r.started_at:
            running.setdefault(station, []).append(r)
        elif r.status.in_work:
            out[r.task_id] = (Frozen(station), None)
            has_next.add(station)
    for station, started in running.items():
        # Normally one; should a station hold two, they follow each other.
        busy_until = -(2**40)
        for r in sorted(started, key=lambda r: str(r.started_at)):
            assert r.started_at is not None  # only started tasks are in ``running``
            std = ops.get((r.wo_id or 0, r.op), _Op(0, None, 0)).run_s
            elapsed = max(0, -_seconds(r.started_at, now))
            start = max(-elapsed, busy_until)
            length = max(std, -start + 1)  # an overrun ends a second from now
            out[r.task_id] = (Frozen(station, start), length)
            busy_until = start + length
        has_next.add(station)
    ready = {r.task_id for r in rows if r.status is TaskStatus.READY}
    for station, sequence in previous.items():
        if station in has_next or station not in stations:
            continue
        head = next((t for t in sequence if t in ready and t not in out), None)
        if head is not None:
            out[head] = (Frozen(station), None)
    return out


def _task(
    r: TaskRow,
    op: _Op,
    predecessors: tuple[str, ...],
    frozen: tuple[Frozen, int | None] | None,
) -> Task:
    duration = op.run_s
    freeze: Frozen | None = None
    if frozen is not None:
        freeze, length = frozen
        if length is not None:
            duration = length
    return Task(
        id=task_key(r.task_id),
        order_id=r.order_id,
        serial=r.serial,
        operation=r.op,
        capability=r.capability,
        duration=duration,
        setup_key=op.setup_key,
        setup_s=op.setup_s,
        predecessors=predecessors,
        frozen=freeze,
    )


def _chunks(items: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
