"""Every simulated device a line config needs, started and stopped together.

``linegate simulate DIR`` builds one SimulatedLine from the line's device configs (the
gateway reads the config; this package never imports the gateway) and serves it with
the control API of :mod:`simulators.control`. The demo runs one in its own process loop.
What operators do to devices (scan a code, put a parcel on the scale) goes through
:class:`SimulatedLine` too, so the demo's operators and the integration tests act on the
floor the same way.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.barcode_hid import HidScannerConfig
from drivers.barcode_serial import SerialScannerConfig
from drivers.label_printer import LabelPrinterConfig
from drivers.modbus_scale import ModbusScaleConfig
from drivers.opcua_machine import OpcUaMachineConfig
from simulators.barcode_hid import SimulatedHidScanner
from simulators.barcode_serial import SimulatedSerialScanner
from simulators.faults import Faults, SimulatedDevice
from simulators.label_printer import SimulatedPrinter
from simulators.modbus_scale import SimulatedBuses, SimulatedScale
from simulators.opcua_machine import SimulatedMachine, write_test_certificate

__all__ = ["DeviceSpec", "SimulatedLine", "UnknownDevice"]

logger = logging.getLogger(__name__)


class UnknownDevice(LookupError):
    """No simulated device of that name or role at that station."""


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One ``[devices.NAME]`` table of a station file."""

    station: str
    device: str
    config: Any  # one of the drivers' config models


class SimulatedLine:
    """The simulators of a whole line, by ``station/device``."""

    def __init__(
        self,
        specs: Iterable[DeviceSpec],
        *,
        machine_cycle_s: float | Mapping[str, float] = 1.0,
        seed: int = 1,
    ) -> None:
        """``machine_cycle_s``: how long a machine's job runs, for all or by station.

        A machine whose config asks for security gets a self-signed server certificate
        made for this run (the gateway accepts it unless the config pins another).
        """
        self._pki: Path | None = None
        self.devices: dict[str, SimulatedDevice] = {}
        self.kinds: dict[str, str] = {}
        self.machines: dict[str, SimulatedMachine] = {}
        self.scales: dict[str, SimulatedScale] = {}
        self.printers: dict[str, SimulatedPrinter] = {}
        self.scanners: dict[str, SimulatedSerialScanner | SimulatedHidScanner] = {}
        # Scales that share an RS-485 line (or a TCP gateway) share one simulated server.
        buses = SimulatedBuses()
        for i, spec in enumerate(specs):
            name = f"{spec.station}/{spec.device}"
            cfg = spec.config
            faults = Faults()
            faults.rng.seed(seed * 1000 + i)
            device: SimulatedDevice
            if isinstance(cfg, OpcUaMachineConfig):
                cycle = (
                    machine_cycle_s
                    if isinstance(machine_cycle_s, float | int)
                    else machine_cycle_s.get(spec.station, 1.0)
                )
                certificate = private_key = None
                if cfg.security_policy != "None":
                    certificate, private_key = self._server_certificate(spec)
                machine = SimulatedMachine(
                    name,
                    cfg,
                    cycle_s=float(cycle),
                    faults=faults,
                    certificate=certificate,
                    private_key=private_key,
                )
                self.machines.setdefault(spec.station, machine)
                device = machine
            elif isinstance(cfg, ModbusScaleConfig):
                scale = SimulatedScale(
                    name, cfg, faults=faults, seed=seed + i, bus=buses.bus_for(cfg)
                )
                self.scales.setdefault(spec.station, scale)
                device = scale
            elif isinstance(cfg, LabelPrinterConfig):
                printer = SimulatedPrinter(name, cfg, faults=faults)
                self.printers.setdefault(spec.station, printer)
                device = printer
            elif isinstance(cfg, SerialScannerConfig):
                serial = SimulatedSerialScanner(name, cfg, faults=faults)
                self.scanners.setdefault(spec.station, serial)
                device = serial
            elif isinstance(cfg, HidScannerConfig):
                hid = SimulatedHidScanner(name, cfg, faults=faults)
                self.scanners.setdefault(spec.station, hid)
                device = hid
            else:
                raise TypeError(f"no simulator for {name} ({type(cfg).__name__})")
            self.devices[name] = device
            self.kinds[name] = cfg.kind

    def _server_certificate(self, spec: DeviceSpec) -> tuple[Path, Path]:
        if self._pki is None:
            self._pki = Path(tempfile.mkdtemp(prefix="lg-pki-"))
        if spec.config.server_certificate is not None:
            logger.warning(
                "%s/%s: the config pins the machine's certificate; the simulated machine "
                "has its own, which the gateway will refuse",
                spec.station,
                spec.device,
            )
        cert = self._pki / f"{spec.station}-{spec.device}.der"
        key = self._pki / f"{spec.station}-{spec.device}.pem"
        write_test_certificate(cert, key, f"urn:linegate:sim:{spec.station}:{spec.device}")
        return cert, key

    async def start(self) -> None:
        """Start every device; if one cannot (its port is taken), stop the others again."""
        results = await asyncio.gather(
            *(d.start() for d in self.devices.values()), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise failed[0]
        logger.info("simulating %d devices", len(self.devices))

    async def stop(self) -> None:
        """Take every device down for good (a machine's job sequence too)."""
        results = await asyncio.gather(
            *(
                d.close() if isinstance(d, SimulatedMachine) else d.stop()
                for d in self.devices.values()
            ),
            return_exceptions=True,
        )
        for name, result in zip(self.devices, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("simulator %s did not stop cleanly: %r", name, result)
        if self._pki is not None:
            shutil.rmtree(self._pki, ignore_errors=True)
            self._pki = None

    async def condition(self, name: str, condition: str, on: bool, reason: str = "") -> None:
        """Set a device's own fault: a machine fault, an unstable scale, paper out …"""
        device = self.device(name)
        if isinstance(device, SimulatedMachine) and condition == "fault":
            if on:
                await device.fault(reason or "operator stop")
            else:
                await device.clear_fault()
        elif isinstance(device, SimulatedScale) and condition == "unstable":
            device.unstable(on)
        elif isinstance(device, SimulatedPrinter) and condition == "paper_out":
            device.paper_out(on)
        elif isinstance(device, SimulatedPrinter) and condition == "head_open":
            device.head_open(on)
        elif isinstance(device, SimulatedPrinter) and condition == "paused":
            device.pause(on)
        else:
            raise ValueError(
                f"{name} ({self.kinds[name]}) has no condition {condition!r}; conditions: "
                "machine fault, scale unstable, printer paper_out / head_open / paused"
            )

    def device(self, name: str) -> SimulatedDevice:
        try:
            return self.devices[name]
        except KeyError:
            raise UnknownDevice(f"no simulated device {name}") from None

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "device": name,
                "kind": self.kinds[name],
                "faults": dev.faults.as_dict(),
                **dev.status(),
            }
            for name, dev in self.devices.items()
        ]

    # -- what operators do -------------------------------------------------------------

    def has_scanner(self, station: str) -> bool:
        return station in self.scanners

    def has_scale(self, station: str) -> bool:
        return station in self.scales

    async def scan(self, station: str, code: str, symbology: str | None = None) -> bool:
        """The operator pulls the trigger of the station's scanner; False when the scan
        is lost (a drop fault, or the scanner is unplugged)."""
        scanner = self.scanners.get(station)
        if scanner is None:
            raise UnknownDevice(f"station {station} has no simulated scanner")
        return await scanner.scan(code, symbology)

    def has_machine(self, station: str) -> bool:
        return station in self.machines

    async def place(self, station: str, grams: float) -> None:
        """The operator puts a parcel on the station's scale."""
        scale = self.scales.get(station)
        if scale is None:
            raise UnknownDevice(f"station {station} has no simulated scale")
        scale.place(grams)

    async def lift(self, station: str) -> None:
        """The operator takes the parcel off the scale."""
        scale = self.scales.get(station)
        if scale is None:
            raise UnknownDevice(f"station {station} has no simulated scale")
        scale.remove()
