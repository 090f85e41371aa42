"""Small planning problems for the planner's tests: stations, one-unit orders, and a
scenario generated from the reference catalog and line (both in the repository)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gateway.planner import scenarios
from gateway.planner.problem import Order, Problem, Station, Task, Window

ROOT = Path(__file__).resolve().parents[2]


def station(
    sid: str, *caps: str, shifts: tuple[Window, ...] = (), breaks: tuple[Window, ...] = ()
) -> Station:
    return Station(sid, frozenset(caps), shifts, breaks)


def unit_order(
    oid: str,
    ship_by: int,
    ops: list[tuple[str, int]],
    weight: int = 1,
    keys: dict[str, tuple[str, int]] | None = None,
) -> tuple[Order, list[Task]]:
    """One order of one unit going through ``ops`` (capability, seconds), then a 10 s pack
    task; ``keys`` gives an operation its (setup key, setup seconds)."""
    tasks: list[Task] = []
    prev: tuple[str, ...] = ()
    for cap, seconds in ops:
        task = Task(f"{oid}/{cap}", oid, f"{oid}-01", cap, cap, seconds, predecessors=prev)
        if keys and cap in keys:
            task = replace(task, setup_key=keys[cap][0], setup_s=keys[cap][1])
        tasks.append(task)
        prev = (task.id,)
    tasks.append(Task(f"{oid}/pack", oid, None, "pack", "pack", 10, predecessors=prev))
    return Order(oid, ship_by, weight), tasks


def problem(stations: list[Station], *orders: tuple[Order, list[Task]]) -> Problem:
    return Problem(
        tuple(stations), tuple(t for _, ts in orders for t in ts), tuple(o for o, _ in orders)
    )


def small_generated(orders: int = 12, seed: int = 3) -> Problem:
    """A small surge-like scenario from the reference catalog and line (in the repository)."""
    catalog = scenarios.read_catalog(ROOT / "simulators/data/reference-catalog.json")
    line = scenarios.read_line(ROOT / "station_configs/reference-line")
    return scenarios.scenario("surge", catalog, line, seed=seed, orders=orders)
