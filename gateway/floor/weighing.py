"""Scales in the flow of work: a station that waits for a weight gets it from its scale.

The weight taken is the first stable reading above the scale's minimum load once the
station waits for it. After a weighing, the next one needs another load: the scale seen
empty in between, or a stable weight that differs from the last one by more than the
minimum load (2 % for heavy parcels). So a parcel left on the scale is never weighed
twice, for a second order or again after a wrong weight, while an operator who swaps
parcels quicker than the scale polls is not kept waiting.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from drivers.base import DriverError
from gateway.desk.replies import Refused, Reply
from gateway.desk.service import StationService
from gateway.desk.steps import awaiting_weight
from gateway.floor.devices import Devices

if TYPE_CHECKING:
    from drivers.modbus_scale.driver import ModbusScale

__all__ = ["Weighing"]

logger = logging.getLogger(__name__)

# How often a station is looked at for a pending weighing; the scale polls on its own.
_LOOK_S = 0.1


class Weighing:
    def __init__(
        self,
        stations: StationService,
        devices: Devices,
        say: Callable[[str, str, Reply | Refused], None],
    ) -> None:
        self.stations = stations
        self.devices = devices
        self._say = say
        self.last: dict[str, float] = {}  # station → grams of the last weighing taken

    async def run(self) -> None:
        scales = {s: d.scale for s, d in self.devices.stations.items() if d.scale is not None}
        if not scales:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for station, scale in scales.items():
                tg.create_task(self._serve(station, scale), name=f"weighing {station}")

    async def _serve(self, station: str, scale: ModbusScale) -> None:
        min_load = scale.config.min_load_g
        last: tuple[float, float] | None = None  # (when, grams) of the last weighing
        while True:
            await asyncio.sleep(_LOOK_S)
            if not self.devices.ready(scale):
                continue
            if last is not None and _emptied(scale, last[0], math.inf):
                last = None  # seen empty since: ready for the next parcel
            if not self._awaiting(station):
                continue
            try:
                async with asyncio.timeout(1.0):
                    reading = await scale.wait_stable(min_grams=min_load, after=time.monotonic())
            except (TimeoutError, DriverError):
                continue  # nothing stable on the scale yet
            if (
                last is not None
                # Emptied while we waited: a new parcel, even one of the same weight.
                and not _emptied(scale, last[0], reading.at)
                and abs(reading.grams - last[1]) <= max(min_load, 0.02 * last[1])
            ):
                continue  # the parcel weighed last is still there
            if not self._awaiting(station):
                continue  # the operator typed the weight meanwhile
            last = (reading.at, reading.grams)
            self.last[station] = reading.grams
            answer: Reply | Refused
            try:
                answer = self.stations.weight(station, round(reading.grams, 1))
            except Refused as exc:
                answer = exc
            self._say(station, "scale", answer)

    def _awaiting(self, station: str) -> bool:
        return awaiting_weight(self.stations.core, self.stations.current(station))


def _emptied(scale: ModbusScale, after: float, before: float) -> bool:
    """Whether the scale read empty (below its minimum load) between two moments."""
    min_load = scale.config.min_load_g
    return any(after < r.at < before and r.grams < min_load for r in scale.recent)
