"""The scale driver: polls the weight, tells stable from moving, tares and zeroes.

``run`` reads the scale every ``poll_interval_s`` and keeps the latest reading (and a
short history, so :meth:`ModbusScale.wait_stable` can hand the pack step the first
stable reading after a given moment). The line itself (lock, gap, late replies) is
the :class:`~drivers.modbus_scale.bus.ModbusBus` it is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from typing import Any, ClassVar

from drivers.base import DeviceRejected, DeviceUnavailable, DriverError, ProtocolError
from drivers.modbus_scale.bus import ModbusBus, ReplyTimeout
from drivers.modbus_scale.config import ModbusScaleConfig, ScaleCommand
from drivers.modbus_scale.registers import (
    RegisterDecodeError,
    StabilityWindow,
    WeightReading,
    decode_reading,
)

__all__ = ["ModbusScale"]

logger = logging.getLogger(__name__)

# Readings kept for wait_stable: about 40 s at the default poll interval.
_HISTORY = 256


class ModbusScale:
    """A scale on a Modbus line; satisfies :class:`drivers.base.Driver`."""

    kind: ClassVar[str] = "modbus_scale"

    def __init__(self, name: str, config: ModbusScaleConfig, bus: ModbusBus) -> None:
        self._name = name
        self.config = config
        self.bus = bus
        self._map = config.register_map()
        self._window = (
            StabilityWindow(config.stable_window_s, config.stable_tolerance_g)
            if config.stable_bit is None
            else None
        )
        self._attached = False
        self._latest: WeightReading | None = None
        self._history: deque[tuple[int, WeightReading]] = deque(maxlen=_HISTORY)
        self._seq = 0
        # Set (and replaced) on every new reading: what wait_stable sleeps on.
        self._published = asyncio.Event()
        self._failed_polls = 0
        self._last_error: str | None = None
        self.reads = 0
        self.errors = 0
        self.timeouts = 0
        self.garbled = 0
        self.rejected = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def latest(self) -> WeightReading | None:
        """The last reading taken (by the poll loop or by :meth:`read`)."""
        return self._latest

    @property
    def recent(self) -> list[WeightReading]:
        """The last readings, oldest first (what wait_stable looks through)."""
        return [reading for _, reading in self._history]

    async def connect(self) -> None:
        """Open the line (shared with the other scales on it) and read once.

        Raises DeviceUnavailable when the line or the device does not answer,
        DeviceRejected when the device refuses the read (a wrong register map).
        """
        if not self._attached:
            await self.bus.attach(self.config.timeout_s)
            self._attached = True
        await self.read()

    async def run(self) -> None:
        """Poll until cancelled; raise DeviceUnavailable when the line is lost or after
        ``max_failed_polls`` failed reads in a row."""
        while True:
            try:
                await self.read()
            except DriverError as exc:
                if not self.bus.connected:
                    raise DeviceUnavailable(f"{self._name}: line lost ({exc})") from exc
                if self._failed_polls >= self.config.max_failed_polls:
                    raise DeviceUnavailable(
                        f"{self._name}: {self._failed_polls} reads failed in a row; last: {exc}"
                    ) from exc
                logger.debug("%s: read failed (%s)", self._name, exc)
            await asyncio.sleep(self.config.poll_interval_s)

    async def close(self) -> None:
        """Leave the line (the last scale on it closes it); safe to call twice."""
        if self._window is not None:
            self._window.reset()
        if self._attached:
            self._attached = False
            await self.bus.detach()

    async def read(self) -> WeightReading:
        """Read the scale once; the reading also becomes :attr:`latest`."""
        first, count = self._map.span
        try:
            registers, sent_at = await self.bus.read_registers(
                self.config.device_id,
                self._map.register_type,
                first,
                count,
                timeout_s=self.config.timeout_s,
            )
            reading = decode_reading(self._map, registers, at=sent_at)
        except RegisterDecodeError as exc:
            self._failed(exc)
            raise ProtocolError(f"{self._name}: {exc}") from exc
        except DriverError as exc:
            self._failed(exc)
            raise
        if self._window is not None:
            stable = self._window.add(reading.grams, reading.at) and reading.in_range
            reading = dataclasses.replace(reading, stable=stable)
        self.reads += 1
        self._failed_polls = 0
        self._publish(reading)
        return reading

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self._failed_polls += 1
        self._last_error = str(exc)
        if isinstance(exc, ReplyTimeout):
            self.timeouts += 1
        elif isinstance(exc, ProtocolError | RegisterDecodeError):
            self.garbled += 1
        elif isinstance(exc, DeviceRejected):
            self.rejected += 1
        # A gap in the readings breaks the stability window.
        if self._window is not None:
            self._window.reset()

    def _publish(self, reading: WeightReading) -> None:
        self._seq += 1
        self._latest = reading
        self._history.append((self._seq, reading))
        published, self._published = self._published, asyncio.Event()
        published.set()

    async def wait_stable(self, *, min_grams: float, after: float) -> WeightReading:
        """The first stable, in-range reading above ``min_grams`` taken after the
        monotonic time ``after``; waits for the poll loop's readings (``run``) as long
        as needed: bound it with ``asyncio.timeout`` around the call."""
        seen = 0
        while True:
            published = self._published
            for seq, reading in self._history:
                if seq <= seen:
                    continue
                seen = seq
                if (
                    reading.at > after
                    and reading.stable
                    and reading.in_range
                    and reading.grams > min_grams
                ):
                    return reading
            await published.wait()

    async def tare(self) -> None:
        """Tare the scale; DeviceRejected when it refuses (moving, over range) or has no
        tare command configured."""
        await self._command("tare", self.config.tare)

    async def zero(self) -> None:
        """Zero the scale; DeviceRejected when it refuses (moving, beyond its zero
        range) or has no zero command configured."""
        await self._command("zero", self.config.zero)

    async def _command(self, what: str, command: ScaleCommand | None) -> None:
        if command is None:
            raise DeviceRejected(f"{self._name}: no {what} command in the config")
        device_id, timeout_s = self.config.device_id, self.config.timeout_s
        try:
            if command.write == "coil":
                await self.bus.write_coil(device_id, command.address, timeout_s=timeout_s)
            else:
                await self.bus.write_register(
                    device_id, command.address, command.value, timeout_s=timeout_s
                )
        except DriverError as exc:
            self.errors += 1
            if isinstance(exc, ReplyTimeout):
                self.timeouts += 1
            elif isinstance(exc, DeviceRejected):
                self.rejected += 1
            elif isinstance(exc, ProtocolError):
                self.garbled += 1
            raise
        logger.info("%s: %s done", self._name, what)
        # The weight jumps: readings from before the command say nothing about stability.
        if self._window is not None:
            self._window.reset()

    def diagnostics(self) -> dict[str, Any]:
        return {
            "transport": self.config.transport,
            "endpoint": self.config.endpoint,
            "device_id": self.config.device_id,
            "stability": "flag" if self._window is None else "window",
            "latest": None if self._latest is None else self._latest.as_dict(),
            "counters": {
                "reads": self.reads,
                "errors": self.errors,
                "timeouts": self.timeouts,
                "garbled": self.garbled,
                "rejected": self.rejected,
                "late_replies_discarded": self.bus.late_replies(self.config.device_id),
            },
            "failed_polls": self._failed_polls,
            "last_error": self._last_error,
            "bus": self.bus.diagnostics(),
        }
