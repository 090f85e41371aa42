"""Solving files from the command line: ``linegate plan --jsp FILE`` (a job-shop
benchmark) and ``linegate plan --orders FILE --catalog FILE --stations DIR`` (orders on a
line's stations), without touching any line's database.

Imports the solver (ortools) when called, not at import time, so that the CLI module that
wires this in pays the ~0.5 s / ~80 MiB import only when the subcommand actually runs.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.config.calendar import working_windows
from gateway.config.load import load_line_config
from gateway.planner.instances import parse_jobshop
from gateway.planner.problem import Station
from gateway.planner.scenarios import problem_from_orders, read_catalog

# How many days of shifts the plan may use.
_CALENDAR_DAYS = 14


def plan_jsp(path: Path, time_limit_s: float, workers: int = 2) -> dict[str, Any]:
    """Solve the job-shop file at ``path``; JSON-ready result.

    ``{"makespan": M, "starts": [[start of op 0 of job 0, ...], ...], "status": ...,
    "bound": LB, "wall_s": S}``: one row of starts per job, in the file's operation order.
    ``status`` is OPTIMAL (proven), FEASIBLE, or HEURISTIC (the solver found nothing within
    the limit; the schedule is the dispatch rule's). Raises ValueError on a malformed file.
    """
    from gateway.planner.jobshop import solve_jobshop  # lazy: see the module docstring

    instance = parse_jobshop(path.read_text(encoding="utf-8"), name=path.name)
    result = solve_jobshop(instance, time_limit_s, workers=workers)
    return {
        "makespan": result.makespan,
        "starts": result.starts,
        "status": result.status,
        "bound": result.bound,
        "wall_s": round(result.wall_s, 3),
    }


def plan_orders(
    orders_path: Path,
    catalog_path: Path,
    stations_dir: Path,
    now: datetime,
    time_limit_s: float,
    workers: int = 2,
) -> dict[str, Any]:
    """Plan a file of orders (a JSON array of hub order documents) on a line's stations,
    without any line's database: every task's order, serial, operation, station, start and
    end, and the orders predicted late with their reasons.

    ``stations_dir`` is a line config folder: its stations and the ``[[shifts]]`` of its
    line.toml (no shifts: always open). Raises ConfigError for a bad folder.
    """
    from gateway.planner.model import solve  # lazy: the solver costs ~80 MiB

    docs = json.loads(orders_path.read_text(encoding="utf-8"))
    if isinstance(docs, dict):
        docs = [docs]
    if not isinstance(docs, list):
        raise ValueError(f"{orders_path}: expected a JSON array of orders")
    catalog = read_catalog(catalog_path)
    line = load_line_config(stations_dir)
    stations = []
    for sid, station in line.stations.items():
        shifts, breaks = working_windows(line.shifts, sid, line.line.tzinfo, now, _CALENDAR_DAYS)
        stations.append(Station(sid, frozenset(station.capabilities), shifts, breaks, name=sid))
    problem = problem_from_orders(docs, catalog, stations, now)
    result = solve(problem, time_limit_s=time_limit_s, workers=workers)
    plan = result.plan
    tasks = {t.id: t for t in problem.tasks}

    def at(offset: int) -> str:
        return (now + timedelta(seconds=offset)).isoformat()

    rows = []
    for task_id, a in sorted(plan.assignments.items(), key=lambda kv: (kv[1].start, kv[0])):
        t = tasks[task_id]
        rows.append(
            {
                "order_id": t.order_id,
                "serial": t.serial,
                "operation": t.operation,
                "station": a.station,
                "start": at(a.start),
                "end": at(a.end),
                "setup_s": a.setup,
            }
        )
    return {
        "method": plan.method,
        "status": result.status,
        "wall_s": round(result.wall_s, 3),
        "tasks": rows,
        "late": [
            {
                "order_id": late.order_id,
                "ship_by": at(late.ship_by),
                "predicted_completion": at(late.completion),
                "late_s": late.lateness,
                "reasons": list(late.reasons),
            }
            for late in plan.late
        ],
    }
