"""The ``linegate`` command: run a line, check its config, trace units and lots, list the
devices, simulate a line's devices, the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.cli import access, audit, capacity, certs, report
from gateway.cli.broker import parse_broker
from gateway.config.load import EX_CONFIG, ConfigError, check_config, load_line_config

if TYPE_CHECKING:  # the gateway's imports (uvicorn, paho) are not needed to check a config
    from gateway.app.root import Gateway

DEFAULT_CONFIG = Path(os.environ.get("LINEGATE_CONFIG", "/etc/linegate"))
EX_SOFTWARE = 70
EX_TEMPFAIL = 75  # sysexits.h: try again later (systemd restarts it)


class _Commands(Protocol):
    """A module of commands: ``COMMANDS`` names them, ``add_parsers`` adds their parsers to
    the subparsers, ``run`` runs one. Light to import: it imports what a command needs when
    the command runs."""

    COMMANDS: frozenset[str]

    def add_parsers(self, sub: Any, default_config: Path) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# users, tokens, terminals; audit; capacity; certs; report.
_MODULES: tuple[_Commands, ...] = (access, audit, capacity, certs, report)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="linegate", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a line's gateway")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="line config folder")
    run.add_argument("--data-dir", type=Path, help="folder for the database (default: store.path)")
    run.add_argument("--broker", help="mqtt://HOST:PORT, overrides hub.url")
    run.add_argument("--http-port", type=int, help="station API port, overrides http.port")
    run.add_argument("-v", "--verbose", action="store_true")
    # For tests that run the gateway as a process: its clock that many seconds off the
    # system's (the same offset across restarts, so its time never runs back), so that
    # shifts, ship-bys and lot expiry do not depend on the day the test runs. A real line
    # runs on the system clock: not in --help.
    run.add_argument("--clock-offset-s", type=float, default=0.0, help=argparse.SUPPRESS)

    check = sub.add_parser("check-config", help="validate a line config folder (exit 78 if bad)")
    check.add_argument("dir", type=Path)

    trace = sub.add_parser("trace", help="genealogy of a unit (backward) or a lot (forward)")
    trace.add_argument("serial", nargs="?", help="unit serial")
    trace.add_argument("--lot", help="trace a material lot forward instead")
    trace.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    trace.add_argument("--data-dir", type=Path)
    trace.add_argument("--db", type=Path, help="the database file itself")
    trace.add_argument("--json", action="store_true")

    devices = sub.add_parser(
        "devices", help="every device's state and diagnostics (from the running gateway)"
    )
    devices.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    devices.add_argument("--url", help="the gateway's station API (default: from [http])")
    devices.add_argument("--token", help="an API token to ask with (default: $LINEGATE_TOKEN)")
    devices.add_argument(
        "--probe",
        action="store_true",
        help="connect to each device once from here instead (the gateway must be stopped "
        "for serial and HID devices)",
    )
    devices.add_argument("--json", action="store_true")

    simulate = sub.add_parser(
        "simulate", help="serve simulated devices for every device a line config names"
    )
    simulate.add_argument("dir", type=Path, help="line config folder")
    simulate.add_argument("--control-port", type=int, default=8099, help="0 picks a free port")
    simulate.add_argument("--control-host", default="127.0.0.1")
    simulate.add_argument(
        "--machine-cycle-s", type=float, default=2.0, help="how long a machine job runs"
    )
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("-v", "--verbose", action="store_true")

    plan = sub.add_parser(
        "plan",
        help="the line's current plan (--config), or solve a file: a job-shop benchmark, "
        "or orders on a line",
    )
    source = plan.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config", type=Path, help="a line config folder: show the plan its gateway follows"
    )
    source.add_argument("--jsp", type=Path, help="a job-shop instance (OR-Library format)")
    source.add_argument("--orders", type=Path, help="a JSON array of hub order documents")
    plan.add_argument("--catalog", type=Path, help="with --orders: the catalog JSON")
    plan.add_argument("--stations", type=Path, help="with --orders: a line config folder")
    plan.add_argument(
        "--now",
        help="the planning instant (ISO 8601, with offset): needed with --orders; with "
        "--config, plan the line's database here as at that instant (implies --offline)",
    )
    plan.add_argument(
        "--time-limit",
        type=float,
        help="seconds for the solver (default: 10, or the line's [planner] time_limit_s)",
    )
    plan.add_argument("--workers", type=int, default=2, help="solver threads")
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.add_argument("--data-dir", type=Path, help="with --config: the gateway's data folder")
    plan.add_argument("--url", help="with --config: the gateway's address (default: [http])")
    plan.add_argument("--token", help="an API token to ask with (default: $LINEGATE_TOKEN)")
    plan.add_argument(
        "--offline",
        action="store_true",
        help="with --config: plan from the database here, without asking the gateway",
    )
    plan.add_argument(
        "--per-station", type=int, default=12, help="with --config: tasks shown per station"
    )

    demo = sub.add_parser("demo", help="run the reference line with a simulated hub and operators")
    demo.add_argument("--broker", help="mqtt://HOST:PORT; without it no broker is needed")
    demo.add_argument("--site", default="hz01")
    demo.add_argument("--line", default="line3")
    demo.add_argument(
        "--orders",
        type=int,
        default=60,
        help="orders the simulated hub releases at the start (0: none of its own; they come "
        "from another hub on --broker)",
    )
    demo.add_argument(
        "--pace",
        type=float,
        help="new orders per hour of line time after the first batch, until Ctrl-C "
        "(default: what keeps the busiest station about 30%% busy; 0: none)",
    )
    demo.add_argument(
        "--exit-when-done",
        action="store_true",
        help="release the --orders N, then exit with the verdict once they are done "
        "(default: keep the line and its screens running until Ctrl-C)",
    )
    demo.add_argument("--speed", type=float, default=60.0, help="time compression factor")
    demo.add_argument("--data-dir", type=Path, help="default: a new temporary folder")
    demo.add_argument("--http-port", type=int, default=8080, help="0 picks a free port")
    demo.add_argument(
        "--error-rate",
        type=float,
        default=0.05,
        help="share of operator actions that go wrong (wrong lot, failed check…)",
    )
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--start",
        help="the line's clock at the start, ISO 8601 with offset (default: now); at night "
        "moved back to the start of the last shift",
    )
    demo.add_argument("--config", type=Path, help="line config (default: the reference line)")
    demo.add_argument(
        "--no-devices",
        action="store_true",
        help="no simulated devices: operators use the station API for scans and weights",
    )
    demo.add_argument("-v", "--verbose", action="store_true")

    # Commands that live in modules of their own (each adds its parsers, and runs them).
    for module in _MODULES:
        module.add_parsers(sub, DEFAULT_CONFIG)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for module in _MODULES:
        if args.command in module.COMMANDS:
            return module.run(args)
    if args.command != "plan":  # the solver needs numpy; every other command is lighter without
        _without_pandas()
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "verbose", False):
        # The device libraries log every connect and request at INFO, the scheduler every
        # job it adds, the HTTP client every request.
        for noisy in ("asyncua", "pymodbus", "apscheduler", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # asyncua logs a traceback each time a session's link drops; the supervisor
        # already says so in one line.
        logging.getLogger("asyncua.client.ua_session").setLevel(logging.CRITICAL)
    if args.command == "check-config":
        return check_config(args.dir, sys.stdout, sys.stderr)
    if args.command == "run":
        return _run(args)
    if args.command == "trace":
        from gateway.cli.trace import trace_command

        return trace_command(args)
    if args.command == "devices":
        from gateway.cli.devices import devices_command

        return devices_command(args)
    if args.command == "simulate":
        from gateway.cli.simulate import simulate_command  # pulls in the simulators

        return simulate_command(args)
    if args.command == "plan":
        return _plan(args)
    if args.command == "demo":
        from gateway.cli.demo import run_demo  # the demo pulls in the simulators

        return run_demo(args)
    return 2


def _without_pandas() -> None:
    """sqlite-utils imports pandas and numpy whenever they are installed, and the planner's
    solver (ortools) installs them: +46 MiB in a process that never uses them. Mark them
    absent before anything imports sqlite-utils. The solver runs in its own process."""
    for name in ("pandas", "numpy"):
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # "absent", to importlib


def _run(args: argparse.Namespace) -> int:
    from gateway.app.health import Notifier
    from gateway.app.root import Gateway, http_link, mqtt_link
    from gateway.clock import Clock, ScaledClock, SystemClock
    from gateway.config.secrets import SecretError
    from gateway.config.tls import TlsFileError
    from gateway.store.db import StoreError

    try:
        # The certificate is checked against the real time, which the terminals check it
        # with, not the line's (--clock-offset-s).
        config = load_line_config(args.config, check_tls_at=SystemClock().now())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_CONFIG
    host = port = None
    if args.broker:
        host, port = parse_broker(args.broker)
    clock: Clock = SystemClock()
    if args.clock_offset_s:
        clock = ScaledClock(1.0, clock.now() + timedelta(seconds=args.clock_offset_s))
    gateway = Gateway(
        config,
        data_dir=args.data_dir,
        clock=clock,
        http_port=args.http_port,
        notifier=Notifier(),  # systemd's, when it started us with Type=notify
    )
    try:
        if config.hub.transport == "mqtt" or host:
            gateway.link = mqtt_link(config, clock, host, port)
        elif config.hub.transport == "http":
            gateway.link = http_link(config, gateway.store, gateway.core)
    except SecretError as exc:
        print(f"linegate: {exc}", file=sys.stderr)
        return EX_CONFIG
    try:
        asyncio.run(_serve(gateway))
    except TlsFileError as exc:  # changed on disk since it was checked
        print(f"linegate: http.tls: {exc}", file=sys.stderr)
        return EX_CONFIG
    except StoreError as exc:
        print(f"linegate: {exc}", file=sys.stderr)
        return EX_SOFTWARE
    except OSError as exc:  # the station API's address is taken or not ours
        print(
            f"linegate: cannot serve the station API on {config.http.host}:"
            f"{args.http_port if args.http_port is not None else config.http.port}: {exc}",
            file=sys.stderr,
        )
        return EX_TEMPFAIL
    return 0


async def _serve(gateway: Gateway) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await gateway.run()
    except asyncio.CancelledError:
        logging.getLogger(__name__).info("stopped")


def _plan(args: argparse.Namespace) -> int:
    from gateway.cli.plan_files import plan_jsp, plan_orders

    if (args.time_limit is not None and args.time_limit <= 0) or args.workers < 1:
        print("linegate plan: --time-limit must be positive, --workers at least 1", file=sys.stderr)
        return 2
    now: datetime | None = None
    if args.now is not None:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            print(f"linegate plan: --now is not an ISO 8601 time: {args.now!r}", file=sys.stderr)
            return 2
        if now.tzinfo is None:
            print("linegate plan: --now needs a UTC offset, e.g. +08:00", file=sys.stderr)
            return 2
    if args.config is not None:
        from gateway.cli.plan import plan_command

        return plan_command(args, now)
    if args.time_limit is None:
        args.time_limit = 10.0
    try:
        if args.jsp is not None:
            result = plan_jsp(args.jsp, args.time_limit, args.workers)
        else:
            missing = [k for k in ("catalog", "stations", "now") if getattr(args, k) is None]
            if missing or now is None:
                print(
                    "linegate plan: --orders needs " + ", ".join(f"--{k}" for k in missing),
                    file=sys.stderr,
                )
                return 2
            result = plan_orders(
                args.orders, args.catalog, args.stations, now, args.time_limit, args.workers
            )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_CONFIG
    except (OSError, ValueError, KeyError) as exc:
        print(f"linegate plan: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0
