"""An independent check of a plan against its problem: a list of violations, empty if none.

It shares no code with the planners on purpose (only the data classes), so a bug in a
model or a rule does not hide itself here.
"""

from __future__ import annotations

from bisect import bisect_right

from gateway.planner.problem import Assignment, Plan, Problem, Station, Task


def check_plan(problem: Problem, plan: Plan) -> list[str]:
    """Every way ``plan`` breaks ``problem``: missing or unknown tasks, capability,
    material/now, precedence, overlap, shifts and breaks, setups, frozen tasks."""
    tasks = problem.task_map()
    stations = problem.station_map()
    out: list[str] = []
    out.extend(f"task {t} is not planned" for t in tasks if t not in plan.assignments)
    out.extend(f"unknown task {t} in the plan" for t in plan.assignments if t not in tasks)
    horizon = max([problem.horizon(), *(a.end for a in plan.assignments.values())])
    windows = {s.id: s.working_windows(horizon) for s in problem.stations}
    for task_id, a in plan.assignments.items():
        task = tasks.get(task_id)
        if task is None:
            continue
        out.extend(_task_violations(task, a, plan, stations))
        started = task.frozen is not None and task.frozen.start is not None
        if a.station in windows and not started and not _inside(windows[a.station], a.start, a.end):
            out.append(f"{task_id} [{a.start}, {a.end}) is outside {a.station}'s shifts")
    out.extend(_station_violations(problem, plan))
    return out


def _task_violations(
    task: Task, a: Assignment, plan: Plan, stations: dict[str, Station]
) -> list[str]:
    out: list[str] = []
    station = stations.get(a.station)
    if station is None:
        return [f"{task.id} is on unknown station {a.station}"]
    if task.capability not in station.capabilities:
        out.append(f"{task.id} needs {task.capability}, {a.station} cannot do it")
    if a.end - a.start < task.duration + a.setup:
        out.append(f"{task.id} lasts {a.end - a.start} s, less than its work {task.duration}")
    if a.setup not in (0, task.setup_s):
        out.append(f"{task.id} has a setup of {a.setup} s, not 0 or {task.setup_s}")
    frozen = task.frozen
    if frozen is not None:
        if frozen.station != a.station:
            out.append(f"frozen {task.id} moved from {frozen.station} to {a.station}")
        if frozen.start is not None and frozen.start != a.start:
            out.append(f"frozen {task.id} moved from {frozen.start} to {a.start}")
    elif a.start < task.earliest:
        what = f"material {task.material}" if task.material else "now"
        out.append(f"{task.id} starts at {a.start}, before {what} ({task.earliest})")
    for pred in task.predecessors:
        p = plan.assignments.get(pred)
        if p is not None and p.end > a.start:
            out.append(f"{task.id} starts at {a.start} before {pred} ends at {p.end}")
    return out


def _station_violations(problem: Problem, plan: Plan) -> list[str]:
    tasks = problem.task_map()
    stations = problem.station_map()
    by_station: dict[str, list[tuple[int, int, str]]] = {}
    for task_id, a in plan.assignments.items():
        if task_id in tasks:
            by_station.setdefault(a.station, []).append((a.start, a.end, task_id))
    out: list[str] = []
    for station_id, rows in by_station.items():
        rows.sort()
        station = stations.get(station_id)
        state = station.setup if station is not None else None
        for i, (start, _end, task_id) in enumerate(rows):
            if i and rows[i - 1][1] > start:
                out.append(f"{rows[i - 1][2]} and {task_id} overlap on {station_id}")
            task = tasks[task_id]
            frozen_started = task.frozen is not None and task.frozen.start is not None
            if (
                task.needs_setup_after(state)
                and plan.assignments[task_id].setup < task.setup_s
                and not frozen_started  # a started task's setup is history, not a plan
            ):
                out.append(f"{task_id} on {station_id} needs a setup from {state!r}")
            if task.setup_key is not None and task.setup_s > 0:
                state = task.setup_key
        out.extend(_next_task_violations(rows, tasks, station_id))
    return out


def _next_task_violations(
    rows: list[tuple[int, int, str]], tasks: dict[str, Task], station_id: str
) -> list[str]:
    """A frozen next task must come before every unfrozen task of its station."""
    out: list[str] = []
    free_seen: str | None = None
    for _start, _end, task_id in rows:
        frozen = tasks[task_id].frozen
        if frozen is None:
            free_seen = free_seen or task_id
        elif frozen.start is None and free_seen is not None:
            out.append(f"frozen next task {task_id} comes after {free_seen} on {station_id}")
    return out


def _inside(windows: tuple[tuple[int, int], ...], start: int, end: int) -> bool:
    """Whether [start, end) lies within one working window (tasks are not split)."""
    i = bisect_right([w[0] for w in windows], start) - 1
    return i >= 0 and windows[i][0] <= start and end <= windows[i][1]
