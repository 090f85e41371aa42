"""The solver in its own process: a plan comes back; a killed, starved or overdue worker
costs the plan (SolverFailed), never the caller."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.planner.feasibility import check_plan
from gateway.planner.problem import Plan, Problem, metrics
from gateway.planning.cpu import CpuRate, quota_cores, search_threads
from gateway.planning.worker import PlanWorker, SolverFailed, WorkerLimits
from tests.planner.builders import small_generated

ROOT = Path(__file__).resolve().parents[2]


def generated(orders: int) -> Problem:
    return small_generated(orders=orders, seed=5)


async def test_a_plan_comes_back_from_the_worker_and_is_feasible() -> None:
    problem = generated(10)
    plan = await PlanWorker().solve(problem, WorkerLimits(time_limit_s=1.0))
    assert check_plan(problem, plan) == []
    assert set(plan.assignments) == {t.id for t in problem.tasks}


async def test_the_first_plan_comes_long_before_the_final_one() -> None:
    # A surge-sized problem: the solver spends its whole limit improving the first plan.
    problem = generated(400)
    firsts: list[tuple[float, Plan]] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    final = await PlanWorker().solve(
        problem,
        WorkerLimits(time_limit_s=4.0),
        on_first=lambda plan: firsts.append((loop.time() - t0, plan)),
    )
    took = loop.time() - t0
    [(at, first)] = firsts
    assert at < took - 2.0  # it came while the solver still had seconds to go
    assert check_plan(problem, first) == []
    assert check_plan(problem, final) == []
    assert metrics(problem, final).cost() <= metrics(problem, first).cost()


async def test_a_killed_worker_costs_the_plan_not_the_caller() -> None:
    worker = PlanWorker()
    solving = asyncio.create_task(worker.solve(generated(400), WorkerLimits(time_limit_s=30.0)))
    async with asyncio.timeout(10):
        while not worker.running:  # noqa: ASYNC110 - the child's start is what we wait for
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    await worker.stop()
    with pytest.raises(SolverFailed, match="exited with -9"):
        await solving
    assert not worker.running


async def test_a_worker_over_its_memory_limit_fails_cleanly() -> None:
    with pytest.raises(SolverFailed, match="exited with"):
        await PlanWorker().solve(generated(10), WorkerLimits(time_limit_s=1.0, memory_mib=64))


async def test_a_worker_past_its_deadline_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.planning.worker._GRACE_S", 0.0)
    # The interpreter and ortools alone take longer than a 50 ms deadline.
    with pytest.raises(SolverFailed, match="took longer"):
        await PlanWorker().solve(generated(10), WorkerLimits(time_limit_s=0.05))


def test_the_worker_module_does_not_bring_the_solver_into_the_caller() -> None:
    code = "import sys, gateway.planning.worker; print('ortools' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_solver_keeps_a_core_free_for_the_gateway() -> None:
    # [planner] workers is a ceiling: one thread fewer than the cores, at least one.
    assert search_threads(2, cpus=2) == 1
    assert search_threads(16, cpus=2) == 1
    assert search_threads(2, cpus=1) == 1
    assert search_threads(2, cpus=4) == 2  # a Raspberry Pi 5 with the default
    assert search_threads(8, cpus=4) == 3
    assert search_threads(1, cpus=64) == 1


def _threads(pid: int) -> dict[int, tuple[int, int]]:
    """Every thread of ``pid``: its scheduling policy and nice value (those that ended
    while we looked are left out)."""
    out: dict[int, tuple[int, int]] = {}
    for tid in (int(p.name) for p in Path(f"/proc/{pid}/task").iterdir()):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            out[tid] = (os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid))
    return out


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
async def test_the_worker_solves_in_the_background_with_its_threads_capped() -> None:
    # Asked for 16 search threads: the worker takes cores - 1, and every thread it has,
    # CP-SAT's included, runs under SCHED_IDLE at nice 19.
    worker = PlanWorker()
    firsts: list[Plan] = []
    solving = asyncio.create_task(
        worker.solve(
            generated(400), WorkerLimits(time_limit_s=3.0, workers=16), None, firsts.append
        )
    )
    seen: list[dict[int, tuple[int, int]]] = []
    try:
        async with asyncio.timeout(30):
            while not firsts:  # noqa: ASYNC110 - the search runs once the first plan is out
                await asyncio.sleep(0.01)
            while (pid := worker.pid) is not None:
                with contextlib.suppress(FileNotFoundError):
                    seen.append(_threads(pid))
                await asyncio.sleep(0.05)
    finally:
        plan = await solving
    assert plan.assignments
    assert len(seen) >= 10
    policies = {policy for sample in seen for policy, _ in sample.values()}
    nice = {value for sample in seen for _, value in sample.values()}
    assert policies == {os.SCHED_IDLE} and nice == {19}
    # The interpreter's thread, CP-SAT's own, and its search threads.
    cap = search_threads(16, cpus=len(os.sched_getaffinity(0)))
    assert max(len(sample) for sample in seen) <= cap + 2


async def test_under_a_cpu_quota_the_worker_runs_only_its_share_of_the_time() -> None:
    # A budget of 0.3 cores for its one search thread: the pacer stops and continues it so
    # that it runs about 30 % of the time, and leaves it running to finish.
    worker = PlanWorker()
    limits = WorkerLimits(time_limit_s=3.0, workers=1)
    solving = asyncio.create_task(worker.solve(generated(400), limits, budget=lambda: 0.3))
    states: list[str] = []
    try:
        async with asyncio.timeout(30):
            while worker.pid is None:  # noqa: ASYNC110 - the worker's process is starting
                await asyncio.sleep(0.001)
            pid = worker.pid
            while worker.pid == pid and len(states) < 600:
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    states.append(_state(pid))
                await asyncio.sleep(0.005)
    finally:
        plan = await solving
    assert plan.assignments  # it finished, paced
    stopped = states.count("T") / len(states)
    assert len(states) >= 100
    # Stopped about 70 % of the time (the turns are 50 ms; sampling is coarse).
    assert 0.45 < stopped < 0.9, (stopped, len(states))


async def test_without_a_quota_the_worker_is_never_stopped() -> None:
    worker = PlanWorker()
    solving = asyncio.create_task(worker.solve(generated(200), WorkerLimits(time_limit_s=1.0)))
    states: list[str] = []
    try:
        async with asyncio.timeout(30):
            while worker.pid is None:  # noqa: ASYNC110 - the worker's process is starting
                await asyncio.sleep(0.001)
            pid = worker.pid
            while worker.pid == pid:
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    states.append(_state(pid))
                await asyncio.sleep(0.005)
    finally:
        await solving
    assert len(states) >= 20 and "T" not in states


def test_the_quota_is_read_from_cgroup_v1_and_v2(tmp_path: Path) -> None:
    # v2: a quota of 1.2 cores two levels up, none below; the tightest one counts.
    v2 = tmp_path / "v2"
    (v2 / "box" / "gw").mkdir(parents=True)
    (v2 / "cpu.max").write_text("max 100000\n")
    (v2 / "box" / "cpu.max").write_text("120000 100000\n")
    (v2 / "box" / "gw" / "cpu.max").write_text("max 100000\n")
    proc = tmp_path / "cgroup-v2"
    proc.write_text("0::/box/gw\n")
    assert quota_cores(proc, v2) == pytest.approx(1.2)
    # v1: the cpu controller's own mount, a quota of half a core on the group itself.
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "lg").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "cpu,cpuacct" / "lg" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu,cpuacct" / "lg" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "cgroup-v1"
    proc.write_text("12:memory:/lg\n4:cpu,cpuacct:/lg\n1:name=systemd:/lg\n")
    assert quota_cores(proc, v1) == pytest.approx(0.5)
    # No quota anywhere, or no cgroup file at all.
    proc.write_text("4:cpu,cpuacct:/\n")
    assert quota_cores(proc, v1) is None
    assert quota_cores(tmp_path / "absent", v1) is None


def _state(pid: int) -> str:
    """A process's state letter (R, S, T for stopped …): the field after the command."""
    with open(f"/proc/{pid}/stat") as f:  # noqa: PTH123 - a tiny read of procfs
        return f.read().rsplit(")", 1)[1].split()[0]


def test_the_gateways_own_cpu_use_rises_at_once_and_falls_gently() -> None:
    wall, cpu = [0.0], [0.0]
    rate = CpuRate(clock=lambda: wall[0], cpu=lambda: cpu[0])
    wall[0], cpu[0] = 0.5, 0.25  # half a core over half a second
    assert rate.sample() == pytest.approx(0.5)
    wall[0], cpu[0] = 0.6, 0.25  # too soon to say anything new
    assert rate.sample() == pytest.approx(0.5)
    wall[0], cpu[0] = 1.0, 0.25  # idle for 0.5 s: down by 30 % of the difference
    assert rate.sample() == pytest.approx(0.7 * 0.5)
    wall[0], cpu[0] = 1.5, 0.75  # a full core again: at once
    assert rate.sample() == pytest.approx(1.0)
