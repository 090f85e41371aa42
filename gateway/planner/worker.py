"""The solver in a process of its own, with a time limit and a memory limit.

The gateway asks :class:`PlanWorker` for a plan; a fresh interpreter (``python -m
gateway.planner.worker_child``) reads the problem on stdin, caps its own address space,
imports the solver (~80 MiB that never enter the gateway's process), solves, and writes the
plan on stdout. Whatever happens to it (killed, out of memory, a crash in the solver's C++,
past its deadline), the gateway gets :class:`SolverFailed` and keeps its line on the
dispatch rule; a crash costs a plan, not the line.

The problem and the plan travel pickled: both ends are this package, the channel is a
pipe between parent and child, nothing else reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
from dataclasses import dataclass

from gateway.planner.problem import Plan, Problem

__all__ = ["PlanWorker", "SolveRequest", "SolverFailed", "WorkerLimits"]

# What the worker may take beyond the solver's own limit: its start (the interpreter and
# the ortools import, ~0.5 s) and writing the plan back.
_GRACE_S = 5.0


class SolverFailed(RuntimeError):
    """No plan: the worker died, ran out of memory or time, or could not solve."""


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    time_limit_s: float = 10.0
    memory_mib: int = 1024  # the worker's address space (RLIMIT_AS), threads included
    workers: int = 2  # CP-SAT search threads


@dataclass(frozen=True, slots=True)
class SolveRequest:
    """What the worker process is sent: the problem, the hint, its limits."""

    problem: Problem
    hint: Plan | None
    limits: WorkerLimits


class PlanWorker:
    """Runs one solve at a time in a child process; ``stop`` kills a running one."""

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        """The running solve's process id (None when idle)."""
        return self._proc.pid if self.running and self._proc is not None else None

    async def solve(self, problem: Problem, limits: WorkerLimits, hint: Plan | None = None) -> Plan:
        if self.running:
            raise SolverFailed("a solve is already running")
        request = pickle.dumps(SolveRequest(problem, hint, limits))
        proc = await asyncio.create_subprocess_exec(
            self._python,
            "-m",
            "gateway.planner.worker_child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._proc = proc
        try:
            async with asyncio.timeout(limits.time_limit_s + _GRACE_S):
                out, err = await proc.communicate(request)
        except TimeoutError:
            raise SolverFailed(
                f"the solver took longer than {limits.time_limit_s + _GRACE_S:g} s"
            ) from None
        finally:
            # Cancelled, timed out or done: the child never outlives the request.
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            self._proc = None
        if proc.returncode != 0:
            why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            raise SolverFailed(f"the solver exited with {proc.returncode}: {why[0]}")
        try:
            plan = pickle.loads(out)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise SolverFailed(f"unreadable answer from the solver: {exc!r}") from None
        if not isinstance(plan, Plan):
            raise SolverFailed(f"the solver answered a {type(plan).__name__}, not a plan")
        return plan

    async def stop(self) -> None:
        """Kill a running solve (its ``solve`` raises SolverFailed)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
