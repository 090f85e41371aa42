"""CP-SAT job shop: real solves on tiny instances, checked against brute force and a checker."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.cli.plan_files import plan_jsp
from gateway.planner.instances import JobShop, Operation, parse_jobshop
from gateway.planner.jobshop import check_schedule, dispatch_schedule, solve_jobshop

# Fisher & Thompson ft06 (public OR-Library data); optimal makespan 55.
FT06 = """\
6 6
2  1  0  3  1  6  3  7  5  3  4  6
1  8  2  5  4 10  5 10  0 10  3  4
2  5  3  4  5  8  0  9  1  1  4  7
1  5  0  5  2  5  3  3  4  8  5  9
2  9  1  3  4  5  5  4  0  3  3  1
1  3  3  3  5  9  0 10  4  4  2  1
"""


def random_shop(rng: random.Random, n_jobs: int, n_machines: int) -> JobShop:
    jobs = []
    for _ in range(n_jobs):
        machines = list(range(n_machines))
        rng.shuffle(machines)
        jobs.append(tuple(Operation(m, rng.randint(1, 9)) for m in machines))
    return JobShop(jobs=tuple(jobs), n_machines=n_machines)


def brute_force_makespan(shop: JobShop) -> int:
    """Optimum by enumerating every job order on every machine (semi-active schedules)."""
    ops_on: dict[int, list[tuple[int, int]]] = {}
    for j, job in enumerate(shop.jobs):
        for k, op in enumerate(job):
            ops_on.setdefault(op.machine, []).append((j, k))
    machines = sorted(ops_on)
    best = shop.horizon()
    for orders in itertools.product(*(itertools.permutations(ops_on[m]) for m in machines)):
        # Each machine's predecessor of an operation under this choice of orders.
        before = {}
        for order in orders:
            for a, b in itertools.pairwise(order):
                before[b] = a
        end: dict[tuple[int, int], int] = {}
        pending = [(j, k) for j, job in enumerate(shop.jobs) for k in range(len(job))]
        while pending:
            progressed = False
            for key in list(pending):
                j, k = key
                deps = [d for d in ((j, k - 1) if k else None, before.get(key)) if d is not None]
                if all(d in end for d in deps):
                    start = max((end[d] for d in deps), default=0)
                    end[key] = start + shop.jobs[j][k].duration
                    pending.remove(key)
                    progressed = True
            if not progressed:
                break  # the machine orders contradict the routings: a cycle
        if not pending:
            best = min(best, max(end.values()))
    return best


def test_ft06_is_solved_to_its_optimum_55() -> None:
    shop = parse_jobshop(FT06)
    result = solve_jobshop(shop, time_limit_s=2.0)
    assert result.status == "OPTIMAL"
    assert result.optimal
    assert result.makespan == result.bound == 55
    assert check_schedule(shop, result.starts) == 55
    assert result.improvements  # the progress callback saw the solutions
    assert result.time_to_best_s <= result.wall_s


@pytest.mark.parametrize("seed", range(5))
def test_small_random_shops_match_brute_force(seed: int) -> None:
    shop = random_shop(random.Random(seed), n_jobs=3, n_machines=3)
    result = solve_jobshop(shop, time_limit_s=2.0)
    assert result.status == "OPTIMAL"
    assert check_schedule(shop, result.starts) == result.makespan
    assert result.makespan == brute_force_makespan(shop)


@pytest.mark.parametrize("seed", range(10))
def test_dispatch_schedule_is_feasible_and_not_below_the_optimum(seed: int) -> None:
    rng = random.Random(100 + seed)
    shop = random_shop(rng, n_jobs=rng.randint(1, 6), n_machines=rng.randint(1, 4))
    makespan = check_schedule(shop, dispatch_schedule(shop))
    assert shop.trivial_lower_bound() <= makespan <= shop.horizon()


def test_jobs_of_unequal_length_and_zero_durations() -> None:
    shop = JobShop(
        jobs=(
            (Operation(0, 4), Operation(1, 0), Operation(1, 3)),
            (Operation(1, 2),),
            (),
        ),
        n_machines=2,
    )
    result = solve_jobshop(shop, time_limit_s=2.0)
    assert result.status == "OPTIMAL"
    assert result.makespan == check_schedule(shop, result.starts) == 7
    assert result.starts[2] == []


def test_the_hint_is_used_and_a_bad_hint_is_harmless() -> None:
    shop = parse_jobshop(FT06)
    optimal = solve_jobshop(shop, time_limit_s=2.0)
    again = solve_jobshop(shop, time_limit_s=2.0, hint=optimal.starts, seed=1)
    assert again.makespan == 55
    overlapping = [[0] * 6 for _ in range(6)]
    bad = solve_jobshop(shop, time_limit_s=2.0, hint=overlapping)
    assert bad.makespan == check_schedule(shop, bad.starts) == 55
    wrong_shape = solve_jobshop(shop, time_limit_s=2.0, hint=[[0]])
    assert wrong_shape.makespan == 55


def test_check_schedule_rejects_infeasible_schedules() -> None:
    shop = JobShop(jobs=((Operation(0, 3), Operation(1, 2)), (Operation(0, 2),)), n_machines=2)
    assert check_schedule(shop, [[0, 3], [3]]) == 5
    with pytest.raises(ValueError, match="overlap"):
        check_schedule(shop, [[0, 3], [2]])
    with pytest.raises(ValueError, match="before 3"):
        check_schedule(shop, [[0, 2], [3]])
    with pytest.raises(ValueError, match="rows"):
        check_schedule(shop, [[0, 3]])
    with pytest.raises(ValueError, match="1 starts for 2"):
        check_schedule(shop, [[0], [3]])


def test_bad_limits_are_rejected() -> None:
    shop = parse_jobshop(FT06)
    with pytest.raises(ValueError):
        solve_jobshop(shop, time_limit_s=0)
    with pytest.raises(ValueError):
        solve_jobshop(shop, time_limit_s=1, workers=0)


def test_plan_jsp_returns_the_cli_json(tmp_path: Path) -> None:
    path = tmp_path / "ft06.txt"
    path.write_text("# ft06\n" + FT06)
    called = time.perf_counter()
    out = plan_jsp(path, time_limit_s=2.0)
    took = time.perf_counter() - called
    assert json.loads(json.dumps(out)) == out
    assert out["makespan"] == 55
    assert out["status"] == "OPTIMAL"
    assert out["bound"] == 55
    # The solve's own time: some, and no more than the whole call took (the answer rounds
    # it to the millisecond, which may add up to half of one).
    assert 0 < out["wall_s"] <= took + 0.0005
    shop = parse_jobshop(FT06)
    assert [len(row) for row in out["starts"]] == [6] * 6
    assert check_schedule(shop, out["starts"]) == 55


def test_plan_jsp_rejects_a_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("2 2\n0 1 1\n")
    with pytest.raises(ValueError):
        plan_jsp(path, time_limit_s=1.0)


def test_importing_the_cli_entry_does_not_load_the_solver() -> None:
    # The CLI module imports cli_files at start-up; ortools must load only when solving.
    code = "import sys, gateway.cli.plan_files; print('ortools' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_the_benchmark_script_runs_on_a_data_folder(tmp_path: Path) -> None:
    # CI may lack ../shared: give the script its own tiny folder in the same layout.
    (tmp_path / "jsp" / "instances").mkdir(parents=True)
    (tmp_path / "jsp" / "instances" / "ft06").write_text(FT06)
    (tmp_path / "jsp" / "instances.json").write_text('[{"name": "ft06", "optimum": 55}]')
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_solver.py"
    args = ["jsp", "--instances", "ft06", "--runs", "2", "--time-limit", "1"]
    out = subprocess.run(
        [sys.executable, str(script), *args, "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    *runs, summary = (json.loads(line) for line in out.stdout.splitlines())
    assert [r["makespan"] for r in runs] == [55, 55]
    assert summary["runs_at_optimum"] == {"ft06": "2/2"}
    assert summary["mean_gap_pct"] == 0.0
