"""The line's plan in the running gateway: when to replan, what the stations are handed, and
what the kanban is told.

- **Replanning** (gateway/planning/replanning.py): every ``[planner] interval_s``, and on events:
  orders arrived or cancelled, a station down or back (its machine faulted or offline), a
  shortage cleared, a task running far past its standard time, early completions that
  together freed a tenth of the plan's work. A burst of events makes one replan.
- **Solving** happens in the worker process (gateway/planning/worker.py) with a time and a
  memory limit, at the machine's lowest CPU priority: the worker reads the line's
  database itself, builds the problem (gateway/planning/line_problem.py), solves it and
  answers a compact plan (gateway/planning/line_solve.py), its first plan within a second
  and the improved one at the end of the time limit. The previous plan is the solver's
  hint, and its stations' heads stay first.
- **Dispatch**: a station asking for its next task gets the first ready task of its
  sequence in the current plan, at once (one indexed query, no solve). Ready tasks the
  plan does not know yet (orders that came after it) follow by the dispatch rule, then
  tasks planned for another station, so no station idles while there is work it can do.
  With no plan (planner off, first plan not made, plan older than ``stale_s`` because
  every replan since failed) the dispatch rule orders the whole queue.
- **Explaining**: every planned order's predicted completion; for those predicted late,
  why (the bottleneck station, the material, the shift that ends); orders waiting for a
  material are listed with what they lack. ``snapshot`` is the kanban's data
  (``GET /api/plan``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from gateway.clock import iso
from gateway.config.line import PlannerSection
from gateway.orderbook import tasks
from gateway.orderbook.context import LineContext
from gateway.planner.problem import LateOrder
from gateway.planning.cpu import CpuRate, quota_cores
from gateway.planning.line_plan import LineJob, LinePlan
from gateway.planning.line_problem import OPEN, down_station
from gateway.planning.replanning import Replanner
from gateway.planning.worker import PlanWorker, WorkerLimits
from gateway.store.rows import TaskRow, TaskStatus

__all__ = ["EARLY_REASON", "LinePlanner"]

logger = logging.getLogger(__name__)

# How far down a station's sequence a queue looks for ready tasks (in ids), per call.
_LOOKAHEAD = 512
_CHUNK = 128
# How often running tasks are checked against their standard time (real seconds).
_WATCH_S = 5.0
# Early completions ask for a replan together, not one by one (see _task_completed): once
# the station time they freed since the last replan began comes to this share of the work
# the plan in force holds, and to at least _EARLY_MIN_S (line seconds).
_EARLY_SHARE = 0.1
_EARLY_MIN_S = 300.0
EARLY_REASON = "tasks done ahead of the plan"


class LinePlanner:
    """Keeps the line planned; see the module docstring."""

    def __init__(
        self,
        core: LineContext,
        settings: PlannerSection,
        worker: PlanWorker | None = None,
        quota: Callable[[], float | None] = quota_cores,
    ) -> None:
        self.core = core
        self.settings = settings
        self.worker = worker or PlanWorker()
        # The CPU quota of the gateway's cgroup, in cores (None: none); a seam for tests.
        self.quota = quota
        self._own_cpu = CpuRate()
        self.replanner: Replanner[LinePlan] = Replanner(
            self._make_plan, interval_s=settings.interval_s, settle_s=settings.settle_s
        )
        # order.progress reads its forecasts from the plan in force, and each new plan is
        # compared with what the office was last told (gateway/orderbook/progress.py).
        core.progress.follow(self.replanner)
        self._heads: dict[str, int] = {}  # station → index of its first task not gone
        self._overran: set[int] = set()
        self._work_of: LinePlan | None = None
        self._work_s = 0  # the station time that plan holds (line seconds)
        self._freed_s = 0.0  # freed by early completions since the last replan began
        self._std_cache: dict[tuple[int, str], int] = {}
        # These run after the commit of an operator's action or an order's intake: a
        # trouble here is logged, never raised into what committed.
        triggers: dict[str, Callable[[dict[str, Any]], None]] = {
            "order.accepted": lambda _: self.request("orders arrived"),
            "order.cancelled": lambda _: self.request("order cancelled"),
            "alarm.raised": self._alarm_raised,
            "alarm.cleared": self._alarm_cleared,
            "task.completed": self._task_completed,
        }
        for topic, callback in triggers.items():
            core.subscribe(topic, _logged(topic, callback))

    # -- triggers ---------------------------------------------------------------------

    def request(self, reason: str) -> None:
        self.replanner.request(reason)

    def _station_of_alarm(self, data: Mapping[str, Any]) -> str | None:
        return down_station(self.core.config, str(data.get("kind")), str(data.get("source")))

    def _alarm_raised(self, data: dict[str, Any]) -> None:
        station = self._station_of_alarm(data)
        if station is not None:
            self.request(f"station {station} down")

    def _alarm_cleared(self, data: dict[str, Any]) -> None:
        station = self._station_of_alarm(data)
        if station is not None:
            self.request(f"station {station} back")
        elif data.get("kind") == "material_shortage":
            self.request("shortage cleared")

    def _task_completed(self, data: dict[str, Any]) -> None:
        """A task done in less than its standard time frees its station early.

        One early task is no reason to solve again: its station simply takes the next task
        of its sequence sooner, and the order of the plan still holds. What goes stale is
        the plan's times (the forecasts, which station could take what), and that only
        matters once many tasks were early: the time freed is added up, and a replan is
        asked for once it comes to a tenth of the work in the plan (and to five minutes at
        least). The sum starts over with each request and with each replan (which plans
        from every completion so far). Each early completion asking for itself kept the
        worker solving without a pause on a line whose standard times are generous.
        """
        started, ended = data.get("started_at"), data.get("completed_at")
        if data.get("serial") is None or not started or not ended:
            return
        task_id = int(data["task_id"])
        std = self._standard_s(task_id)
        took = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
        live = self.replanner.current
        if not std or took >= std or live is None or not live.is_planned(task_id):
            return  # late work is the overrun watch's; unplanned work is not the plan's
        self._freed_s += std - took
        if self._freed_s >= self.early_threshold_s():
            self._freed_s = 0.0
            self.request(EARLY_REASON)

    def early_threshold_s(self) -> float:
        """The station time early completions must free to ask for a replan (line s)."""
        live = self.replanner.current
        if live is not self._work_of:  # summed once per plan, not per completion
            self._work_of = live
            stations = live.stations.values() if live is not None else ()
            self._work_s = sum(sum(sp.ends) - sum(sp.starts) for sp in stations)
        return max(_EARLY_MIN_S, _EARLY_SHARE * self._work_s)

    def _standard_s(self, task_id: int) -> int:
        task = tasks.find(self.core, task_id)
        if task is None or task.wo_id is None:
            return 0
        key = (task.wo_id, task.op)
        if key not in self._std_cache:
            if len(self._std_cache) > 10_000:
                self._std_cache.clear()
            frozen = self.core.store.texts(
                "SELECT operations FROM work_orders WHERE wo_id = ?", (task.wo_id,)
            )
            ops = self.core.catalog.operations(frozen[0]) if frozen else ()
            self._std_cache[key] = next((int(o.run_s) for o in ops if o.op == task.op), 0)
        return self._std_cache[key]

    def check_overruns(self) -> int:
        """Ask for a replan for each running task newly past factor × its standard time."""
        now = self.core.clock.now()
        found = 0
        running = self.core.store.fetch_all(
            TaskRow,
            "SELECT * FROM tasks WHERE status = ? AND serial IS NOT NULL "
            "AND started_at IS NOT NULL",
            (TaskStatus.RUNNING,),
        )
        live = {r.task_id for r in running}
        self._overran &= live
        for r in running:
            task_id = r.task_id
            if task_id in self._overran or r.started_at is None:
                continue
            std = self._standard_s(task_id)
            elapsed = (now - datetime.fromisoformat(r.started_at)).total_seconds()
            limit = std * self.settings.overrun_factor + self.settings.overrun_grace_s
            if std and elapsed > limit:
                self._overran.add(task_id)
                found += 1
        if found:
            self.request("task far off its standard time")
        return found

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Replan on the interval and on requests, watch running tasks; until cancelled."""
        self.request("start")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.replanner.run(), name="replanner")
            tg.create_task(self._watch(), name="overrun watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_S)
            try:
                self.check_overruns()
            except Exception:  # a planner's trouble must never stop the line
                logger.exception("checking running tasks against their standard time failed")

    async def _make_plan(self, previous: LinePlan | None, reasons: tuple[str, ...]) -> LinePlan:
        now = self.core.clock.now()
        self._freed_s = 0.0  # this replan sees every completion so far
        marks = ",".join("?" * len(OPEN))
        if self.core.store.exists(f"SELECT 1 FROM tasks WHERE status IN ({marks}) LIMIT 1", OPEN):
            job = LineJob(self.core.config, self.core.store.path, now, previous, reasons)
            limits = WorkerLimits(
                time_limit_s=self.settings.time_limit_s,
                memory_mib=self.settings.memory_mib,
                workers=self.settings.workers,
                patience_s=self.settings.patience_s,
            )

            def first(answer: object) -> None:
                # The line works by the solver's first plan (well under a second) while
                # the solver improves it for the rest of its time limit.
                self.replanner.offer(self._adopt(_line_plan(answer)))

            plan = _line_plan(await self.worker.run(job, limits, first, self._budget()))
        else:  # nothing open: no process to start
            plan = LinePlan(now, "nothing to plan", {}, {}, (), {}, frozenset(), reasons, 0.0)
        return self._adopt(plan)

    def _budget(self) -> Callable[[], float] | None:
        """Under a CPU quota (read at each replan: a container's limit can change), what the
        worker may use of it, asked as it solves: what the gateway leaves, less a margin
        for bursts. None without a quota: the worker is not paced."""
        quota = self.quota()
        if quota is None:
            return None
        reserve = self.settings.api_reserve_cores
        return lambda: quota - reserve - self._own_cpu.sample()

    def _adopt(self, plan: LinePlan) -> LinePlan:
        """A new plan: stamped with when it came; the stations' heads start over."""
        self._heads = {}
        return replace(plan, received=time.monotonic())

    async def stop_solver(self) -> None:
        """Kill a solve in progress (its replan fails; the line keeps its last plan)."""
        await self.worker.stop()

    # -- dispatch -----------------------------------------------------------------------

    def current(self) -> LinePlan | None:
        """The plan stations follow, or None: the dispatch rule then."""
        live = self.replanner.current
        if live is None or live.empty:
            return None
        if time.monotonic() - live.received > self.settings.stale_s:
            return None
        return live

    def source(self) -> str:
        """What orders the queues now: the plan, or the rule and why."""
        live = self.replanner.current
        if live is None or live.empty:
            return "rule (no plan yet)"
        if self.current() is None:
            return "rule (the plan is stale)"
        return "plan"

    def queue(self, station_id: str, capabilities: Sequence[str], limit: int) -> list[TaskRow]:
        """The station's ready tasks in plan order, then the rest by the dispatch rule; the
        rule alone without a plan."""
        live = self.current()
        out: list[TaskRow] = []
        if live is not None:
            out = self._planned(live, station_id, limit)
        if len(out) >= limit:
            return out[:limit]
        taken = {r.task_id for r in out}
        rule = tasks.ready_for(self.core, list(capabilities), limit + len(taken))
        rest = [r for r in rule if r.task_id not in taken]
        if live is not None:
            # Unplanned work first; work planned for another station only when idle.
            rest.sort(key=lambda r: live.is_planned(r.task_id))
        return [*out, *rest][:limit]

    def _planned(self, live: LinePlan, station_id: str, limit: int) -> list[TaskRow]:
        sequence = live.sequence(station_id)
        head = self._heads.get(station_id, 0)
        out: list[TaskRow] = []
        i = head
        at_head = True
        # A station's next ready tasks are mostly right at its head: read a few rows first
        # and more only when those were taken or are not ready (every screen asks here).
        size = min(_CHUNK, 2 * limit + 8)
        while i < len(sequence) and i < head + _LOOKAHEAD and len(out) < limit:
            chunk = sequence[i : i + size].tolist()
            size = min(_CHUNK, size * 2)
            rows = {r.task_id: r for r in _tasks_by_id(self.core, chunk)}
            for task_id in chunk:
                row = rows.get(task_id)
                if row is None or row.status.finished:
                    if at_head:
                        self._heads[station_id] = i + 1
                else:
                    at_head = False
                    if row.status is TaskStatus.READY:
                        out.append(row)
                        if len(out) >= limit:
                            break
                i += 1
        return out

    # -- the kanban's data ---------------------------------------------------------------

    def snapshot(self, per_station: int = 20) -> dict[str, Any]:
        """The plan for the kanban: state, each station's next tasks, order forecasts."""
        stats = self.replanner.stats
        live = self.replanner.current
        out: dict[str, Any] = {
            "enabled": True,
            "source": self.source(),
            "replans": stats.replans,
            "first_plans": stats.first_plans,
            "failures": stats.failures,
            "last_error": stats.last_error,
            "last_reasons": list(stats.last_reasons),
            "requests": dict(stats.requests),
            "solving": self.worker.running,
        }
        if live is None:
            return out | {"plan": None}
        out["plan"] = {
            "made_at": iso(live.made_at),
            "method": live.method,
            "solve_s": round(live.solve_s, 3),
            "reasons": list(live.reasons),
            "down": sorted(live.down),
            "stations": self._station_rows(live, per_station),
            "late": [_late_row(live, o) for o in live.late],
            "waiting": [
                {"order_id": oid, "materials": list(m), "reasons": [_waiting_reason(m)]}
                for oid, m in sorted(live.waiting.items())
            ],
        }
        return out

    def _station_rows(self, live: LinePlan, per_station: int) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for station in self.core.config.stations:
            sp = live.stations.get(station)
            shown: list[dict[str, Any]] = []
            out[station] = shown
            if sp is None:
                continue
            head = self._heads.get(station, 0)
            ids = sp.tasks[head : head + per_station * 4].tolist()
            if not ids:
                continue
            rows = {r.task_id: r for r in _tasks_by_id(self.core, ids)}
            for i, task_id in enumerate(ids, start=head):
                row = rows.get(task_id)
                if row is None or row.status.finished:
                    continue
                shown.append(
                    {
                        "task_id": task_id,
                        "order_id": row.order_id,
                        "serial": row.serial,
                        "op": row.op,
                        "status": row.status.value,
                        "start": iso(live.at(sp.starts[i])),
                        "end": iso(live.at(sp.ends[i])),
                        "setup_s": sp.setups[i],
                    }
                )
                if len(shown) >= per_station:
                    break
        return out

    def forecast(self, order_id: str) -> dict[str, Any] | None:
        """One order's forecast: predicted completion, late or not, and why; None when the
        current plan does not know the order."""
        live = self.replanner.current
        if live is None:
            return None
        if order_id in live.waiting:
            return {
                "order_id": order_id,
                "planned": False,
                "predicted_completion": None,
                "late": None,
                "reasons": [_waiting_reason(live.waiting[order_id])],
                "made_at": iso(live.made_at),
            }
        done = live.completion.get(order_id)
        if done is None:
            return None
        late = next((o for o in live.late if o.order_id == order_id), None)
        return {
            "order_id": order_id,
            "planned": True,
            "predicted_completion": iso(live.at(done)),
            "late": late is not None,
            "late_s": late.lateness if late is not None else 0,
            "reasons": list(late.reasons) if late is not None else [],
            "made_at": iso(live.made_at),
        }


def _tasks_by_id(core: LineContext, ids: Sequence[int]) -> list[TaskRow]:
    return core.store.fetch_all(
        TaskRow, f"SELECT * FROM tasks WHERE task_id IN ({','.join('?' * len(ids))})", ids
    )


def _logged(
    topic: str, callback: Callable[[dict[str, Any]], None]
) -> Callable[[dict[str, Any]], None]:
    def guarded(data: dict[str, Any]) -> None:
        try:
            callback(data)
        except Exception:  # the line goes on; the next trigger or the interval replans
            logger.exception("the planner's %s trigger failed", topic)

    return guarded


def _line_plan(answer: object) -> LinePlan:
    if not isinstance(answer, LinePlan):
        raise TypeError(f"the worker answered a {type(answer).__name__}, not a line plan")
    return answer


def _late_row(live: LinePlan, late: LateOrder) -> dict[str, Any]:
    return {
        "order_id": late.order_id,
        "ship_by": iso(live.at(late.ship_by)),
        "predicted_completion": iso(live.at(late.completion)),
        "late_s": late.lateness,
        "reasons": list(late.reasons),
    }


def _waiting_reason(materials: Sequence[str]) -> str:
    if not materials:
        return "material: waiting to be kitted"
    return f"material: {', '.join(materials)} short, not planned until in stock"
