"""The label printer driver: ZPL jobs over TCP 9100 or a serial line, checked with ~HS.

One job at a time: host status before (a printer with paper out, head open or paused is
not sent anything), the format with its job id, then host status until the printer has
printed it. If paper runs out or the head is opened during the job, the printer's buffer
is cleared (~JA) so the label cannot come out later by surprise, and the job is refused:
the caller prints it again once the printer is ready.

Every exchange is bounded by ``timeout_s``. A timeout or a lost connection closes the link
(a late reply must never be read as the answer to the next request) and raises
DeviceUnavailable; the supervisor reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from drivers.base import DeviceRejected, DeviceUnavailable, DriverError, ProtocolError
from drivers.label_printer.config import LabelPrinterConfig
from drivers.label_printer.link import ByteLink, open_link
from drivers.label_printer.status import (
    HOST_STATUS_REQUEST,
    HostStatus,
    HostStatusError,
    host_status_reply_length,
    parse_host_status,
)
from drivers.label_printer.zpl import frame_job

__all__ = ["LabelPrinter", "PrintResult", "StatusListener"]

log = logging.getLogger(__name__)

# Clears every format waiting in the printer's buffer (ZPL II ~JA, "cancel all").
_CANCEL_ALL = b"~JA"
# How often host status is read while a label prints: first soon (a small label is done
# in a moment), then every 0.1 s, quick enough to see paper run out while the label is on
# its way and light for the printer (~HS is answered out of band).
_JOB_POLL_FIRST_S = 0.01
_JOB_POLL_S = 0.1

# Called with the new status whenever what stops the printer changes (and on the first
# read): paper out, paper back. It runs in the driver's task and must not block.
StatusListener = Callable[[HostStatus], None]


@dataclass(frozen=True, slots=True)
class PrintResult:
    """A label the printer took and finished. Statuses are None when check_status is off."""

    job_id: str
    bytes_sent: int
    status_before: HostStatus | None
    status_after: HostStatus | None


class LabelPrinter:
    """A ZPL II label printer (Zebra or compatible)."""

    kind: ClassVar[str] = "label_printer"

    def __init__(
        self,
        name: str,
        config: LabelPrinterConfig,
        *,
        on_status_change: StatusListener | None = None,
    ) -> None:
        self._name = name
        self._config = config
        self._on_status_change = on_status_change
        self._link: ByteLink | None = None
        self._inbox = bytearray()
        # One exchange at a time on the line: a job's status reads and the idle polls.
        self._lock = asyncio.Lock()
        self._link_lost = asyncio.Event()
        self._lost_reason = "not connected"
        self._status: HostStatus | None = None
        self._jobs_printed = 0
        self._jobs_refused = 0
        self._bytes_sent = 0
        self._status_reads = 0
        self._errors = 0
        self._last_job_id: str | None = None
        self._last_error: str | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> LabelPrinterConfig:
        return self._config

    @property
    def status(self) -> HostStatus | None:
        """The last host status read (kept across reconnects); None before the first."""
        return self._status

    @property
    def connected(self) -> bool:
        return self._link is not None

    async def connect(self) -> None:
        """Open the link and read host status once; a printer with a problem still connects."""
        await self.close()
        self._link_lost = asyncio.Event()
        address = self._config.address
        try:
            async with asyncio.timeout(self._config.timeout_s):
                self._link = await open_link(address, baudrate=self._config.baudrate)
        except OSError as exc:  # TimeoutError included
            # str() of a TimeoutError is empty: say its name then.
            why = str(exc) or type(exc).__name__
            self._note_error(f"cannot reach the printer at {self._config.url}: {why}")
            raise DeviceUnavailable(f"{self._name}: {self._last_error}") from exc
        log.info("%s: connected to %s", self._name, self._config.url)
        await self.host_status()

    async def run(self) -> None:
        """Read host status every status_interval_s until cancelled or the link is lost."""
        self._require_link()
        while True:
            try:
                async with asyncio.timeout(self._config.status_interval_s):
                    await self._link_lost.wait()
            except TimeoutError:
                await self.host_status()
            else:
                raise DeviceUnavailable(f"{self._name}: {self._lost_reason}")

    async def close(self) -> None:
        link, self._link = self._link, None
        self._inbox.clear()
        if link is None:
            return
        self._lost_reason = "closed"
        self._link_lost.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._config.timeout_s):
                await link.close()

    async def host_status(self) -> HostStatus:
        """Ask the printer for its status (~HS) now."""
        async with self._lock:
            return await self._read_status()

    async def print_label(self, zpl: str, job_id: str) -> PrintResult:
        """Print one label format and return once the printer has printed it.

        Raises DeviceRejected when the printer cannot print (the problem in operator words:
        "paper out" …), before anything was sent or during the job (then cancelled: print it
        again); DeviceUnavailable when the link fails; ProtocolError on a garbled status;
        ValueError when zpl is not one format or job_id cannot go into a ZPL comment.
        """
        payload = frame_job(zpl, job_id, dpi=self._config.dpi)
        async with self._lock:
            before = None
            if self._config.check_status:
                before = await self._read_status()
                if before.problem is not None:
                    self._refuse(f"{before.problem}: job {job_id} not sent")
            await self._send(payload, what=f"job {job_id}")
            self._bytes_sent += len(payload)
            self._last_job_id = job_id
            after = await self._wait_until_printed(job_id) if self._config.check_status else None
            self._jobs_printed += 1
        log.debug("%s: job %s printed (%d bytes)", self._name, job_id, len(payload))
        return PrintResult(job_id, len(payload), before, after)

    def diagnostics(self) -> dict[str, Any]:
        status = self._status
        return {
            "url": self._config.url,
            "connected": self.connected,
            "problem": None if status is None else status.problem,
            "status": None if status is None else dataclasses.asdict(status),
            "jobs_printed": self._jobs_printed,
            "jobs_refused": self._jobs_refused,
            "bytes_sent": self._bytes_sent,
            "status_reads": self._status_reads,
            "errors": self._errors,
            "last_job_id": self._last_job_id,
            "last_error": self._last_error,
        }

    # --- exchanges (the lock is held) -------------------------------------------------

    async def _wait_until_printed(self, job_id: str) -> HostStatus:
        """Poll ~HS until the printer has taken the job and finished it.

        A printer reports the format in its buffer while it prints it; one that shows
        nothing at all within after_print_wait_s has printed it already.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen_busy = False
        pause = _JOB_POLL_FIRST_S
        while True:
            status = await self._read_status()
            if status.problem is not None:
                outcome = await self._cancel_all()
                self._refuse(f"{status.problem} during job {job_id}: {outcome}")
            waited = loop.time() - started
            if status.busy:
                seen_busy = True
            elif seen_busy or waited >= self._config.after_print_wait_s:
                return status
            if waited >= self._config.job_timeout_s:
                outcome = await self._cancel_all()
                self._refuse(
                    f"job {job_id} not printed within {self._config.job_timeout_s:g} s "
                    f"({status.formats_in_buffer} formats waiting): {outcome}"
                )
            await asyncio.sleep(pause)
            pause = min(2 * pause, _JOB_POLL_S)

    async def _read_status(self) -> HostStatus:
        link = self._require_link()
        self._inbox.clear()  # nothing is expected before the request: stale bytes go
        try:
            async with asyncio.timeout(self._config.timeout_s):
                await link.write(HOST_STATUS_REQUEST)
                while (length := host_status_reply_length(self._inbox)) is None:
                    self._inbox += await link.read()
        except TimeoutError:
            if self._inbox:
                raise await self._fail(
                    ProtocolError, f"incomplete host status reply {bytes(self._inbox[:80])!r}"
                ) from None
            raise await self._fail(
                DeviceUnavailable, f"no host status reply within {self._config.timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise await self._fail(DeviceUnavailable, f"link lost: {exc}") from exc
        except HostStatusError as exc:
            raise await self._fail(ProtocolError, str(exc)) from exc
        reply = bytes(self._inbox[:length])
        del self._inbox[:length]
        try:
            status = parse_host_status(reply)
        except HostStatusError as exc:
            raise await self._fail(ProtocolError, str(exc)) from exc
        self._status_reads += 1
        self._note_status(status)
        return status

    async def _send(self, data: bytes, *, what: str) -> None:
        link = self._require_link()
        try:
            async with asyncio.timeout(self._config.timeout_s):
                await link.write(data)
        except TimeoutError:
            raise await self._fail(
                DeviceUnavailable, f"{what} not taken within {self._config.timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise await self._fail(DeviceUnavailable, f"link lost sending {what}: {exc}") from exc

    async def _cancel_all(self) -> str:
        """Clear the printer's buffer so a held label cannot print once the problem is
        fixed, and check that it is empty; say how that went, for the refusal."""
        try:
            await self._send(_CANCEL_ALL, what="cancel (~JA)")
            status = await self._read_status()  # answered after ~JA took effect
        except DriverError:
            return "could not cancel it, it may still print once the printer is ready"
        if status.formats_in_buffer:
            return f"cancel left {status.formats_in_buffer} formats in the printer's buffer"
        return "cancelled, print it again"

    # --- bookkeeping --------------------------------------------------------------------

    def _require_link(self) -> ByteLink:
        if self._link is None:
            raise DeviceUnavailable(f"{self._name}: not connected ({self._lost_reason})")
        return self._link

    async def _fail(self, error: type[DriverError], reason: str) -> DriverError:
        """Close the link after a failed exchange and return the error to raise.

        The line is in an unknown state (a late or partial reply may still arrive), so it
        is not reused: the supervisor reconnects.
        """
        self._note_error(reason)
        log.warning("%s: %s; closing the link", self._name, reason)
        await self.close()
        self._lost_reason = reason
        return error(f"{self._name}: {reason}")

    def _refuse(self, reason: str) -> None:
        self._jobs_refused += 1
        self._note_error(reason)
        raise DeviceRejected(f"{self._name}: {reason}")

    def _note_error(self, reason: str) -> None:
        self._errors += 1
        self._last_error = reason

    def _note_status(self, status: HostStatus) -> None:
        previous, self._status = self._status, status
        if previous is not None and previous.problem == status.problem:
            return
        if status.problem is not None:
            log.warning("%s: %s", self._name, status.problem)
        elif previous is not None:
            log.info("%s: ready again (was: %s)", self._name, previous.problem)
        if self._on_status_change is not None:
            try:
                self._on_status_change(status)
            except Exception:
                log.exception("%s: status listener failed", self._name)
