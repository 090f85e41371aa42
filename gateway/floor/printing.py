"""The print queue: delivers ``print_jobs`` to each printer device, in order, one at a time.

A job stays queued while its printer is offline or reports a problem (paper out, head
open, paused): a problem raises an alarm once, the job is retried when the printer's
status is good again, and the alarm clears on the first label printed after it. Nothing
is lost by a restart: the queue is the table.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from drivers.base import DeviceRejected, DriverError
from drivers.label_printer import LabelPrinter
from gateway.desk.labels import report_printed
from gateway.floor.devices import Devices
from gateway.i18n import t
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.store.rows import LabelRow, PrintJobRow, PrintStatus, Severity

__all__ = ["PrintQueue"]

logger = logging.getLogger(__name__)

# How often a held queue looks at its printer again (paper reloaded, link back).
_RETRY_S = 1.0


def _problem_alarm(printer: str) -> str:
    return f"printer:{printer}:problem"


class PrintQueue:
    """One worker per printer device, woken when a job is queued for it."""

    def __init__(self, core: LineContext, devices: Devices) -> None:
        self.core = core
        self.devices = devices
        self._printers: dict[str, LabelPrinter] = {}
        for station, devs in devices.stations.items():
            if devs.printer is not None:
                self._printers[core.config.stations[station].printer_id] = devs.printer
        self._wake = {name: asyncio.Event() for name in self._printers}
        core.subscribe("print_job", self._queued)

    def _queued(self, data: dict[str, Any]) -> None:
        wake = self._wake.get(data["printer"])
        if wake is not None:
            wake.set()

    async def run(self) -> None:
        if not self._printers:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for name, printer in self._printers.items():
                tg.create_task(self._serve(name, printer), name=f"print queue {name}")

    async def _serve(self, name: str, printer: LabelPrinter) -> None:
        wake = self._wake[name]
        while True:
            job = self.core.store.fetch_one(
                PrintJobRow,
                "SELECT * FROM print_jobs WHERE printer = ? AND status = ? "
                "ORDER BY created_at, job_id LIMIT 1",
                (name, PrintStatus.QUEUED),
            )
            if job is None:
                wake.clear()
                await wake.wait()
                continue
            if not self.devices.ready(printer):
                await asyncio.sleep(_RETRY_S)
                continue
            if await self._print(name, printer, job):
                continue
            await asyncio.sleep(_RETRY_S)

    async def _print(self, name: str, printer: LabelPrinter, job: PrintJobRow) -> bool:
        """Send one job; True when the printer took it."""
        core = self.core
        job_id = job.job_id
        label = core.store.fetch_one(
            LabelRow, "SELECT * FROM labels WHERE label_id = ?", (job.label_id,)
        )
        assert label is not None, job.label_id  # a job is made for a label that is kept
        try:
            await printer.print_label(label.zpl, job_id)
        except DeviceRejected as exc:
            # The printer said why (paper out, head open, paused): hold the queue, tell
            # the line once, and look again shortly.
            n = core.store.count(
                "SELECT count(*) FROM print_jobs WHERE printer = ? AND status = ?",
                (name, PrintStatus.QUEUED),
            )
            with core.store.transaction():
                self._attempted(job_id, str(exc))
                raise_alarm(
                    core,
                    _problem_alarm(name),
                    "printer_problem",
                    name,
                    Severity.MAJOR,
                    t(
                        "{printer}: {problem}. {n} label(s) waiting; they print when it is fixed.",
                        printer=name,
                        problem=str(exc),
                        n=n,
                    ),
                )
            return False
        except (DriverError, TimeoutError, OSError) as exc:
            # The link failed mid-job: the supervisor reconnects; the job is sent again,
            # since a label half-received is not a label printed.
            logger.warning("printer %s: job %s not printed: %s", name, job_id, exc)
            with core.store.transaction():
                self._attempted(job_id, str(exc))
            return False
        with core.store.transaction():
            core.store.conn.execute(
                "UPDATE print_jobs SET status = ?, attempts = attempts + 1, "
                "error = NULL, printed_at = ? WHERE job_id = ?",
                (PrintStatus.PRINTED, core.now_iso(), job_id),
            )
            report_printed(core, job.label_id, job.station, job_id, job.reason)
            clear_alarm(core, _problem_alarm(name), f"{name} prints again")
        return True

    def _attempted(self, job_id: str, error: str) -> None:
        self.core.store.conn.execute(
            "UPDATE print_jobs SET attempts = attempts + 1, error = ? WHERE job_id = ?",
            (error, job_id),
        )
