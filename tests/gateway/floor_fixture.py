"""A gateway in-process on the test's loop, driving the reference line's simulated devices.

The reference line is copied to a temporary folder with its device ports and paths moved
(:func:`simulators.relocate.relocate_line`), every simulator of it runs in-process on
loopback and ptys (:class:`simulators.line.SimulatedLine`), and a real
:class:`gateway.app.root.Gateway` (no hub link, station API on a free port) drives them with
its real drivers. Tests act as operators do: on the station service, and on the devices
(scan on the simulated scanner, put a parcel on the simulated scale …).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.cli.simulate import device_specs
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.desk.service import StationService
from gateway.floor.supervisor import SupervisorPolicy
from simulators.keys import LineKeys
from simulators.line import SimulatedLine
from simulators.relocate import relocate_line
from tests.clocks import line_clock
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, stock_doc
from tests.keys import issue_keys

__all__ = ["FAST_DEVICES", "FloorRig", "floor_rig", "start_simulators", "until"]

# Fast reconnects, and a device counts as failed at its second restart within 30 s.
FAST_DEVICES = SupervisorPolicy(initial_s=0.05, max_s=0.2, budget=1, window_s=30)
# How long a machine's job runs on the simulated machines.
MACHINE_CYCLE_S = 0.3


@dataclass
class FloorRig:
    """The gateway, the simulated floor and the helpers the tests use; ``keys`` the
    credentials of the station API's clients (each station's terminal, a token per role)."""

    gateway: Gateway
    sim: SimulatedLine
    config: LineConfig
    keys: LineKeys

    @property
    def svc(self) -> StationService:
        return self.gateway.stations

    def send(self, topic: str, payload: Any) -> None:
        """A message from the hub, as the MQTT link would deliver it."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.gateway.inbound.deliver([InboundMessage(topic, raw)])

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Every event in the outbox, oldest first (optionally of one type)."""
        out = [json.loads(r.payload) for r in self.gateway.outbox.peek(0, 1_000_000)]
        return [e for e in out if type_ is None or e["type"] == type_]

    def alarms(self, type_: str, alarm_id: str) -> list[dict[str, Any]]:
        """``alarm.raised`` / ``alarm.cleared`` events of one alarm."""
        return [e for e in self.events(type_) if e["data"]["alarm_id"] == alarm_id]

    def device_state(self, name: str) -> str:
        """The supervisor's state of ``station/device``."""
        return self.gateway.floor.devices.supervisors[name].state.value

    def station_view(self, station: str) -> dict[str, Any]:
        """What the station screen shows (the station API's view, devices included)."""
        return {**self.svc.view(station), **self.gateway.floor.station_view(station)}

    def print_job(self, job_id: str) -> dict[str, Any]:
        row = self.gateway.store.one("SELECT * FROM print_jobs WHERE job_id = ?", (job_id,))
        assert row is not None, job_id
        return dict(row)

    def task(self, task_id: int) -> dict[str, Any]:
        row = self.gateway.store.one("SELECT * FROM tasks WHERE task_id = ?", (task_id,))
        assert row is not None, task_id
        return dict(row)


async def until(what: str, pred: Callable[[], object], within: float = 10.0) -> None:
    """Wait (polling) until ``pred()`` is true; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        await asyncio.sleep(0.02)


async def start_simulators(tmp_path: Path, sim_root: Path) -> tuple[LineConfig, SimulatedLine]:
    """Relocate the reference line and start its simulators.

    The free ports the copy names were free when picked, not necessarily when a simulator
    binds them (anything on the box may take one meanwhile): then the simulators started
    are stopped and the line is moved to other ports.
    """
    config_dir = tmp_path / "line"
    for attempt in range(1, 4):
        relocate_line(REFERENCE_LINE, config_dir, sim_root)
        config = load_line_config(config_dir)
        sim = SimulatedLine(device_specs(config), machine_cycle_s=MACHINE_CYCLE_S)
        # Not SimulatedLine.start: every start must be over before the line is stopped.
        results = await asyncio.gather(
            *(d.start() for d in sim.devices.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            return config, sim
        await sim.stop()
        taken = all(_port_taken(e) for e in errors)
        if not taken or attempt == 3:
            raise errors[0]
    raise AssertionError("unreachable")


def _port_taken(error: BaseException) -> bool:
    # asyncio raises EADDRINUSE; pymodbus's server only says it could not listen.
    if isinstance(error, OSError):
        return error.errno == errno.EADDRINUSE
    return isinstance(error, RuntimeError) and "Could not start listen" in str(error)


@contextlib.asynccontextmanager
async def floor_rig(tmp_path: Path) -> AsyncIterator[FloorRig]:
    """The reference line relocated under ``tmp_path``, its simulators and a gateway on
    them, every device ready, the catalog and stock delivered."""
    # Unix socket paths are limited to 108 bytes: the simulated devices get a short root.
    sim_root = Path(tempfile.mkdtemp(prefix="lg-"))
    try:
        config, sim = await start_simulators(tmp_path, sim_root)
        try:
            (tmp_path / "data").mkdir()
            gw = Gateway(
                config,
                data_dir=tmp_path / "data",
                clock=line_clock(),
                link=None,
                http_port=0,
                device_policy=FAST_DEVICES,
            )
            running = asyncio.create_task(gw.run(), name="gateway")
            try:
                started = asyncio.create_task(gw.started.wait())
                await asyncio.wait({running, started}, return_when=asyncio.FIRST_COMPLETED)
                if not started.done():
                    started.cancel()
                    await running  # raises why the gateway did not start
                keys = issue_keys(gw.store, config, gw.core.clock.now())
                rig = FloorRig(gw, sim, config, keys)
                rig.send("in/masterdata/catalog", catalog_bytes())
                rig.send("in/masterdata/stock", stock_doc())
                await until(
                    "every device ready",
                    lambda: all(
                        s.state.value == "ready" for s in gw.floor.devices.supervisors.values()
                    ),
                )
                yield rig
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
        finally:
            await sim.stop()
    finally:
        shutil.rmtree(sim_root, ignore_errors=True)
