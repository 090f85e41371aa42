"""``linegate report PERIOD``: make a past period's report again, from the stored history.

It runs beside a running gateway: it reads the history (SQLite WAL: the gateway goes on
writing), renders in a child process at a low priority, swaps the report's files in and
writes its row in one short transaction. The hub hears of it through the gateway, which
alone hands out event numbers: ``report.published`` goes out with the gateway's next look
(a few seconds; at its next start if it is stopped), see gateway/numbers/reports/maker.py.

The module adds its subcommand to the parser (:func:`add_parsers`) and runs it
(:func:`run`); what the command needs is imported when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config.line import LineConfig
    from gateway.numbers.periods import Period

COMMANDS: frozenset[str] = frozenset({"report"})

EX_USAGE = 2
EX_SOFTWARE = 70


def add_parsers(sub: Any, default_config: Path) -> None:
    """Add ``report`` to ``sub`` (argparse's subparsers)."""
    p = sub.add_parser(
        "report",
        help="make a period's report again from the stored history (day:2026-11-26, "
        "week:2026-W48, month:2026-11, shift:2026-11-26:early)",
    )
    p.add_argument(
        "period", help="day:2026-11-26, week:2026-W48, month:2026-11 or shift:2026-11-26:early"
    )
    p.add_argument("--config", type=Path, default=default_config, help="line config folder")
    p.add_argument(
        "--data-dir", "--data", dest="data_dir", type=Path, help="the gateway's data folder"
    )
    p.add_argument("--db", type=Path, help="the database file itself (reports go beside it)")
    p.add_argument(
        "--raw",
        action="store_true",
        help="a week or month from the raw history rather than from its days' kept figures",
    )
    # For tests, as `linegate run` has it: the report's "made at" (and a late order's "late
    # by" when it is still open) that many seconds off the system's clock. Not in --help.
    p.add_argument("--clock-offset-s", type=float, default=0.0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.command != "report":
        raise AssertionError(f"no command {args.command} here")
    return report_command(args)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"linegate report: {message}\n")
    return code


def report_command(args: argparse.Namespace) -> int:
    from gateway.cli.trace import Unreadable, open_for_reading
    from gateway.config.load import EX_CONFIG, ConfigError, load_line_config
    from gateway.numbers.periods import parse_period
    from gateway.store.db import StoreError

    try:
        config = load_line_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EX_CONFIG
    if args.db is not None and args.data_dir is not None:
        return _fail("give --db or --data-dir, not both", EX_USAGE)
    try:
        period = parse_period(args.period, config.shifts, config.line.tzinfo)
    except ValueError as exc:
        return _fail(str(exc), EX_USAGE)
    path: Path = args.db if args.db is not None else config.store_path(args.data_dir)
    try:
        # Never a new database: a report of an empty file made by a mistyped path would
        # say the line made nothing.
        open_for_reading(path).close()
    except Unreadable as exc:
        return _fail(str(exc), EX_SOFTWARE)
    try:
        made = asyncio.run(_make(config, path, period, raw=args.raw, offset_s=args.clock_offset_s))
    except (StoreError, LookupError, OSError) as exc:
        return _fail(str(exc), EX_SOFTWARE)
    if made is None:
        return _fail(f"the {period.key} report could not be made (see the log above)", 1)
    folder, url = made
    sys.stdout.write(f"{period.key}: {folder}\n")
    for name in sorted(p.name for p in folder.iterdir()):
        sys.stdout.write(f"  {folder / name}\n")
    sys.stdout.write(
        f"served at {url}; report.published goes to the hub with the gateway's next sync\n"
    )
    return 0


async def _make(
    config: LineConfig, path: Path, period: Period, *, raw: bool, offset_s: float
) -> tuple[Path, str] | None:
    from gateway.clock import Clock, ScaledClock, SystemClock
    from gateway.numbers.analysis import why_late
    from gateway.numbers.closing import Closing
    from gateway.numbers.kpis import kpi_doc
    from gateway.numbers.reports.maker import Reports, event_data
    from gateway.orderbook.context import LineContext
    from gateway.store.db import Store
    from gateway.store.outbox import Outbox

    store = Store(path)
    store.open()
    try:
        # Nothing is appended to this outbox (the gateway numbers the events): it is what
        # the line's context is built with.
        clock: Clock = SystemClock()
        if offset_s:
            clock = ScaledClock(1.0, clock.now() + timedelta(seconds=offset_s))
        core = LineContext(config, store, Outbox(store, config.gateway_id), clock)
        version = store.get_setting("catalog_version")
        if version is not None:
            for doc in store.texts("SELECT doc FROM catalogs WHERE version = ?", (version,)):
                core.catalog.use_json(doc)
        # The late orders' reasons worked out again, as the gateway works them out.
        closing = Closing(core, why_late=lambda c, late, end: why_late(c, late, until=end))
        reports = Reports(core, closing, in_gateway=False)
        elements = await closing.regenerate(period, raw=raw)
        row = await reports.make(period, elements, kpi_doc(elements, period, config.line.timezone))
        if row is None:
            return None
        return reports.folder / row.report_id, str(event_data(row)["url"])
    finally:
        store.close()
