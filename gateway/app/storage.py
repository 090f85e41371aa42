"""Room on disk: intake pauses before the disk fills, and the outbox is watched against its
budget, so an operator's action and its events always have somewhere to go.

- **Free-space floor.** Before a batch of hub messages is applied, the data folder's disk
  must have ``[policies] disk_free_floor_mib`` free. Below it the batch is refused
  (:class:`IntakePaused`): the hub link does not acknowledge it, so the orders wait in the
  broker, and the ``storage:disk_low`` alarm says why. Stations go on working in the room
  the floor keeps; intake resumes by itself once there is space again.
- **Outbox budget.** The events waiting for the hub (an outage, a dead link) are counted in
  bytes. Past 80 % of ``outbox_budget_mib`` the ``storage:outbox`` alarm is raised, well
  before the budget is reached; nothing is ever dropped: order and traceability events are
  what the hub must get. Cleared below 70 %.
- **A full disk.** A transaction that cannot commit is rolled back whole (SQLite), the
  operator is told that nothing was saved, and the gateway keeps running; it does not
  restart itself into the same full disk.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
from pathlib import Path

from gateway.i18n import t
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.store.rows import Severity

__all__ = ["IntakePaused", "StorageGuard"]

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024
_WATCH_S = 5.0


class IntakePaused(sqlite3.OperationalError):
    """The disk is below its free-space floor: the hub's messages wait in the broker.

    A store error to the hub link, which then leaves the batch unacknowledged and tries
    again later, as for any store that cannot take a write."""


class StorageGuard:
    def __init__(self, core: LineContext) -> None:
        self.core = core
        self._folder = Path(core.store.path).parent
        self._low = False
        self._full_outbox = False

    def free_mib(self) -> float:
        return shutil.disk_usage(self._folder).free / _MIB

    def check_intake(self) -> None:
        """Raise IntakePaused when the disk is below its floor (raising the alarm once)."""
        floor = self.core.config.policies.disk_free_floor_mib
        free = self.free_mib()
        if free >= floor:
            if self._low:
                self._set_low(False, free)
            return
        if not self._low:
            self._set_low(True, free)
        raise IntakePaused(f"{free:.0f} MiB free on the data disk, below the {floor} MiB floor")

    def _set_low(self, low: bool, free: float) -> None:
        floor = self.core.config.policies.disk_free_floor_mib
        try:
            with self.core.store.transaction():
                if low:
                    message = t(
                        "{free} MiB free on the data disk (floor {floor} MiB): new orders "
                        "wait in the broker until there is room; stations go on",
                        free=format(free, ".0f"),
                        floor=floor,
                    )
                    raise_alarm(
                        self.core, "storage:disk_low", "disk_low", "store", Severity.CRITICAL,
                        message,
                    )  # fmt: skip
                else:
                    clear_alarm(self.core, "storage:disk_low", f"{free:.0f} MiB free again")
        except sqlite3.OperationalError as exc:
            logger.error("cannot record the disk alarm: %s", exc)
            return
        self._low = low
        if low:
            logger.error("intake paused: %.0f MiB free, floor %d MiB", free, floor)
        else:
            logger.info("intake resumed: %.0f MiB free", free)

    def check_outbox(self) -> None:
        """Raise or clear the outbox-budget alarm."""
        budget = self.core.config.policies.outbox_budget_mib * _MIB
        used = self.core.outbox.size_bytes
        high, low = 0.8 * budget, 0.7 * budget
        if not self._full_outbox and used >= high:
            message = t(
                "{used} MiB of events wait for the hub ({share} of the {budget} MiB budget): "
                "is the hub link down? Nothing is dropped.",
                used=format(used / _MIB, ".0f"),
                share=format(used / budget, ".0%"),
                budget=budget // _MIB,
            )
            with self.core.store.transaction():
                raise_alarm(
                    self.core, "storage:outbox", "outbox_budget", "store", Severity.MAJOR, message
                )
            self._full_outbox = True
        elif self._full_outbox and used < low:
            with self.core.store.transaction():
                clear_alarm(self.core, "storage:outbox", "the events reached the hub")
            self._full_outbox = False

    async def watch(self) -> None:
        """Check both every few seconds (intake also checks before each batch)."""
        while True:
            try:
                self.check_outbox()
                if self._low:
                    self.check_intake()
            except sqlite3.OperationalError as exc:
                logger.warning("storage check: %s", exc)
            await asyncio.sleep(_WATCH_S)
