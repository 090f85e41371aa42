"""The line's devices: one driver per ``[devices.NAME]`` table, each under a supervisor.

This module builds the drivers (no I/O), runs their supervisors, and turns health
transitions into alarms: a device that spends its restart budget raises
``alarm.raised`` and its recovery clears it. A device failure degrades its station
(shown on the station screen and by ``linegate devices``); the rest of the line goes on.
What the devices *do* for the stations is wired in :mod:`gateway.floor.floor`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from drivers.barcode_hid import HidScanner, HidScannerConfig
from drivers.barcode_serial import SerialScanner, SerialScannerConfig
from drivers.base import Driver, DriverState, ScannedCode
from drivers.label_printer import LabelPrinter, LabelPrinterConfig
from drivers.modbus_scale import ModbusScaleConfig
from drivers.opcua_machine import MachineEvent, OpcUaMachineConfig
from gateway.config.line import DeviceConfig, LineConfig
from gateway.floor.supervisor import DeviceHealth, DeviceSupervisor, SupervisorPolicy
from gateway.i18n import t
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.store.rows import Severity

if TYPE_CHECKING:
    # asyncua (~40 MiB) and pymodbus are loaded only when a line has such a device.
    from drivers.modbus_scale.bus import BusRegistry
    from drivers.modbus_scale.driver import ModbusScale
    from drivers.opcua_machine.driver import OpcUaMachine

__all__ = [
    "Buses",
    "DeviceHooks",
    "Devices",
    "StationDevices",
    "build_driver",
    "device_alarm_id",
]

logger = logging.getLogger(__name__)


def device_alarm_id(name: str) -> str:
    return f"device:{name}"


@dataclass(frozen=True, slots=True)
class DeviceHooks:
    """Where device input goes: set by the floor wiring before the devices start."""

    on_scan: Callable[[str, ScannedCode], None]  # (station, code)
    on_machine: Callable[[str, MachineEvent], None]  # (station, event)


@dataclass
class StationDevices:
    """A station's drivers by role; a station may have several scanners."""

    station: str
    scanners: list[SerialScanner | HidScanner] = field(default_factory=list)
    scale: ModbusScale | None = None
    machine: OpcUaMachine | None = None
    printer: LabelPrinter | None = None


class Buses:
    """The Modbus lines of a line's scales, made on first use (pymodbus is loaded then)."""

    def __init__(self) -> None:
        self._registry: BusRegistry | None = None

    @property
    def registry(self) -> BusRegistry:
        if self._registry is None:
            from drivers.modbus_scale.bus import BusRegistry

            self._registry = BusRegistry()
        return self._registry


def build_driver(
    name: str,
    cfg: DeviceConfig,
    buses: Buses,
    *,
    on_scan: Callable[[ScannedCode], None],
    on_machine: Callable[[MachineEvent], None],
) -> Driver:
    """The driver for one ``[devices.NAME]`` table (no I/O)."""
    if isinstance(cfg, SerialScannerConfig):
        return SerialScanner(name, cfg, on_scan)
    if isinstance(cfg, HidScannerConfig):
        return HidScanner(name, cfg, on_scan)
    if isinstance(cfg, ModbusScaleConfig):
        from drivers.modbus_scale.driver import ModbusScale

        return ModbusScale(name, cfg, buses.registry.bus_for(cfg))
    if isinstance(cfg, OpcUaMachineConfig):
        from drivers.opcua_machine.driver import OpcUaMachine

        return OpcUaMachine(name, cfg, on_machine)
    return LabelPrinter(name, cfg)


class Devices:
    """Builds every configured driver and runs each under its own supervisor."""

    def __init__(
        self,
        core: LineContext,
        hooks: DeviceHooks,
        *,
        policy: SupervisorPolicy | None = None,
    ) -> None:
        self.core = core
        self.config: LineConfig = core.config
        self._buses = Buses()
        self.stations: dict[str, StationDevices] = {}
        self.supervisors: dict[str, DeviceSupervisor] = {}
        self._station_of: dict[str, str] = {}
        # Told of the station whose device changed state (the live screens show it).
        self.state_listeners: list[Callable[[str], None]] = []
        for station in self.config.stations.values():
            devs = StationDevices(station.id)
            self.stations[station.id] = devs
            for device_name, cfg in station.devices.items():
                name = f"{station.id}/{device_name}"
                driver = self._build(name, station.id, cfg, devs, hooks)
                self._station_of[name] = station.id
                self.supervisors[name] = DeviceSupervisor(
                    driver, policy=policy, on_change=self._on_change
                )

    def _build(
        self, name: str, station: str, cfg: DeviceConfig, devs: StationDevices, hooks: DeviceHooks
    ) -> Driver:
        def scan(code: ScannedCode) -> None:
            hooks.on_scan(station, code)

        def machine_event(event: MachineEvent) -> None:
            hooks.on_machine(station, event)

        driver = build_driver(name, cfg, self._buses, on_scan=scan, on_machine=machine_event)
        if isinstance(cfg, SerialScannerConfig | HidScannerConfig):
            devs.scanners.append(cast("SerialScanner | HidScanner", driver))
        elif isinstance(cfg, ModbusScaleConfig):
            devs.scale = cast("ModbusScale", driver)
        elif isinstance(cfg, OpcUaMachineConfig):
            devs.machine = cast("OpcUaMachine", driver)
        elif isinstance(cfg, LabelPrinterConfig):
            devs.printer = cast("LabelPrinter", driver)
        return driver

    async def run(self) -> None:
        """Run every supervisor until cancelled; they never raise on a device failure."""
        if not self.supervisors:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for sup in self.supervisors.values():
                tg.create_task(sup.run(), name=f"device {sup.name}")

    def ready(self, driver: Driver | None) -> bool:
        if driver is None:
            return False
        sup = self.supervisors.get(driver.name)
        return sup is not None and sup.state is DriverState.READY

    def station_health(self, station: str) -> dict[str, str]:
        """Each device of a station by its local name, with its state."""
        return {
            name.split("/", 1)[1]: sup.state.value
            for name, sup in self.supervisors.items()
            if self._station_of[name] == station
        }

    def snapshot(self) -> list[dict[str, Any]]:
        """Every device's state and diagnostics (``linegate devices``, ``/api/devices``)."""
        now = time.monotonic()
        out = []
        for name, sup in self.supervisors.items():
            try:
                diag = sup.driver.diagnostics()
            except Exception as exc:  # noqa: BLE001 - diagnostics must never break the listing
                diag = {"error": f"diagnostics failed: {exc!r}"}
            out.append(
                {
                    "device": name,
                    "station": self._station_of[name],
                    "kind": sup.driver.kind,
                    "state": sup.state.value,
                    "since_s": round(now - sup.since, 1),
                    "restarts": sup.restarts,
                    "last_error": sup.last_error,
                    "diagnostics": diag,
                }
            )
        return out

    def _on_change(self, health: DeviceHealth) -> None:
        core = self.core
        alarm_id = device_alarm_id(health.name)
        station = self._station_of[health.name]
        if health.kind == "opcua_machine":
            if health.state is DriverState.READY:
                core.live_machines.add(station)
            else:
                core.live_machines.discard(station)
        if health.state is DriverState.FAILED:
            with core.store.transaction():
                raise_alarm(
                    core,
                    alarm_id,
                    "device_offline",
                    health.name,
                    Severity.MAJOR,
                    t(
                        "{device} ({kind}) is offline after {restarts} attempts: {error}. "
                        "Station {station} works without it until it is back.",
                        device=health.name,
                        kind=health.kind,
                        restarts=health.restarts,
                        error=str(health.error),
                        station=self._station_of[health.name],
                    ),
                )
        elif health.state is DriverState.READY:
            with core.store.transaction():
                clear_alarm(core, alarm_id, f"{health.name} is back online")
        for listener in self.state_listeners:
            listener(station)
