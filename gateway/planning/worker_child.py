"""The solver's side of :mod:`gateway.planning.worker`: run as ``python -m
gateway.planning.worker_child``, never imported by the gateway (so the solver stays out of
its process, which import-linter checks).

It makes itself the machine's background citizen first (:func:`run_in_background`), then
reads ``(request, limits)`` pickled on stdin, caps its address space, and answers in frames
on stdout (``worker.write_frame``): the first plan as soon as it exists, then the final
one. The solver gets :func:`search_threads` threads, never every core. A request is a
:class:`~gateway.planning.worker.SolveRequest` (a problem) or a
:class:`~gateway.planning.line_plan.LineJob` (the line's database: see
gateway/planning/line_solve.py), or a :class:`~gateway.planning.capacity.CapacityJob` (the
line and a forecast: gateway/planning/capacity_solve.py).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import resource
import sys

__all__ = ["run_in_background"]

# The lowest nice value: what top and ps show for the worker, and all it has where
# SCHED_IDLE is not available.
_NICEST = 19


def run_in_background() -> str:
    """Give this process the lowest CPU priority there is; which one it got.

    The gateway's event loop answers the stations; the solver only improves a plan the line
    already works by. So the solver gets the CPU only when nothing else wants it:
    SCHED_IDLE, under which any normal thread waking up (the gateway's loop, an operator's
    request) preempts it at once, rather than waiting for its time slice as under nice 19
    alone. Linux keeps the policy and the nice value per thread and a new thread inherits
    its creator's, so this runs first, while the process still has its one thread: CP-SAT's
    search threads, started later, are background threads too. Lowering one's own priority
    needs no privilege (systemd's RestrictRealtime= only forbids the real-time policies).
    """
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, _NICEST)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or a seccomp filter said no
        return f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    return "idle"


def _main() -> int:
    # Before anything else uses the CPU (the imports below, the solver's threads).
    run_in_background()
    # Compare with the classes of the modules the parent pickled from, by their own names.
    from gateway.planning import worker
    from gateway.planning.capacity import CapacityJob
    from gateway.planning.cpu import search_threads
    from gateway.planning.line_plan import LineJob

    request, limits = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(limits, worker.WorkerLimits):
        sys.stderr.write("not a planning request\n")
        return 2
    limit = limits.memory_mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = sys.stdout.buffer
    threads = search_threads(limits.workers)

    def first(answer: object) -> None:
        worker.write_frame(out, worker.FIRST, pickle.dumps(answer))

    answer: object
    try:
        if isinstance(request, worker.SolveRequest):
            from gateway.planner.model import solve  # the ~80 MiB the gateway never pays

            answer = solve(
                request.problem,
                time_limit_s=limits.time_limit_s,
                workers=threads,
                hint=request.hint,
                on_first=first,
                patience_s=limits.patience_s,
            ).plan
        elif isinstance(request, LineJob):
            from gateway.planning.line_solve import solve_line

            answer = solve_line(
                request,
                time_limit_s=limits.time_limit_s,
                workers=threads,
                on_first=first,
                patience_s=limits.patience_s,
            )
        elif isinstance(request, CapacityJob):  # "can we take this promotion?"
            from gateway.planning.capacity_solve import answer_capacity

            answer = answer_capacity(request, workers=threads)
        else:
            sys.stderr.write(f"not a planning request: {type(request).__name__}\n")
            return 2
    except MemoryError:
        sys.stderr.write(f"out of memory (limit {limits.memory_mib} MiB)\n")
        return 3
    worker.write_frame(out, worker.FINAL, pickle.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
