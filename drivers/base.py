"""What every device driver is: its config base, its errors, and the interface the
gateway's supervisor runs.

A driver owns one connection to one device. Its ``__init__`` does no I/O; ``connect``
opens the link and checks the device answers; ``run`` keeps the link busy (polling,
subscriptions, reading a byte stream) until it is cancelled or the link is lost, and
then raises. Reconnecting is not the driver's business: the supervisor in
``gateway/floor/supervisor.py`` calls ``close``, backs off and calls ``connect`` again, so the
retry policy lives in one place. Every device await runs under ``asyncio.timeout`` with
the device's configured timeout. ``CancelledError`` is never caught and swallowed, and a
library call that may swallow one runs under :func:`keep_cancellation`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEVICE_MODEL_CONFIG",
    "DeviceConfigBase",
    "DeviceRejected",
    "DeviceUnavailable",
    "Driver",
    "DriverError",
    "DriverState",
    "ProtocolError",
    "ScanSink",
    "ScannedCode",
    "keep_cancellation",
]

# Same rules as the rest of the line config: unknown keys are mistakes, values are not
# coerced ("9100" for a port is reported, not accepted).
DEVICE_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)


@contextlib.asynccontextmanager
async def keep_cancellation() -> AsyncIterator[None]:
    """Raise CancelledError after the block if the task was cancelled during it and the
    cancellation got lost on the way.

    Python 3.11's ``asyncio.wait_for`` returns the result instead of raising when the
    awaited future completes in the same loop turn as the cancellation (CPython gh-86296,
    fixed in 3.12), and pymodbus and asyncua await every reply through it. A scale that
    answers just as the gateway stops would then poll on, and the shutdown wait for it
    forever. Put this outside any ``asyncio.timeout`` in the block: that one undoes its own
    cancellation, so what is left over came from outside.
    """
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    yield
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError


class DeviceConfigBase(BaseModel):
    """Fields every ``[devices.NAME]`` table has; each kind adds its own and a
    ``kind: Literal["<kind>"]`` that selects it."""

    model_config = DEVICE_MODEL_CONFIG

    description: str = ""
    # Upper bound of any single exchange with the device (a read, a command, a connect).
    timeout_s: float = Field(default=2.0, gt=0, le=60)


class DriverState(enum.StrEnum):
    """The state the supervisor keeps for each device (shown by ``linegate devices``)."""

    STOPPED = "stopped"  # not started, or shut down
    CONNECTING = "connecting"  # first connect, or a reconnect after a backoff
    READY = "ready"  # connected and running
    DEGRADED = "degraded"  # link lost or a device fault; retrying within the budget
    FAILED = "failed"  # restart budget spent: alarm raised, still retrying at the cap


class DriverError(Exception):
    """Base of the errors a driver raises on purpose."""


class DeviceUnavailable(DriverError):
    """The link is down or the device does not answer in time: retry after a backoff."""


class DeviceRejected(DriverError):
    """The device answered, and the answer is no (paper out, bad parameter, machine not
    ready): report it to whoever asked, do not retry blindly."""


class ProtocolError(DriverError):
    """A frame that does not parse (garbled, wrong length, bad CRC): counted, and after
    too many in a row the link is treated as down."""


@runtime_checkable
class Driver(Protocol):
    """The interface the supervisor runs; capability methods (print, read weight, start a
    job) are on each kind's driver class."""

    kind: ClassVar[str]

    @property
    def name(self) -> str:
        """``station/device``, as in logs, alarms and ``linegate devices``."""
        ...

    async def connect(self) -> None:
        """Open the link and check the device answers; raise DeviceUnavailable if not."""
        ...

    async def run(self) -> None:
        """Serve the open link until cancelled; raise DeviceUnavailable when it is lost."""
        ...

    async def close(self) -> None:
        """Release the link; safe to call twice, and when connect never succeeded."""
        ...

    def diagnostics(self) -> dict[str, Any]:
        """Counters, the last frames or values and the device's own status: no secrets."""
        ...


@dataclass(frozen=True, slots=True)
class ScannedCode:
    """One complete read from a barcode scanner (serial or HID).

    ``text`` is what the code encodes, with the AIM symbology identifier removed and GS1
    group separators kept as ``\\x1d``; ``symbology`` is the AIM identifier (``"]C1"`` for
    GS1-128, ``"]d2"`` for GS1 DataMatrix …) when the scanner sends one.
    """

    text: str
    symbology: str | None = None


# Scanners hand each complete code to the gateway through this callback; it must not block.
ScanSink = Callable[[ScannedCode], None]
