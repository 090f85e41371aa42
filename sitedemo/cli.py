"""``python -m sitedemo`` (``make demo``): a site of two or three lines and its office."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from datetime import datetime
from pathlib import Path

from sitedemo.run import SiteOptions, run_site

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sitedemo",
        description="the office with its lines: a broker, the office (embedded SQLite), two "
        "or three simulated lines (`linegate demo` each, with devices and operators) and a "
        "simulated shop that sends the office its orders",
    )
    p.add_argument("--lines", type=int, default=2, help="lines of the site, 1 to 3 (default 2)")
    p.add_argument(
        "--orders", type=int, default=12, help="orders the shop sends at the start (default 12)"
    )
    p.add_argument(
        "--pace",
        type=float,
        default=20.0,
        help="then orders per line and hour of line time, until Ctrl-C (default 20; 0: none)",
    )
    p.add_argument(
        "--exit-when-done",
        action="store_true",
        help="send the --orders N, then stop every part and exit with the verdict once "
        "they are completed",
    )
    p.add_argument("--speed", type=float, default=60.0, help="time compression factor")
    p.add_argument(
        "--http-port",
        type=int,
        default=8470,
        help="the office's port; line i gets this + i (0: free ports for all)",
    )
    p.add_argument("--data-dir", type=Path, help="default: a new temporary folder")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", help="the lines' clock at the start, ISO 8601 with offset")
    p.add_argument("--no-devices", action="store_true", help="the lines without devices")
    p.add_argument(
        "--timeout", type=float, default=900.0, help="with --exit-when-done: give up after S s"
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _problem(args: argparse.Namespace) -> str | None:
    if not 1 <= args.lines <= 3:
        return "--lines must be 1, 2 or 3 (two planners on a small box are plenty)"
    if args.orders < 1:
        return "--orders must be 1 or more"
    if not math.isfinite(args.pace) or args.pace < 0:
        return "--pace must be 0 or more orders an hour"
    if not math.isfinite(args.speed) or args.speed <= 0:
        return "--speed must be positive"
    if not 0 <= args.http_port <= 65535 - args.lines:
        return "--http-port must leave room for the lines' ports"
    if args.start is not None:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            return f"--start is not an ISO 8601 time: {args.start!r}"
        if start.tzinfo is None:
            return "--start needs a UTC offset, e.g. 2026-11-26T10:00:00+08:00"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    problem = _problem(args)
    if problem is not None:
        sys.stderr.write(f"linegate site demo: {problem}\n")
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The board tries each line's /metrics from the start, before the lines are up.
        logging.getLogger("office.answer.board_scrape").setLevel(logging.ERROR)
    options = SiteOptions(
        lines=args.lines,
        orders=args.orders,
        pace_per_line_h=args.pace,
        exit_when_done=args.exit_when_done,
        speed=args.speed,
        http_port=args.http_port,
        data_dir=args.data_dir,
        seed=args.seed,
        start=args.start,
        no_devices=args.no_devices,
        timeout_s=args.timeout,
    )
    return run_site(options)
