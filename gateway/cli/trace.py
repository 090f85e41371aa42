"""``linegate trace``: a unit's genealogy or a lot's use, read from a line's database.

It is run during a recall, often beside a running gateway, with a path typed by hand: so it
opens the database for reading only, never creates a file, says in one line why a path is
not a linegate database, and tells "the line does not know this lot" (exit 1) apart from
"the line knows it and has not used it" (exit 0).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from gateway.config.line import StoreSection
from gateway.config.load import EX_CONFIG, ConfigError, load_line_config
from gateway.orderbook.trace import (
    format_lot,
    format_serial,
    lot_known_in,
    trace_lot,
    trace_serial,
    unknown_lot,
    unknown_unit,
)
from gateway.store.db import Store, StoreError

EX_USAGE = 2  # argparse's own exit for a bad command line
EX_NOT_FOUND = 1
EX_SOFTWARE = 70  # the database cannot be read (as `linegate run` exits for a bad one)
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
# Output goes through sys.stdout/stderr.write, not print(): ruff's T20 is lifted only for
# the CLI modules pyproject.toml lists.


class Unreadable(Exception):
    """The path given is not a linegate database this command can read."""


def trace_command(args: argparse.Namespace) -> int:
    def fail(message: str, code: int) -> int:
        sys.stderr.write(f"linegate trace: {message}\n")
        return code

    if (args.serial is None) == (args.lot is None):
        return fail("give a SERIAL or --lot LOT", EX_USAGE)
    # A blank lot would match every consumption of a material without lots (stored as "").
    if args.lot is not None and not args.lot.strip():
        return fail("--lot cannot be empty or blank", EX_USAGE)
    if args.serial is not None and not args.serial.strip():
        return fail("SERIAL cannot be empty or blank", EX_USAGE)
    if args.db is not None:
        path = args.db
    else:
        try:
            path = load_line_config(args.config).store_path(args.data_dir)
        except ConfigError as exc:
            sys.stderr.write(f"{exc}\n")
            return EX_CONFIG
    try:
        store = open_for_reading(path)
    except Unreadable as exc:
        return fail(str(exc), EX_SOFTWARE)
    try:
        if args.lot is not None:
            known_in = lot_known_in(store, args.lot)
            if not known_in:
                return fail(unknown_lot(store, args.lot, f"in {path}"), EX_NOT_FOUND)
            result = trace_lot(store, args.lot)
            text = format_lot(result, known_in)
        else:
            found = trace_serial(store, args.serial)
            if found is None:
                return fail(unknown_unit(store, args.serial, f"in {path}"), EX_NOT_FOUND)
            result, text = found, format_serial(found)
    except sqlite3.Error as exc:  # damaged past its header, or locked for too long
        return fail(f"cannot read {path}: {exc}", EX_SOFTWARE)
    finally:
        store.close()
    sys.stdout.write(
        (json.dumps(result, indent=2, ensure_ascii=False) if args.json else text) + "\n"
    )
    return 0


def open_for_reading(path: Path) -> Store:
    """The linegate database at ``path``, opened read-only; :class:`Unreadable` says why
    not. Each check runs before SQLite sees the path, so none of them can create a file."""
    if not path.exists():
        raise Unreadable(f"no database at {path}")
    if path.is_dir():
        inside = path / StoreSection().path  # the database's name unless [store] path says
        hint = f"; did you mean {inside}?" if inside.is_file() else ""
        raise Unreadable(f"{path} is a folder, not a database file{hint}")
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise Unreadable(f"cannot read {path}: {exc.strerror}") from exc
    if head != SQLITE_HEADER:
        raise Unreadable(f"{path} is not a database" + ("" if head else " (it is empty)"))
    store = Store(path)
    try:
        store.open_readonly()
        tables = store.texts("SELECT name FROM sqlite_master WHERE type = 'table'")
    except (StoreError, sqlite3.Error) as exc:
        store.close()
        raise Unreadable(f"cannot read {path}: {exc}") from exc
    if "schema_migrations" not in tables:  # every linegate database has it, from its first start
        store.close()
        raise Unreadable(f"{path} is an SQLite database but not a linegate one")
    return store
