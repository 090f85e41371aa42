"""Parsers for the classic scheduling benchmark files (pure: text in, typed data out).

- Job shop, OR-Library / JSPLIB format: ``#`` comment lines, then ``n_jobs n_machines``,
  then one line per job of ``machine duration`` pairs in processing order (machines from 0).
- Single-machine total weighted tardiness, OR-Library ``wt40.txt``: whitespace-separated
  integers, per instance ``n`` processing times, ``n`` weights, ``n`` due dates; the optima
  file holds one value per instance in the same order.
- Known optima: JSPLIB ``instances.json`` and ScheduleOpt ``bks.json``.

Nothing here imports ortools, so the CLI and tests can read files without the solver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple


class Operation(NamedTuple):
    machine: int
    duration: int


@dataclass(frozen=True)
class JobShop:
    """A job-shop instance: ``jobs[j][k]`` is the k-th operation of job j in routing order."""

    jobs: tuple[tuple[Operation, ...], ...]
    n_machines: int
    name: str = ""

    @property
    def n_jobs(self) -> int:
        return len(self.jobs)

    def horizon(self) -> int:
        """The sum of all durations: no active schedule ends later."""
        return sum(op.duration for job in self.jobs for op in job)

    def trivial_lower_bound(self) -> int:
        """max(longest job, busiest machine): a makespan can never be below it."""
        loads = [0] * self.n_machines
        for job in self.jobs:
            for op in job:
                loads[op.machine] += op.duration
        longest_job = max((sum(op.duration for op in job) for job in self.jobs), default=0)
        return max([longest_job, *loads])


@dataclass(frozen=True)
class WeightedTardiness:
    """1 || sum w_j T_j: processing times, weights and due dates, one entry per job."""

    processing: tuple[int, ...]
    weights: tuple[int, ...]
    due: tuple[int, ...]

    def __post_init__(self) -> None:
        if not len(self.processing) == len(self.weights) == len(self.due):
            raise ValueError("processing, weights and due must have the same length")
        if any(p <= 0 for p in self.processing) or any(w < 0 for w in self.weights):
            raise ValueError("processing times must be > 0 and weights >= 0")

    @property
    def n(self) -> int:
        return len(self.processing)


def _ints(text: str) -> list[int]:
    try:
        return [int(tok) for tok in text.split()]
    except ValueError as exc:
        raise ValueError(f"not an integer: {exc}") from None


def parse_jobshop(text: str, name: str = "") -> JobShop:
    """Parse one job-shop instance in the standard format; raise ValueError when malformed."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError("no data: expected 'n_jobs n_machines'")
    header = _ints(lines[0])
    if len(header) != 2 or header[0] <= 0 or header[1] <= 0:
        raise ValueError(f"bad header {lines[0]!r}: expected 'n_jobs n_machines'")
    n_jobs, n_machines = header
    if len(lines) - 1 < n_jobs:
        raise ValueError(f"expected {n_jobs} job lines, found {len(lines) - 1}")
    jobs: list[tuple[Operation, ...]] = []
    for j, line in enumerate(lines[1 : n_jobs + 1]):
        values = _ints(line)
        if not values or len(values) % 2:
            raise ValueError(f"job {j}: expected 'machine duration' pairs, got {line!r}")
        ops = tuple(Operation(values[i], values[i + 1]) for i in range(0, len(values), 2))
        for op in ops:
            if not 0 <= op.machine < n_machines:
                raise ValueError(f"job {j}: machine {op.machine} not in 0..{n_machines - 1}")
            if op.duration < 0:
                raise ValueError(f"job {j}: negative duration {op.duration}")
        jobs.append(ops)
    return JobShop(jobs=tuple(jobs), n_machines=n_machines, name=name)


def parse_wt(text: str, n: int = 40) -> list[WeightedTardiness]:
    """Parse an OR-Library weighted-tardiness file of instances with ``n`` jobs each."""
    values = _ints(text)
    block = 3 * n
    if not values or len(values) % block:
        raise ValueError(f"{len(values)} numbers is not a multiple of 3 x {n}")
    out = []
    for base in range(0, len(values), block):
        chunk = values[base : base + block]
        out.append(
            WeightedTardiness(
                processing=tuple(chunk[:n]),
                weights=tuple(chunk[n : 2 * n]),
                due=tuple(chunk[2 * n :]),
            )
        )
    return out


def parse_optima(text: str) -> list[int]:
    """One integer per instance (wtopt40.txt)."""
    return _ints(text)


def parse_jsp_optima(instances_json: str, bks_json: str | None = None) -> dict[str, int]:
    """Known optimal makespans by instance name (``ft10``, ``la01``, ``ta01`` ...).

    JSPLIB's ``instances.json`` is from 2014 and lists some Taillard instances as open, so a
    closed entry (lower == upper bound) of ScheduleOpt's ``bks.json`` overrides it; bks.json
    names Taillard instances ``ta01js``, mapped back to ``ta01``.
    """
    optima: dict[str, int] = {}
    for entry in json.loads(instances_json):
        if isinstance(entry.get("optimum"), int):
            optima[str(entry["name"])] = entry["optimum"]
    if bks_json is not None:
        for entry in json.loads(bks_json):
            closed = _closed_value(entry)
            if closed is not None:
                name = str(entry["instance"]).removesuffix("js")
                optima[name] = closed
    return optima


def _closed_value(entry: dict[str, Any]) -> int | None:
    lb, ub = entry.get("lower_bound"), entry.get("upper_bound")
    return ub if isinstance(lb, int) and isinstance(ub, int) and lb == ub else None
