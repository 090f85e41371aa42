"""The solver in a process of its own, with a time limit and a memory limit.

The gateway asks :class:`PlanWorker` for a plan; a fresh interpreter (``python -m
gateway.planner.worker``) reads the problem on stdin, caps its own address space,
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
import resource
import sys
from dataclasses import dataclass

from gateway.planner.problem import Plan, Problem

__all__ = ["PlanWorker", "SolverFailed", "WorkerLimits"]

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
class _Request:
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
        request = pickle.dumps(_Request(problem, hint, limits))
        proc = await asyncio.create_subprocess_exec(
            self._python,
            "-m",
            "gateway.planner.worker",
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


def _main() -> int:
    # Run as __main__, this module's classes are not the ones the parent pickled: compare
    # with the module under its own name.
    from gateway.planner import worker

    request = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(request, worker._Request):
        sys.stderr.write("not a planning request\n")
        return 2
    limit = request.limits.memory_mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        from gateway.planner.model import solve  # the ~80 MiB the gateway never pays

        result = solve(
            request.problem,
            time_limit_s=request.limits.time_limit_s,
            workers=request.limits.workers,
            hint=request.hint,
        )
    except MemoryError:
        sys.stderr.write(f"out of memory (limit {request.limits.memory_mib} MiB)\n")
        return 3
    sys.stdout.buffer.write(pickle.dumps(result.plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
