"""The one place that owns device reconnects: connect, run, back off, try again.

Each device gets a supervisor. A driver raises when its link is lost; the supervisor
closes it, waits a capped, jittered, growing delay and connects again, for as long as the
gateway runs. Restarts beyond a budget (``budget`` within ``window_s``) mark the device
FAILED and raise an alarm (through ``on_change``); the first successful connect after that
clears it. A driver that raises something other than a DriverError has a bug: it is logged
with its traceback and handled like a lost link, so one broken driver never takes its
station, let alone the line, down. A driver that loses a cancellation (a library awaiting
through Python 3.11's ``asyncio.wait_for``: ``drivers.base.keep_cancellation``) is cancelled
again until it stops, so the gateway's shutdown never waits on it for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cloud_sync.backoff import Backoff
from drivers.base import Driver, DriverError, DriverState

__all__ = ["DeviceHealth", "DeviceSupervisor", "SupervisorPolicy", "stop_task"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    """Reconnect timing; the defaults follow Frigate and Home Assistant (model-codebases §10.3)."""

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2
    budget: int = 5  # restarts within window_s before the device counts as FAILED
    window_s: float = 60.0
    healthy_s: float = 60.0  # a run this long resets the backoff
    connect_timeout_s: float = 10.0
    close_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """What the supervisor knows of a device, passed to ``on_change`` on every transition."""

    name: str
    kind: str
    state: DriverState
    previous: DriverState
    error: str | None
    restarts: int


class DeviceSupervisor:
    """Runs one driver until cancelled; ``state`` and ``last_error`` are always current."""

    def __init__(
        self,
        driver: Driver,
        *,
        policy: SupervisorPolicy | None = None,
        on_change: Callable[[DeviceHealth], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.driver = driver
        self.policy = policy or SupervisorPolicy()
        self._on_change = on_change
        self._rng = rng
        self.state = DriverState.STOPPED
        self.last_error: str | None = None
        self.restarts = 0
        self.since = time.monotonic()
        self.connected_once = False
        self._stopping = False
        # Set by retry_now(): a maintainer fixed the device, so the wait before the next
        # attempt is cut short.
        self._retry = asyncio.Event()

    @property
    def name(self) -> str:
        return self.driver.name

    def retry_now(self) -> bool:
        """Connect again at once, with the back-off started over (maintenance replaced a
        cable, powered a scale on). False when the device is ready: nothing to retry."""
        if self.state is DriverState.READY:
            return False
        self._retry.set()
        return True

    async def run(self) -> None:
        # The loop runs as a task of its own so that a cancellation of ours reaches it
        # even if one got lost inside a driver: see stop_task.
        self._stopping = False
        loop = asyncio.create_task(self._supervise(), name=f"supervising {self.name}")
        try:
            await asyncio.shield(loop)
        finally:
            await stop_task(
                loop,
                self.policy.close_timeout_s + 1.0,
                f"device {self.name}",
                heard=lambda: self._stopping,
            )

    async def _supervise(self) -> None:
        p = self.policy
        backoff = Backoff(p.initial_s, p.max_s, p.jitter, self._rng)
        recent: deque[float] = deque()
        try:
            while True:
                self._move(DriverState.CONNECTING, self.last_error)
                started: float | None = None
                try:
                    async with asyncio.timeout(p.connect_timeout_s):
                        await self.driver.connect()
                    started = time.monotonic()
                    self.connected_once = True
                    self._move(DriverState.READY, None)
                    await self.driver.run()
                    error = "the driver stopped serving"
                except asyncio.CancelledError:
                    self._stopping = True  # the close below is the last: let it finish
                    raise
                except (DriverError, TimeoutError, OSError) as exc:
                    error = _describe(exc)
                except Exception as exc:
                    logger.exception("device %s: driver bug", self.name)
                    error = f"driver bug: {_describe(exc)}"
                finally:
                    await self._close()
                now = time.monotonic()
                if started is not None and now - started >= p.healthy_s:
                    backoff.reset()
                    recent.clear()
                recent.append(now)
                while recent and now - recent[0] > p.window_s:
                    recent.popleft()
                self.restarts += 1
                failed = len(recent) > p.budget or self.state is DriverState.FAILED
                # A device that never came up, or keeps dropping, is FAILED only once the
                # budget is spent; until then it is a blip the line rides through.
                self._move(DriverState.FAILED if failed else DriverState.DEGRADED, error)
                self._retry.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff.next()):
                        await self._retry.wait()
                if self._retry.is_set():  # asked for: the next failure waits the least again
                    backoff.reset()
                    recent.clear()
        finally:
            self._move(DriverState.STOPPED, self.last_error)

    async def _close(self) -> None:
        # Runs while a cancellation may be in flight: bounded, and never hides it.
        try:
            async with asyncio.timeout(self.policy.close_timeout_s):
                await self.driver.close()
        except (DriverError, TimeoutError, OSError) as exc:
            logger.warning("device %s: close failed: %s", self.name, _describe(exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("device %s: driver bug in close()", self.name)

    def _move(self, state: DriverState, error: str | None) -> None:
        previous = self.state
        self.last_error = error
        if state is previous:
            return
        # DEGRADED → CONNECTING → DEGRADED would log (and FAILED would toggle its alarm) on
        # every retry: a device that went down stays down until it is READY again.
        if state is DriverState.CONNECTING and previous in (
            DriverState.DEGRADED,
            DriverState.FAILED,
        ):
            return
        self.state = state
        self.since = time.monotonic()
        self._log(state, previous, error)
        if self._on_change is not None:
            health = DeviceHealth(
                self.name, self.driver.kind, state, previous, error, self.restarts
            )
            try:
                self._on_change(health)
            except Exception:
                logger.exception("device %s: state change handler failed", self.name)

    def _log(self, state: DriverState, previous: DriverState, error: str | None) -> None:
        # One line per transition, not per retry (Home Assistant's "unavailable"/"back online").
        if state is DriverState.READY:
            if previous in (DriverState.DEGRADED, DriverState.FAILED) or self.restarts:
                logger.info("device %s: back online after %d restarts", self.name, self.restarts)
            else:
                logger.info("device %s: ready", self.name)
        elif state is DriverState.DEGRADED:
            logger.warning("device %s: unavailable (%s); retrying", self.name, error)
        elif state is DriverState.FAILED:
            logger.error(
                "device %s: failed after %d restarts (%s); still retrying",
                self.name,
                self.restarts,
                error,
            )
        elif state is DriverState.STOPPED:
            logger.info("device %s: stopped", self.name)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def stop_task(
    task: asyncio.Task[None],
    within_s: float,
    what: str,
    *,
    heard: Callable[[], bool] = lambda: False,
) -> None:
    """Cancel ``task`` and wait for it to end, for at most ``within_s`` (a task still
    running then is logged and left). Until ``heard()`` says the task is acting on the
    cancellation, it is cancelled again every quarter second: a cancellation that arrives
    as a library call completes can be lost (``drivers.base.keep_cancellation``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    cancels = 0
    interrupted = False
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            logger.error("%s did not stop within %g s of being cancelled", what, within_s)
            break
        if cancels == 0 or not heard():
            task.cancel()
            cancels += 1
        try:
            await asyncio.wait([task], timeout=min(0.25, left))
        except asyncio.CancelledError:
            interrupted = True  # stopping already: finish that first, then pass it on
    if task.done() and cancels > 1:
        logger.warning("%s lost a cancellation; it stopped after %d", what, cancels)
    if interrupted:
        raise asyncio.CancelledError
