"""The solver's side of :mod:`gateway.planning.worker`: run as ``python -m
gateway.planning.worker_child``, never imported by the gateway (so the solver stays out of
its process, which import-linter checks).

It reads ``(request, limits)`` pickled on stdin, caps its address space, and answers in
frames on stdout (``worker.write_frame``): the first plan as soon as it exists, then the
final one. A request is a :class:`~gateway.planning.worker.SolveRequest` (a problem) or a
:class:`~gateway.planning.line_plan.LineJob` (the line's database: see
gateway/planning/line_solve.py).
"""

from __future__ import annotations

import pickle
import resource
import sys


def _main() -> int:
    # Compare with the classes of the modules the parent pickled from, by their own names.
    from gateway.planning import worker
    from gateway.planning.line_plan import LineJob

    request, limits = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(limits, worker.WorkerLimits):
        sys.stderr.write("not a planning request\n")
        return 2
    limit = limits.memory_mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = sys.stdout.buffer

    def first(answer: object) -> None:
        worker.write_frame(out, worker.FIRST, pickle.dumps(answer))

    answer: object
    try:
        if isinstance(request, worker.SolveRequest):
            from gateway.planner.model import solve  # the ~80 MiB the gateway never pays

            answer = solve(
                request.problem,
                time_limit_s=limits.time_limit_s,
                workers=limits.workers,
                hint=request.hint,
                on_first=first,
            ).plan
        elif isinstance(request, LineJob):
            from gateway.planning.line_solve import solve_line

            answer = solve_line(
                request, time_limit_s=limits.time_limit_s, workers=limits.workers, on_first=first
            )
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
