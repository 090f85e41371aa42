"""``linegate audit``: who did, or was refused, what, read from a line's database.

Like ``linegate trace`` it is run beside a running gateway with a path typed by hand: it
opens the database for reading only, never creates a file, and says in one line why a
path cannot be read. Records come oldest first, newest last, as a table (times in the
line's time zone with ``--config``, in UTC with ``--db``) or as JSON, one record a line.

The module adds its subcommand to the parser (:func:`add_parsers`) and runs it
(:func:`run`); ``COMMANDS`` names it, for ``gateway.cli.main`` to dispatch. What the
command needs is imported when it runs: every ``linegate`` command builds this parser.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.store.rows import AuditRow

COMMANDS: frozenset[str] = frozenset({"audit"})

EX_USAGE = 2  # argparse's own exit for a bad command line
EX_SOFTWARE = 70  # the database cannot be read (as `linegate trace` exits)

# A duration back from now: one or more of a number and its unit (90m, 24h, 1h30m, 7d).
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_HEADER = ("time", "outcome", "action", "actor", "role", "station", "target", "client", "detail")


class BadTime(ValueError):
    """A --since or --until this command cannot read."""


def add_parsers(sub: Any, default_config: Path) -> None:
    """Add ``audit`` to ``sub`` (argparse's subparsers)."""
    p = sub.add_parser("audit", help="who did, or was refused, what: the audit trail, newest last")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        type=Path,
        default=default_config,
        help="line config folder (times are read and shown in the line's time zone)",
    )
    where.add_argument("--db", type=Path, help="the database file itself (times in UTC)")
    p.add_argument("--data-dir", type=Path, help="with --config: the gateway's data folder")
    p.add_argument(
        "--since",
        help="from this time on: ISO 8601 (2026-11-26, 2026-11-26T08:00, with an offset "
        "or Z under --db) or a duration back from now (90m, 24h, 1h30m, 7d, 2w)",
    )
    p.add_argument("--until", help="before this time (the same forms)")
    p.add_argument("--actor", help="this badge, user or token id only")
    p.add_argument("--action", help="this action only (sign_in, request, replan, user_add …)")
    p.add_argument("--outcome", help="ok or denied")
    p.add_argument("--json", action="store_true", help="one JSON object a record, a line each")
    # For tests, as `linegate run` has it: "now" (for --since 24h) that many seconds off
    # the system's clock, so that a test does not depend on the day it runs. Not in --help.
    p.add_argument("--clock-offset-s", type=float, default=0.0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.command != "audit":
        raise AssertionError(f"no command {args.command} here")
    return audit_command(args)


def audit_command(args: argparse.Namespace) -> int:
    from gateway.access.audit import AuditAction, has_trail, published_through, read_trail
    from gateway.cli.trace import Unreadable, open_for_reading
    from gateway.clock import SystemClock
    from gateway.config.load import EX_CONFIG, ConfigError, load_line_config
    from gateway.store.rows import AuditOutcome

    def fail(message: str, code: int) -> int:
        sys.stderr.write(f"linegate audit: {message}\n")
        return code

    actions = [a.value for a in AuditAction]
    if args.action is not None and args.action not in actions:
        return fail(f"--action {args.action!r} is none of: {', '.join(actions)}", EX_USAGE)
    outcomes = [o.value for o in AuditOutcome]
    if args.outcome is not None and args.outcome not in outcomes:
        return fail(f"--outcome {args.outcome!r} is none of: {', '.join(outcomes)}", EX_USAGE)
    zone: tzinfo | None = None
    if args.db is not None:
        if args.data_dir is not None:
            return fail("--data-dir goes with --config, not with --db", EX_USAGE)
        path = args.db
    else:
        try:
            config = load_line_config(args.config)
        except ConfigError as exc:
            sys.stderr.write(f"{exc}\n")
            return EX_CONFIG
        path = config.store_path(args.data_dir)
        zone = config.line.tzinfo
    now = SystemClock().now() + timedelta(seconds=args.clock_offset_s)
    try:
        since = None if args.since is None else parse_when(args.since, now, zone)
        until = None if args.until is None else parse_when(args.until, now, zone)
    except BadTime as exc:
        return fail(str(exc), EX_USAGE)
    if since is not None and until is not None and since >= until:
        return fail("--since must be before --until", EX_USAGE)
    try:
        store = open_for_reading(path)
    except Unreadable as exc:
        return fail(str(exc), EX_SOFTWARE)
    try:
        if not has_trail(store):
            return fail(
                f"{path} has no audit trail: no gateway of this linegate version has opened it yet",
                EX_SOFTWARE,
            )
        rows = read_trail(
            store,
            since=since,
            until=until,
            actor=args.actor,
            action=args.action,
            outcome=None if args.outcome is None else AuditOutcome(args.outcome),
        )
        through = published_through(store)
    except sqlite3.Error as exc:  # damaged past its header, or locked for too long
        return fail(f"cannot read {path}: {exc}", EX_SOFTWARE)
    finally:
        store.close()
    if args.json:
        sys.stdout.write("".join(json_line(r, r.id <= through) + "\n" for r in rows))
        return 0
    if not rows:
        return fail("no record matches", 0)
    sys.stdout.write(format_table(rows, zone))
    waiting = sum(r.id > through for r in rows)
    if waiting:
        # Recorded by another process (the CLI): a running gateway reports them within
        # seconds, a stopped one when it starts.
        sys.stderr.write(
            f"linegate audit: {waiting} of these records wait for the gateway to report "
            "them to the hub\n"
        )
    return 0


def parse_when(text: str, now: datetime, zone: tzinfo | None) -> datetime:
    """A --since or --until: a duration back from ``now``, or an ISO 8601 date or time (one
    without an offset in ``zone``, the line's; refused when that is unknown)."""
    text = text.strip()
    if _DURATION.fullmatch(text):
        seconds = sum(int(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(text))
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise BadTime(f"{text} reaches back before the year 1") from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadTime(
            f"{text!r} is neither an ISO 8601 time (2026-11-26T08:00+08:00) nor a duration "
            "back from now (90m, 24h, 7d)"
        ) from None
    if when.tzinfo is None:
        if zone is None:
            raise BadTime(
                f"{text} has no UTC offset, and with --db the line's time zone is unknown: "
                "add one (+08:00, or Z for UTC)"
            )
        when = when.replace(tzinfo=zone)
    return when


def json_line(row: AuditRow, published: bool) -> str:
    """One record as a JSON object (a lone surrogate, which no record should hold, as its
    JSON escape rather than an error writing it)."""
    from gateway.access.audit import event_data

    # The event's fields, and what stays on the line: the id, the time, the detail.
    doc = {
        "id": row.id,
        "ts": row.ts,
        **event_data(row),
        "detail": row.detail,
        "published": published,
    }
    text = json.dumps(doc, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def format_table(rows: Sequence[AuditRow], zone: tzinfo | None) -> str:
    """The records as aligned columns, one line each; the detail last, unpadded."""
    table = [list(_HEADER)] + [
        [
            _shown_time(r.ts, zone),
            *(
                _cell(v)
                for v in (r.outcome, r.action, r.actor, r.role, r.station, r.target, r.client)
            ),
            _cell(r.detail),
        ]
        for r in rows
    ]
    widths = [max(_width(line[i]) for line in table) for i in range(len(_HEADER) - 1)]
    out = []
    for line in table:
        padded = [c + " " * (w - _width(c)) for c, w in zip(line, widths, strict=False)]
        out.append("  ".join([*padded, line[-1]]).rstrip() + "\n")
    return "".join(out)


def _shown_time(ts: str, zone: tzinfo | None) -> str:
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:  # not written by linegate: shown as it is
        return _cell(ts)
    return (when if zone is None else when.astimezone(zone)).isoformat(" ", "seconds")


def _cell(value: str | None) -> str:
    """A field on one line of a terminal: what does not print (a line break, a control
    character, a bidirectional override that would turn the line around) as its escape."""
    if value is None:
        return "-"
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")
        else ch
        for ch in value
    )


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: a CJK character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
