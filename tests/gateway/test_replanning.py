"""Replanning: triggered by events and the clock, coalesced, surviving a dead solver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.planner.feasibility import check_plan
from gateway.planner.problem import Plan, Problem
from gateway.planning.replanning import Replanner
from gateway.planning.worker import PlanWorker, WorkerLimits
from tests.planner.builders import small_generated


async def _until(pred: Callable[[], object], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.01)


class Counting:
    """A plan function that takes ``seconds`` and counts its calls (the reasons given)."""

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.seconds = seconds
        self.fail = fail

    async def __call__(self, previous: int | None, reasons: tuple[str, ...]) -> int:
        self.calls.append(reasons)
        await asyncio.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("the solver died")
        return (previous or 0) + 1


async def test_a_burst_of_events_makes_one_replan() -> None:
    plan = Counting()
    replanner: Replanner[int] = Replanner(plan, interval_s=3600, settle_s=0.1)
    task = asyncio.create_task(replanner.run())
    try:
        for i in range(100):
            replanner.request("orders arrived" if i % 2 else "shortage cleared")
        await _until(lambda: replanner.stats.replans == 1)
        await asyncio.sleep(0.3)
        assert plan.calls == [("shortage cleared", "orders arrived")]
        assert replanner.stats.requests["orders arrived"] == 50
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_requests_during_a_replan_make_exactly_one_more() -> None:
    plan = Counting(seconds=0.3)
    replanner: Replanner[int] = Replanner(plan, interval_s=3600, settle_s=0.05)
    task = asyncio.create_task(replanner.run())
    try:
        replanner.request("orders arrived")
        await _until(lambda: len(plan.calls) == 1)
        for _ in range(10):
            replanner.request("station down")
        await _until(lambda: replanner.stats.replans == 2)
        await asyncio.sleep(0.5)
        assert plan.calls == [("orders arrived",), ("station down",)]
        assert replanner.current == 2  # each replan started from the previous plan
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_clock_triggers_a_replan() -> None:
    plan = Counting()
    replanner: Replanner[int] = Replanner(plan, interval_s=0.2, settle_s=0.01)
    task = asyncio.create_task(replanner.run())
    try:
        await _until(lambda: replanner.stats.replans >= 2, within=5)
        assert set(plan.calls) == {("interval",)}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_killed_solver_keeps_the_last_plan_and_the_next_request_tries_again() -> None:
    problem: Problem = small_generated(orders=8, seed=2)
    worker = PlanWorker()
    limits = WorkerLimits(time_limit_s=1.0)

    async def plan(previous: Plan | None, reasons: tuple[str, ...]) -> Plan:
        return await worker.solve(problem, limits, previous)

    replanner: Replanner[Plan] = Replanner(plan, interval_s=3600, settle_s=0.01)
    task = asyncio.create_task(replanner.run())
    try:
        replanner.request("orders arrived")
        await _until(lambda: replanner.stats.replans == 1, within=30)
        first = replanner.current
        assert first is not None and check_plan(problem, first) == []
        replanner.request("station down")
        await _until(lambda: worker.running, within=10)
        await worker.stop()  # the solver dies mid-solve
        await _until(lambda: replanner.stats.failures == 1, within=10)
        assert replanner.current is first  # the line keeps its last plan
        assert "exited with -9" in (replanner.stats.last_error or "")
        replanner.request("station back")
        await _until(lambda: replanner.stats.replans == 2, within=30)
        assert replanner.stats.last_error is None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
