"""The devices at work: scanners feed the station's scan handling, scales supply weights,
machines take jobs and report progress, printers print the queue.

The composition root builds one Floor. Whatever a device did for an operator (a scan
accepted or refused, a weight taken) is shown on the station's screen as its last device
message, in the same words the station API would have answered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from drivers.base import ScannedCode
from drivers.opcua_machine import MachineEvent
from gateway.desk.replies import Refused, Reply
from gateway.desk.service import StationService
from gateway.floor.devices import DeviceHooks, Devices
from gateway.floor.machines import Machines
from gateway.floor.printing import PrintQueue
from gateway.floor.supervisor import SupervisorPolicy
from gateway.floor.weighing import Weighing
from gateway.i18n import Lang, t
from gateway.orderbook.context import LineContext

__all__ = ["Floor"]

logger = logging.getLogger(__name__)


class Floor:
    def __init__(
        self, core: LineContext, stations: StationService, *, policy: SupervisorPolicy | None = None
    ) -> None:
        self.core = core
        self.stations = stations
        self.devices = Devices(core, DeviceHooks(self._scanned, self._machine_event), policy=policy)
        self.machines = Machines(core, stations, self.devices)
        self.printing = PrintQueue(core, self.devices)
        self.weighing = Weighing(stations, self.devices, self.say)
        self.messages: dict[str, dict[str, Any]] = {}
        # Told of each station whose devices said something (a scan refused emits no
        # event): the live screens show it at once (gateway/web/live.py).
        self.on_said: Callable[[str], None] = lambda station: None
        self._seq = itertools.count(1)

    async def run(self) -> None:
        self.machines.adopt_jobs()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.devices.run(), name="devices")
                tg.create_task(self.printing.run(), name="print queues")
                tg.create_task(self.weighing.run(), name="weighing")
        finally:
            await self.machines.close()

    def _scanned(self, station: str, code: ScannedCode) -> None:
        answer: Reply | Refused
        try:
            answer = self.stations.scan(station, code.text, code.symbology)
        except Refused as exc:
            answer = exc
        except Exception:
            # A scan must never take the scanner down with it: the operator sees an error.
            logger.exception("station %s: scan %r failed", station, code.text)
            answer = Refused(
                "INTERNAL", t("That scan could not be handled."), t("Tell the line lead.")
            )
        self.say(station, "scanner", answer, code.text)

    def _machine_event(self, station: str, event: MachineEvent) -> None:
        self.machines.on_event(station, event)

    def say(
        self, station: str, source: str, answer: Reply | Refused, code: str | None = None
    ) -> None:
        """Keep what a device did for the operator, for the station screen."""
        msg: dict[str, Any] = {
            "seq": next(self._seq),
            "source": source,
            "code": code,
            "ok": isinstance(answer, Reply) and answer.ok,
            "refused": answer.code if isinstance(answer, Refused) else None,
            "message": answer.message,
            "next": answer.next,
            "message_zh": answer.message_text.render(Lang.ZH),
            "next_zh": answer.next_text.render(Lang.ZH),
        }
        self.messages[station] = msg
        self.on_said(station)
        if isinstance(answer, Refused):
            logger.info("station %s: %s %r refused: %s", station, source, code, answer.message)

    def station_view(self, station: str) -> dict[str, Any]:
        """What the station screen adds to the station's view: devices and their last word."""
        return {
            "devices": self.devices.station_health(station),
            "device_message": self.messages.get(station),
        }
