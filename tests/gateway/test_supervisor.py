"""The device supervisor: reconnect with backoff, FAILED after the budget, recovery.

The driver here is a scripted one, the one seam where a stand-in makes sense: what is
under test is the supervisor's policy, and every real driver is run under it by the
integration tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from typing import Any, ClassVar

import pytest

from drivers.base import DeviceUnavailable, DriverState
from gateway.floor.supervisor import DeviceHealth, DeviceSupervisor, SupervisorPolicy

FAST = SupervisorPolicy(
    initial_s=0.01, max_s=0.04, budget=3, window_s=10.0, healthy_s=10.0, connect_timeout_s=0.5
)


class ScriptedDriver:
    """Fails ``connect`` while ``up`` is False; ``run`` serves until ``drop`` is set."""

    kind: ClassVar[str] = "scripted"

    def __init__(self) -> None:
        self.up = True
        self.hang_connect = False
        self.bug = False
        self.drop = asyncio.Event()
        self.connects = 0
        self.closes = 0

    @property
    def name(self) -> str:
        return "st-1/dev"

    async def connect(self) -> None:
        self.connects += 1
        if self.hang_connect:
            await asyncio.sleep(3600)
        if not self.up:
            raise DeviceUnavailable("connection refused")

    async def run(self) -> None:
        if self.bug:
            raise KeyError("oops")
        await self.drop.wait()
        self.drop.clear()
        raise DeviceUnavailable("link lost")

    async def close(self) -> None:
        self.closes += 1

    def diagnostics(self) -> dict[str, Any]:
        return {"connects": self.connects}


async def _until(pred: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling the supervisor's state is the point
            await asyncio.sleep(0.005)


async def test_a_lost_link_degrades_and_recovers_without_failing() -> None:
    driver = ScriptedDriver()
    changes: list[DeviceHealth] = []
    sup = DeviceSupervisor(driver, policy=FAST, on_change=changes.append, rng=random.Random(1))
    task = asyncio.create_task(sup.run())
    await _until(lambda: sup.state is DriverState.READY)
    driver.drop.set()
    await _until(lambda: driver.connects == 2 and sup.state is DriverState.READY)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    states = [c.state for c in changes]
    assert states == [
        DriverState.CONNECTING,
        DriverState.READY,
        DriverState.DEGRADED,
        DriverState.READY,
        DriverState.STOPPED,
    ]
    assert changes[2].error == "DeviceUnavailable: link lost"
    # closed after the lost link and again on the way out
    assert driver.closes == 2


async def test_the_budget_spent_marks_failed_once_and_ready_clears_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = ScriptedDriver()
    driver.up = False
    changes: list[DeviceHealth] = []
    sup = DeviceSupervisor(driver, policy=FAST, on_change=changes.append)
    caplog.set_level(logging.INFO, logger="gateway.floor.supervisor")
    task = asyncio.create_task(sup.run())
    await _until(lambda: driver.connects >= 10)
    assert changes[-1].state is DriverState.FAILED
    driver.up = True
    await _until(lambda: sup.state is DriverState.READY)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    states = [c.state for c in changes]
    # ten failed connects, yet one transition each way: no log line or alarm per retry
    assert states == [
        DriverState.CONNECTING,
        DriverState.DEGRADED,
        DriverState.FAILED,
        DriverState.READY,
        DriverState.STOPPED,
    ]
    assert sum("unavailable" in r.message for r in caplog.records) == 1
    assert sum("failed after" in r.message for r in caplog.records) == 1
    assert sum("back online" in r.message for r in caplog.records) == 1


async def test_a_hanging_connect_is_timed_out() -> None:
    driver = ScriptedDriver()
    driver.hang_connect = True
    policy = SupervisorPolicy(initial_s=0.01, max_s=0.02, connect_timeout_s=0.05)
    sup = DeviceSupervisor(driver, policy=policy)
    task = asyncio.create_task(sup.run())
    await _until(lambda: driver.connects >= 2)
    assert sup.state is DriverState.DEGRADED
    assert sup.last_error == "TimeoutError"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_driver_bug_is_logged_and_retried_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = ScriptedDriver()
    driver.bug = True
    sup = DeviceSupervisor(driver, policy=FAST)
    task = asyncio.create_task(sup.run())
    await _until(lambda: driver.connects >= 3)
    assert not task.done()
    assert sup.last_error == "driver bug: KeyError: 'oops'"
    assert any(r.exc_info for r in caplog.records if "driver bug" in r.message)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sup.state is DriverState.STOPPED


class PollingDriver(ScriptedDriver):
    """Polls a device the way pymodbus and asyncua wait for each reply: through
    ``asyncio.wait_for``, which on Python 3.11 returns the reply instead of raising when
    the reply and a cancellation arrive in the same loop turn (CPython gh-86296)."""

    def __init__(self, close_s: float = 0.0) -> None:
        super().__init__()
        self.reply: asyncio.Future[bytes] | None = None
        self.polls = 0
        self.lost = 0  # replies handed back although the task was being cancelled
        self.close_s = close_s
        self.closed_fully = 0

    async def run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            self.reply = asyncio.get_running_loop().create_future()
            self.polls += 1
            before = task.cancelling()
            await asyncio.wait_for(self.reply, 5.0)  # noqa: TID251 - as pymodbus does
            if task.cancelling() > before:
                self.lost += 1

    async def close(self) -> None:
        self.closes += 1
        await asyncio.sleep(self.close_s)
        self.closed_fully += 1


async def test_a_cancellation_the_driver_loses_is_sent_again() -> None:
    driver = PollingDriver()
    sup = DeviceSupervisor(driver, policy=FAST)
    task = asyncio.create_task(sup.run())
    await _until(lambda: driver.reply is not None and sup.state is DriverState.READY)
    assert driver.reply is not None
    # The scale answers just as the gateway stops.
    driver.reply.set_result(b"\x01\x03")
    task.cancel()
    # Without a second cancel it polls on for ever.
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert task in done
    with pytest.raises(asyncio.CancelledError):
        await task
    if sys.version_info < (3, 12):
        assert driver.lost == 1  # the race this test is about did happen
    assert driver.closes == 1
    assert sup.state is DriverState.STOPPED


async def test_a_slow_close_is_not_cut_short_by_the_second_cancel() -> None:
    # The re-sending stops once the supervisor acts on the cancellation: the close runs to
    # its end (or its own timeout) however long past the first quarter second it takes.
    driver = PollingDriver(close_s=0.6)
    sup = DeviceSupervisor(driver, policy=FAST)
    task = asyncio.create_task(sup.run())
    await _until(lambda: driver.polls >= 1 and sup.state is DriverState.READY)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (driver.closes, driver.closed_fully) == (1, 1)
    assert sup.state is DriverState.STOPPED


async def test_maintenance_cuts_the_back_off_short() -> None:
    # A back-off of a minute: only retry_now() can bring the device back within the test.
    slow = SupervisorPolicy(initial_s=60.0, max_s=60.0, budget=3, connect_timeout_s=0.5)
    driver = ScriptedDriver()
    driver.up = False
    sup = DeviceSupervisor(driver, policy=slow, rng=random.Random(1))
    task = asyncio.create_task(sup.run())
    await _until(lambda: driver.connects == 1 and sup.state is DriverState.DEGRADED)
    await asyncio.sleep(0.05)
    assert driver.connects == 1  # waiting out its back-off
    driver.up = True  # the cable is back
    assert sup.retry_now() is True
    await _until(lambda: sup.state is DriverState.READY, within=2.0)
    assert driver.connects == 2
    assert sup.retry_now() is False  # ready: nothing to retry
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
