"""The solver in a process of its own, with a time limit and a memory limit.

The gateway asks :class:`PlanWorker` for a plan; a fresh interpreter (``python -m
gateway.planning.worker_child``) puts itself last in line for the CPU (SCHED_IDLE, its
search threads capped below the core count: the station API always wins), reads the
problem on stdin, caps its own address space, imports the solver (~80 MiB that never
enter the gateway's process), solves, and writes its first plan on stdout as soon as it
has one (well under a second), then the final plan at the end of its time limit.
Whatever happens to it (killed, out of memory, a crash in the solver's C++, past its
deadline, starved of CPU by a busy line), the gateway gets :class:`SolverFailed` and keeps
its line on its last plan or the dispatch rule; a crash costs a plan, not the line.

The problem and the plan travel pickled: both ends are this package, the channel is a
pipe between parent and child, nothing else reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from gateway.planner.problem import Plan, Problem
from gateway.planning.cpu import MIN_FRACTION, Pacer, search_threads

__all__ = ["PlanWorker", "SolveRequest", "SolverFailed", "WorkerLimits"]

T = TypeVar("T")

# What the worker may take beyond the solver's own limit: its start (the interpreter and
# the ortools import, ~0.5 s) and writing the plan back.
_GRACE_S = 5.0


# The child's answer: frames of (kind, length, pickled plan). FIRST comes as soon as the
# first plan exists (the solver then improves it for the rest of its time), FINAL last.
FIRST, FINAL = b"F", b"P"
_HEADER = struct.Struct(">cQ")


def write_frame(out: BinaryIO, kind: bytes, body: bytes) -> None:
    out.write(_HEADER.pack(kind, len(body)) + body)
    out.flush()


class SolverFailed(RuntimeError):
    """No plan: the worker died, ran out of memory or time, or could not solve."""


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    time_limit_s: float = 10.0
    memory_mib: int = 1024  # the worker's address space (RLIMIT_AS), threads included
    workers: int = 2  # CP-SAT search threads, at most cores - 1 (gateway/planning/cpu.py)
    # The search ends once it found nothing better for this long (None: the time limit).
    patience_s: float | None = None


@dataclass(frozen=True, slots=True)
class SolveRequest:
    """A problem to solve (the line's own plans are ``gateway.planning.line_plan.LineJob``)."""

    problem: Problem
    hint: Plan | None


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

    async def solve(
        self,
        problem: Problem,
        limits: WorkerLimits,
        hint: Plan | None = None,
        on_first: Callable[[Plan], None] | None = None,
        budget: Callable[[], float] | None = None,
    ) -> Plan:
        """The final plan of ``problem``; ``on_first`` gets the first plan as soon as the
        child has it."""
        first = _typed(Plan, on_first)
        return _check(Plan, await self.run(SolveRequest(problem, hint), limits, first, budget))

    async def run(
        self,
        request: object,
        limits: WorkerLimits,
        on_first: Callable[[object], None] | None = None,
        budget: Callable[[], float] | None = None,
    ) -> object:
        """Send ``request`` (a :class:`SolveRequest` or a ``gateway.planning.line_plan.LineJob``)
        to a new child; its final answer, ``on_first`` called with its first one.
        ``budget``: under a CPU quota, the cores' worth of CPU time the child may use now
        (asked again every 50 ms; gateway/planning/cpu.py); None: it is not paced."""
        if self.running:
            raise SolverFailed("a solve is already running")
        data = pickle.dumps((request, limits))
        proc = await asyncio.create_subprocess_exec(
            self._python,
            "-m",
            "gateway.planning.worker_child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**16,
        )
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        errors = asyncio.ensure_future(proc.stderr.read())
        pacer = Pacer(proc.pid, search_threads(limits.workers), budget) if budget else None
        if pacer is not None:
            pacer.start()
        try:
            # A paced worker does its start and its answer at a fraction of the speed too.
            grace = _GRACE_S / (MIN_FRACTION if pacer is not None else 1.0)
            async with asyncio.timeout(limits.time_limit_s + grace):
                proc.stdin.write(data)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await proc.stdin.drain()
                proc.stdin.close()
                while True:
                    frame = await _read_frame(proc.stdout)
                    if frame is None:
                        await proc.wait()
                        break
                    kind, answer = frame
                    if kind == FINAL:
                        await proc.wait()
                        return answer
                    if on_first is not None:
                        on_first(answer)
        except TimeoutError:
            raise SolverFailed(
                f"the solver took longer than {limits.time_limit_s + grace:g} s"
            ) from None
        finally:
            if pacer is not None:
                await pacer.stop()
            # Cancelled, timed out or done: the child never outlives the request.
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            self._proc = None
            err = await errors
        why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise SolverFailed(f"the solver exited with {proc.returncode}: {why[0]}")

    async def stop(self) -> None:
        """Kill a running solve (its ``solve`` raises SolverFailed)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


async def _read_frame(stream: asyncio.StreamReader) -> tuple[bytes, object] | None:
    """The next frame, or None when the child ended without one."""
    try:
        header = await stream.readexactly(_HEADER.size)
        kind, length = _HEADER.unpack(header)
        body = await stream.readexactly(length)
    except asyncio.IncompleteReadError:
        return None
    if kind not in (FIRST, FINAL):
        raise SolverFailed(f"unreadable answer from the solver: frame {kind!r}")
    try:
        return kind, pickle.loads(body)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise SolverFailed(f"unreadable answer from the solver: {exc!r}") from None


def _check(kind: type[T], answer: object) -> T:
    if not isinstance(answer, kind):
        raise SolverFailed(f"the solver answered a {type(answer).__name__}, not a {kind.__name__}")
    return answer


def _typed(kind: type[T], callback: Callable[[T], None] | None) -> Callable[[object], None] | None:
    if callback is None:
        return None
    return lambda answer: callback(_check(kind, answer))
