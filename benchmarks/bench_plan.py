"""The fulfilment benchmark of issue 4: the CP-SAT plan against the dispatch rules.

    .venv/bin/python benchmarks/bench_plan.py --scenario surge
    .venv/bin/python benchmarks/bench_plan.py --scenario normal --time-limit 10 --json
    .venv/bin/python benchmarks/bench_plan.py --scenario surge --as-worker

A scenario (gateway/planner/scenarios.py) is generated from the reference catalog and the
reference line. Each plan (FIFO, EDD, ATC, and the planner's) is executed by the
simulation (gateway/planner/execution.py) and measured there: orders late, total weighted
lateness (Σ priority × seconds after ship_by), setup time, makespan. Every executed plan
is also checked by the feasibility checker. Only the repository is needed, not
../shared/benchmarks. ``--as-worker`` solves as the gateway's worker process does: at the
lowest CPU priority, with its search threads capped below the core count
(gateway/planning/worker_child.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config.line import PlannerSection  # noqa: E402
from gateway.planner import scenarios  # noqa: E402
from gateway.planner.execution import execute_plan  # noqa: E402
from gateway.planner.feasibility import check_plan  # noqa: E402
from gateway.planner.model import solve  # noqa: E402
from gateway.planner.problem import Metrics, Plan, Problem, metrics  # noqa: E402
from gateway.planner.rules import RULES, dispatch  # noqa: E402
from gateway.planning.cpu import search_threads  # noqa: E402
from gateway.planning.worker_child import run_in_background  # noqa: E402


def measured(problem: Problem, plan: Plan) -> tuple[Metrics, int]:
    """The executed plan's figures, and how many feasibility violations it has."""
    executed = execute_plan(problem, plan)
    return metrics(problem, executed), len(check_plan(problem, executed))


def row(name: str, m: Metrics, seconds: float, violations: int) -> dict[str, Any]:
    return {
        "plan": name,
        "orders_late": m.orders_late,
        "weighted_late": m.weighted_late,
        "weighted_lateness": m.weighted_lateness,
        "setup_s": m.setup_s,
        "makespan_s": m.makespan,
        "plan_s": round(seconds, 3),
        "violations": violations,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["normal", "surge"], default="surge")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help="the scenario's seed")
    parser.add_argument("--today", type=float, default=None, help="share promised for today")
    parser.add_argument(
        "--catalog", type=Path, default=ROOT / "simulators/data/reference-catalog.json"
    )
    parser.add_argument("--stations", type=Path, default=ROOT / "station_configs/reference-line")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--as-worker",
        action="store_true",
        help="solve as the gateway's worker: lowest CPU priority, threads capped, and the "
        "line's default patience (stop after --patience s without a better plan)",
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=None,
        help="end the search after this long without a better plan",
    )
    args = parser.parse_args()

    catalog = scenarios.read_catalog(args.catalog)
    line = scenarios.read_line(args.stations)
    problem = scenarios.scenario(
        args.scenario, catalog, line, seed=args.seed, today_share=args.today
    )
    rows: list[dict[str, Any]] = []
    for rule in RULES:
        t0 = time.perf_counter()
        plan = dispatch(problem, rule)
        seconds = time.perf_counter() - t0
        rows.append(row(rule, *_swap(measured(problem, plan), seconds)))
    workers, priority = args.workers, "normal"
    loadavg = os.getloadavg()[0]
    patience = args.patience
    if args.as_worker:
        # The rules above ran at the normal priority; the solver's threads start below.
        priority, workers = run_in_background(), search_threads(args.workers)
        if patience is None:
            patience = PlannerSection().patience_s
    result = solve(problem, time_limit_s=args.time_limit, workers=workers, patience_s=patience)
    first_m, first_v = measured(problem, result.first_plan)
    rows.append(row("first plan (ATCS)", first_m, result.first_plan_s, first_v))
    final_m, final_v = measured(problem, result.plan)
    rows.append(row(f"cp-sat ({result.mode})", final_m, result.wall_s, final_v))
    best = min(rows[: len(RULES)], key=lambda r: (r["weighted_lateness"], r["orders_late"]))
    fewest_late = min(r["orders_late"] for r in rows[: len(RULES)])
    summary = {
        "scenario": args.scenario,
        "orders": len(problem.orders),
        "tasks": len(problem.tasks),
        "time_limit_s": args.time_limit,
        "workers": workers,
        "priority": priority,
        "patience_s": patience,
        "loadavg_1min_at_start": round(loadavg, 2),
        "solver_status": result.status,
        "lns_windows": result.windows,
        "lns_improved": result.improved,
        "exact_lexicographic_weights": result.lexicographic,
        "first_plan_s": round(result.first_plan_s, 3),
        "final_plan_s": round(result.wall_s, 3),
        "best_rule": best["plan"],
        "weighted_lateness_vs_best_rule_pct": _pct(
            final_m.weighted_lateness, best["weighted_lateness"]
        ),
        "orders_late_vs_fewest_of_rules": final_m.orders_late - fewest_late,
        "cp_sat_vs_first_plan_pct": _pct(final_m.weighted_lateness, first_m.weighted_lateness),
    }
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}, indent=2))
        return 0
    print(
        f"{'plan':<20} {'late':>5} {'w.late':>7} {'w.lateness':>12} {'setup s':>8} "
        f"{'makespan s':>10} {'plan s':>7} {'viol':>4}"
    )
    for r in rows:
        print(
            f"{r['plan']:<20} {r['orders_late']:>5} {r['weighted_late']:>7} "
            f"{r['weighted_lateness']:>12} {r['setup_s']:>8} {r['makespan_s']:>10} "
            f"{r['plan_s']:>7} {r['violations']:>4}"
        )
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


def _swap(pair: tuple[Metrics, int], seconds: float) -> tuple[Metrics, float, int]:
    return pair[0], seconds, pair[1]


def _pct(value: int, base: int) -> float | None:
    return None if base == 0 else round(100.0 * (value - base) / base, 1)


if __name__ == "__main__":
    raise SystemExit(main())
