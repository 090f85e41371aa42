"""``linegate devices``: every device's state and diagnostics.

Asked of the running gateway (``GET /api/devices``), which knows each device's history:
state, restarts, last error. With ``--probe``, or when no gateway answers, each device is
connected once from here instead, which is what one wants while commissioning a line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from drivers.base import Driver, DriverError
from gateway.cli.http import ask_gateway
from gateway.config.line import LineConfig
from gateway.config.load import EX_CONFIG, ConfigError, load_line_config
from gateway.floor.devices import Buses, build_driver

__all__ = ["devices_command"]

# How long a probed device may take to connect, and to show a first reading.
_PROBE_CONNECT_S = 5.0
_PROBE_RUN_S = 1.0


def devices_command(args: argparse.Namespace) -> int:
    # The listing is the output; the drivers' connect lines would only repeat it.
    logging.getLogger().setLevel(logging.WARNING)
    try:
        config = load_line_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_CONFIG
    rows: list[dict[str, Any]] | None = None
    source = "probe"
    if not args.probe:
        answer = ask_gateway(
            "devices",
            config,
            args.url,
            "/api/devices",
            otherwise="connecting to each device from here",
            token=args.token,
        )
        if answer is not None:
            rows, source = answer
    if rows is None:
        rows = asyncio.run(probe(config))
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(format_devices(rows, source))
    return 0 if all(r["state"] == "ready" for r in rows) else 1


async def probe(config: LineConfig) -> list[dict[str, Any]]:
    """Connect to every device once, in parallel; report what each said."""
    buses = Buses()
    drivers: list[tuple[str, Driver]] = []
    for station in config.stations.values():
        for name, cfg in station.devices.items():
            full = f"{station.id}/{name}"
            drivers.append(
                (
                    station.id,
                    build_driver(
                        full, cfg, buses, on_scan=lambda _c: None, on_machine=lambda _e: None
                    ),
                )
            )
    return list(await asyncio.gather(*(_probe_one(s, d) for s, d in drivers)))


async def _probe_one(station: str, driver: Driver) -> dict[str, Any]:
    state, error = "ready", None
    try:
        async with asyncio.timeout(_PROBE_CONNECT_S):
            await driver.connect()
        # Let the driver take a reading or two, so the diagnostics show live values.
        try:
            async with asyncio.timeout(_PROBE_RUN_S):
                await driver.run()
        except TimeoutError:
            pass
    except (DriverError, TimeoutError, OSError) as exc:
        state, error = "unreachable", f"{type(exc).__name__}: {exc}"
    try:
        diag = driver.diagnostics()
    finally:
        try:
            async with asyncio.timeout(_PROBE_CONNECT_S):
                await driver.close()
        except (DriverError, TimeoutError, OSError):
            pass
    return {
        "device": driver.name,
        "station": station,
        "kind": driver.kind,
        "state": state,
        "last_error": error,
        "diagnostics": diag,
    }


def format_devices(rows: list[dict[str, Any]], source: str) -> str:
    lines = [f"devices ({'probed from here' if source == 'probe' else 'gateway at ' + source})"]
    width = max((len(r["device"]) for r in rows), default=6)
    for r in rows:
        since = f" for {r['since_s']:g} s" if "since_s" in r else ""
        restarts = f", {r['restarts']} restarts" if r.get("restarts") else ""
        lines.append(f"{r['device']:<{width}}  {r['kind']:<15} {r['state']}{since}{restarts}")
        if r.get("last_error"):
            lines.append(f"{'':<{width}}  last error: {r['last_error']}")
        lines.extend(
            f"{'':<{width}}  {chunk}" for chunk in _wrap(_pairs(r.get("diagnostics") or {}))
        )
    if not rows:
        lines.append("(this line has no devices)")
    return "\n".join(lines)


def _pairs(diag: dict[str, Any]) -> list[str]:
    """``key=value`` for what is worth reading: nothing for empty values, and only the
    flags that are set of a nested status."""
    out = []
    for key, value in diag.items():
        if value is None or value == [] or value == "":
            continue
        if isinstance(value, dict):
            shown = [k if v is True else f"{k}={v}" for k, v in value.items() if v]
            out.append(f"{key}=({', '.join(shown)})" if shown else f"{key}=()")
        else:
            out.append(f"{key}={value}")
    return out


def _wrap(pairs: list[str], width: int = 96) -> list[str]:
    lines: list[str] = []
    current = ""
    for pair in pairs:
        if current and len(current) + 2 + len(pair) > width:
            lines.append(current)
            current = pair
        else:
            current = f"{current}, {pair}" if current else pair
    if current:
        lines.append(current)
    return lines
