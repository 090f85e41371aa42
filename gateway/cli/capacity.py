"""``linegate capacity --orders FORECAST.json``: can the line take a promotion?

With the line's backlog, stock and calendar as its database holds them now (or at
``--now``), and the forecast's orders on top: when the line finishes, which orders miss
their carrier's cut-off, which station is the bottleneck, which materials run short, and
how much overtime on which shift of which station brings every order in on time
(gateway/planning/capacity.py). A table in Chinese or English (``--lang``, default the
line's ``[line] language``), or JSON.

Read-only, and safe beside the running gateway: the database is opened for reading only
(SQLite's WAL lets it read while the gateway writes), the forecast is never written to
it, and the work runs in a planning worker process at the lowest CPU priority, as the
gateway's own replans do. Exit codes: 0 answered; 1 answered, but some forecast orders
were refused (listed with their reasons); 65 the forecast is no forecast (not JSON, not an
array of orders, empty); 66 the forecast file cannot be read; 70 the database cannot be
read or the check failed; 78 a bad config.

The module adds its subcommand to the parser (:func:`add_parsers`) and runs it
(:func:`run`); what the command needs is imported when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

COMMANDS: frozenset[str] = frozenset({"capacity"})

EX_REFUSED = 1  # answered; some forecast orders were refused
EX_USAGE = 2
EX_DATAERR = 65  # sysexits.h: the forecast is no forecast
EX_NOINPUT = 66  # sysexits.h: the forecast file cannot be read
EX_SOFTWARE = 70  # the database cannot be read, or the check failed


def add_parsers(sub: Any, default_config: Path) -> None:
    """Add ``capacity`` to ``sub`` (argparse's subparsers)."""
    p = sub.add_parser(
        "capacity",
        help="can the line take a forecast of orders: finish, late orders, bottleneck, "
        "material shortfalls, overtime",
    )
    p.add_argument(
        "--orders", type=Path, required=True, help="the forecast: a JSON array of hub orders"
    )
    p.add_argument("--config", type=Path, default=default_config, help="line config folder")
    p.add_argument("--data-dir", type=Path, help="the gateway's data folder")
    p.add_argument("--db", type=Path, help="the database file itself (default: the config's)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--lang", choices=["zh-CN", "en"], help="default: the line's [line] language")
    p.add_argument("--now", help="check as at this instant (ISO 8601 with offset; default: now)")


def run(args: argparse.Namespace) -> int:
    if args.command != "capacity":
        raise AssertionError(f"no command {args.command} here")
    return capacity_command(args)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"linegate capacity: {message}\n")
    return code


def capacity_command(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.cli.trace import Unreadable, open_for_reading
    from gateway.clock import SystemClock
    from gateway.config.load import EX_CONFIG, ConfigError, load_line_config
    from gateway.i18n import Lang
    from gateway.planning.capacity import CapacityJob, NoAnswer, SolverFailed, check_capacity
    from gateway.planning.capacity_text import report, summary, why_none
    from gateway.planning.worker import PlanWorker

    now = SystemClock().now()
    if args.now is not None:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            return _fail(f"--now is not an ISO 8601 time: {args.now!r}", EX_USAGE)
        if now.tzinfo is None:
            return _fail("--now needs a UTC offset, e.g. +08:00", EX_USAGE)
    try:
        config = load_line_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EX_CONFIG
    if args.db is not None and args.data_dir is not None:
        return _fail("give --db or --data-dir, not both", EX_USAGE)
    path = args.db if args.db is not None else config.store_path(args.data_dir)
    try:
        open_for_reading(path).close()  # a linegate database, and readable: said in one line
    except Unreadable as exc:
        return _fail(str(exc), EX_SOFTWARE)
    try:
        forecast = args.orders.read_bytes()
    except OSError as exc:
        return _fail(f"cannot read the forecast {args.orders}: {exc.strerror or exc}", EX_NOINPUT)
    lang = Lang(args.lang or config.line.language)
    job = CapacityJob(config, path, now, forecast)
    try:
        answer = asyncio.run(check_capacity(PlanWorker(), job))
    except SolverFailed as exc:
        return _fail(f"the check failed: {exc}", EX_SOFTWARE)
    if isinstance(answer, NoAnswer):
        where = f"{args.orders}: " if answer.forecast else ""
        return _fail(where + why_none(answer, lang), EX_DATAERR if answer.forecast else 1)
    if args.json:
        doc = answer.model_dump(mode="json") | {"summary": summary(answer, lang)}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(report(answer, lang) + "\n")
    if answer.refused:
        return _fail(
            f"{len(answer.refused)} of the forecast's {answer.forecast_orders} orders were "
            "refused (listed with their reasons); the answer is for the others",
            EX_REFUSED,
        )
    return 0
