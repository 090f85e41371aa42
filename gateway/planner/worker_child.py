"""The solver's side of :mod:`gateway.planner.worker`: run as ``python -m
gateway.planner.worker_child``, never imported by the gateway (so the solver stays out of
its process, which import-linter checks).

It answers in frames on stdout (see ``worker.read_frame``): the first plan as soon as it
exists, then the final one.
"""

from __future__ import annotations

import pickle
import resource
import sys


def _main() -> int:
    # Compare with the classes of the module the parent pickled from, by its own name.
    from gateway.planner import worker

    request = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(request, worker.SolveRequest):
        sys.stderr.write("not a planning request\n")
        return 2
    limit = request.limits.memory_mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = sys.stdout.buffer

    def first(plan: object) -> None:
        worker.write_frame(out, worker.FIRST, pickle.dumps(plan))

    try:
        from gateway.planner.model import solve  # the ~80 MiB the gateway never pays

        result = solve(
            request.problem,
            time_limit_s=request.limits.time_limit_s,
            workers=request.limits.workers,
            hint=request.hint,
            on_first=first,
        )
    except MemoryError:
        sys.stderr.write(f"out of memory (limit {request.limits.memory_mib} MiB)\n")
        return 3
    worker.write_frame(out, worker.FINAL, pickle.dumps(result.plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
