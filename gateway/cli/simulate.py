"""``linegate simulate DIR``: serve a simulated device for every device the line names.

The simulators listen where the gateway will connect (the addresses in the station
files), so ``linegate run --config DIR`` runs against them as against the real floor. A
small control API lets people, tests and the demo's operators act on the devices: scan a
code, put a parcel on the scale, pull a plug, run out of paper.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator

import uvicorn

from gateway.config.line import LineConfig
from gateway.config.load import EX_CONFIG, ConfigError, load_line_config
from simulators.control import create_control_app
from simulators.line import DeviceSpec, SimulatedLine

__all__ = ["device_specs", "simulate_command"]

logger = logging.getLogger(__name__)


def device_specs(config: LineConfig) -> list[DeviceSpec]:
    return [
        DeviceSpec(station.id, name, device)
        for station in config.stations.values()
        for name, device in station.devices.items()
    ]


def simulate_command(args: argparse.Namespace) -> int:
    try:
        config = load_line_config(args.dir)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_CONFIG
    line = SimulatedLine(device_specs(config), machine_cycle_s=args.machine_cycle_s, seed=args.seed)
    try:
        asyncio.run(_serve(line, args.control_host, args.control_port))
    except OSError as exc:
        print(f"linegate simulate: {exc}", file=sys.stderr)
        return 75
    return 0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the command owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(line: SimulatedLine, host: str, port: int) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # As for the station API: without it each answer waits ~40 ms (Nagle vs delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.setblocking(False)
    server = _Server(
        uvicorn.Config(
            create_control_app(line), log_level="warning", lifespan="off", access_log=False
        )
    )
    await line.start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                await serving
                return
            await asyncio.sleep(0.01)
        # One line a supervisor (or a test) can wait for.
        print(
            f"linegate simulate: {len(line.devices)} devices; control API on "
            f"http://{host}:{sock.getsockname()[1]}",
            flush=True,
        )
        await serving
    except asyncio.CancelledError:
        logger.info("stopping the simulators")
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(5):
                await serving
        await line.stop()
        sock.close()
