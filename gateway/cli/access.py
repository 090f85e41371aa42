"""``linegate users``, ``linegate tokens``, ``linegate terminals``: who may use the line.

They write the line's database, often while the gateway runs: SQLite in WAL mode lets
them, each change a short transaction of its own (a password is hashed before it begins,
so the gateway never waits for argon2). Secrets are read without echo from the terminal,
or as one line from stdin when it is not one (a script); what is made here (a random
password, a token, a pairing code) is printed once and never kept in clear.

This module is imported by every ``linegate`` command: what the commands need (the
store, argon2) is imported when one of them runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.access.audit import AuditAction
    from gateway.clock import Clock
    from gateway.store.db import Store

COMMANDS: frozenset[str] = frozenset({"users", "tokens", "terminals"})

EX_REFUSED = 1  # the change cannot be made (unknown name, a password against the policy)
EX_USAGE = 2  # argparse's own exit for a bad command line
EX_SOFTWARE = 70  # the database cannot be used
EX_CONFIG = 78
# Role names for --role: every role but operator (operators sign in with their badge).
_ACCOUNT_ROLES = ("line_lead", "quality", "maintenance", "admin", "viewer")


class _Refused(Exception):
    """The command stops here; ``str()`` for stderr, ``code`` for the exit."""

    def __init__(self, message: str, code: int = EX_REFUSED) -> None:
        super().__init__(message)
        self.code = code


def add_parsers(sub: Any, default_config: Path) -> None:
    """Add ``users``, ``tokens`` and ``terminals`` to ``sub`` (argparse's subparsers)."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--config", type=Path, default=default_config, help="line config folder")
    where.add_argument("--data-dir", type=Path, help="folder of the database (default: store.path)")
    where.add_argument("--db", type=Path, help="the database file itself")
    # For tests: this command's clock that many seconds off the system's, as `linegate run`
    # takes it, so that expiries do not depend on the day a test runs. Not in --help.
    where.add_argument("--clock-offset-s", type=float, default=0.0, help=argparse.SUPPRESS)
    listing = argparse.ArgumentParser(add_help=False)
    listing.add_argument("--json", action="store_true")

    users = sub.add_parser(
        "users", help="accounts of line leads, quality, maintenance, admins and viewers"
    ).add_subparsers(dest="action", required=True)
    add = users.add_parser(
        "add", parents=[where], help="add an account (password asked twice, or from stdin)"
    )
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=_ACCOUNT_ROLES)
    add.add_argument("--name", help="the person's name as shown (default: the username)")
    add.add_argument("--random", action="store_true", help="make a password and print it once")
    passwd = users.add_parser("passwd", parents=[where], help="set an account's password")
    passwd.add_argument("username")
    passwd.add_argument("--random", action="store_true", help="make a password and print it once")
    for action, text in (
        ("disable", "the account can no longer sign in (it stays, for the audit trail)"),
        ("enable", "the account can sign in again"),
    ):
        users.add_parser(action, parents=[where], help=text).add_argument("username")
    users.add_parser("list", parents=[where, listing], help="every account (never a password)")
    users.add_parser(
        "pin-hash",
        help="hash an operator's PIN for pin_hash in line.toml (asked twice, or from stdin)",
    )

    tokens = sub.add_parser("tokens", help="API tokens for programs").add_subparsers(
        dest="action", required=True
    )
    create = tokens.add_parser("create", parents=[where], help="make a token and print it once")
    create.add_argument("name", help="what uses it, e.g. office-erp")
    create.add_argument("--role", required=True, choices=_ACCOUNT_ROLES)
    create.add_argument("--expires-days", type=int, help="it stops working after N days")
    tokens.add_parser("list", parents=[where, listing], help="every token (never its secret)")
    revoke = tokens.add_parser("revoke", parents=[where], help="the token stops working")
    revoke.add_argument("token_id")

    terminals = sub.add_parser(
        "terminals", help="station terminals: pair, unpair, list"
    ).add_subparsers(dest="action", required=True)
    pair = terminals.add_parser(
        "pair", parents=[where], help="print a one-time code for a terminal of STATION"
    )
    pair.add_argument("station")
    unpair = terminals.add_parser(
        "unpair", parents=[where], help="revoke a terminal (or every terminal of a station)"
    )
    unpair.add_argument("terminal_id", nargs="?")
    unpair.add_argument("--station")
    terminals.add_parser("list", parents=[where, listing], help="every terminal and its state")


def run(args: argparse.Namespace) -> int:
    name = f"linegate {args.command} {args.action}"
    try:
        if (args.command, args.action) == ("users", "pin-hash"):
            return _pin_hash()
        return _with_store(args)
    except _Refused as exc:
        sys.stderr.write(f"{name}: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130  # as a shell reports Ctrl-C


def _with_store(args: argparse.Namespace) -> int:
    import sqlite3
    from datetime import timedelta

    from gateway.access.errors import AccessError
    from gateway.clock import ScaledClock, SystemClock
    from gateway.store.db import StoreError

    unpairing = (args.command, args.action) == ("terminals", "unpair")
    if unpairing and (args.terminal_id is None) == (args.station is None):
        raise _Refused("give a TERMINAL_ID or --station STATION", EX_USAGE)
    clock: Clock = SystemClock()
    if args.clock_offset_s:
        clock = ScaledClock(1.0, clock.now() + timedelta(seconds=args.clock_offset_s))
    store = _open_store(args)
    try:
        handler = _HANDLERS[(args.command, args.action)]
        handler(args, store, clock)
    except AccessError as exc:
        raise _Refused(str(exc)) from None
    except (StoreError, sqlite3.Error) as exc:  # locked for too long, damaged, full disk
        raise _Refused(f"cannot write {store.path}: {exc}", EX_SOFTWARE) from None
    finally:
        store.close()
    return 0


def _db_path(args: argparse.Namespace) -> Path:
    from gateway.config.load import ConfigError, load_line_config

    if args.db is not None:
        path: Path = args.db
        return path
    try:
        return load_line_config(args.config).store_path(args.data_dir)
    except ConfigError as exc:
        raise _Refused(str(exc), EX_CONFIG) from None


def _open_store(args: argparse.Namespace) -> Store:
    """The line's database, opened for writing. Never a new one: an account added to a
    file the gateway does not read (a mistyped --data-dir) would be silently lost, so the
    file must exist and be a linegate database (the gateway makes it on its first start)."""
    from gateway.cli.trace import Unreadable, open_for_reading
    from gateway.store.db import Store, StoreError

    path = _db_path(args)
    try:
        open_for_reading(path).close()
    except Unreadable as exc:
        hint = " (the gateway makes it when it first starts)" if not path.exists() else ""
        raise _Refused(f"{exc}{hint}", EX_SOFTWARE) from None
    store = Store(path)
    try:
        store.open()
    except StoreError as exc:
        store.close()
        raise _Refused(str(exc), EX_SOFTWARE) from None
    return store


def _read_secret(what: str, twice: bool) -> str:
    """A password or PIN: typed without echo (twice, when ``twice``), or the first line of
    stdin when it is not a terminal."""
    import getpass

    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise _Refused(f"no {what} on stdin (a line of its own; or type it in a terminal)")
        return line.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass(f"{what}: ")
    if twice and getpass.getpass(f"{what} again: ") != first:
        raise _Refused(f"the two {what}s differ: nothing changed")
    return first


def _out(text: str) -> None:
    # Not print(): ruff's T20 is lifted only for the CLI modules pyproject.toml lists.
    sys.stdout.write(f"{text}\n")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        _out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _json(value: object) -> None:
    import json

    _out(json.dumps(value, indent=2, ensure_ascii=False))


def _audit(
    store: Store,
    clock: Clock,
    action: AuditAction,
    target: str,
    station: str | None = None,
    detail: str | None = None,
) -> None:
    """Record a change made here in the audit trail, in its transaction. The gateway
    publishes the row to the hub (this process must not touch its outbox). The actor is
    the system user who ran the command (under sudo, the one who ran sudo), as
    ``local:NAME``: no account can be called so (usernames have no ':')."""
    import getpass
    import os

    from gateway.access.audit import record_in_store
    from gateway.store.rows import AuditOutcome, Role

    try:
        person = os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (a container)
        person = f"uid {os.getuid()}"
    record_in_store(
        store,
        clock,
        actor=f"local:{person}",
        role=Role.ADMIN,  # whoever may write the line's database may do all an admin may
        action=action,
        target=target,
        station=station,
        outcome=AuditOutcome.OK,
        detail=detail,
    )


# -- users ---------------------------------------------------------------------------------


def _pin_hash() -> int:
    from gateway.access import passwords

    pin = _read_secret("PIN", twice=True)
    try:
        _out(passwords.hash_pin(pin))
    except passwords.PolicyError as exc:
        raise _Refused(str(exc)) from None
    return 0


def _new_password(args: argparse.Namespace, username: str) -> tuple[str, str | None]:
    """The hash of the account's new password, and the password when it was made here."""
    from gateway.access import passwords

    password = passwords.random_password() if args.random else _read_secret("password", True)
    return passwords.hash_password(password, username), password if args.random else None


def _users_add(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import accounts
    from gateway.access.audit import AuditAction
    from gateway.store.rows import Role

    username = accounts.check_username(args.username)
    if accounts.find_user(store, username) is not None:  # before asking for a password
        raise _Refused(f"user {username!r} exists already")
    password_hash, shown = _new_password(args, username)
    with store.transaction():
        user = accounts.add_user(
            store, username, Role(args.role), password_hash, clock.now(), args.name
        )
        _audit(store, clock, AuditAction.USER_ADD, user.username, detail=f"role {user.role}")
    _out(f"added {user.username} ({user.role}, {user.name})")
    if shown is not None:
        _out(f"password (shown once): {shown}")


def _users_passwd(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import accounts
    from gateway.access.audit import AuditAction

    user = accounts.find_user(store, args.username)
    if user is None:
        raise _Refused(f"no user {accounts.normal_username(args.username)!r}")
    password_hash, shown = _new_password(args, user.username)
    with store.transaction():
        accounts.set_password(store, user.username, password_hash, clock.now())
        _audit(store, clock, AuditAction.USER_PASSWORD, user.username)
    _out(f"password of {user.username} set; its browser sessions are ended")
    if shown is not None:
        _out(f"password (shown once): {shown}")


def _users_disable(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import accounts
    from gateway.access.audit import AuditAction

    username = accounts.normal_username(args.username)
    with store.transaction():
        changed = accounts.disable_user(store, username, clock.now())
        if changed:
            _audit(store, clock, AuditAction.USER_DISABLE, username)
    _out(f"disabled {username}" if changed else f"{username} was disabled already")


def _users_enable(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import accounts
    from gateway.access.audit import AuditAction

    username = accounts.normal_username(args.username)
    with store.transaction():
        changed = accounts.enable_user(store, username)
        if changed:
            _audit(store, clock, AuditAction.USER_ENABLE, username)
    _out(f"enabled {username}" if changed else f"{username} was not disabled")


def _users_list(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import accounts

    users = accounts.list_users(store)
    if args.json:
        _json(
            [
                {
                    "username": u.username,
                    "name": u.name,
                    "role": u.role.value,
                    "created_at": u.created_at,
                    "password_set_at": u.password_set_at,
                    "disabled_at": u.disabled_at,
                }
                for u in users
            ]
        )
        return
    if not users:
        _out("no accounts (add one: linegate users add USERNAME --role ROLE)")
        return
    _table(
        ("USERNAME", "ROLE", "STATE", "PASSWORD SET", "NAME"),
        [
            (
                u.username,
                u.role.value,
                "disabled" if u.disabled_at else "active",
                u.password_set_at,
                u.name,
            )
            for u in users
        ],
    )


# -- tokens --------------------------------------------------------------------------------


def _tokens_create(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import tokens
    from gateway.access.audit import AuditAction
    from gateway.store.rows import Role

    with store.transaction():
        new = tokens.create_token(store, args.name, Role(args.role), clock.now(), args.expires_days)
        detail = f"{new.row.name}, role {new.row.role}, expires {new.row.expires_at or 'never'}"
        _audit(store, clock, AuditAction.TOKEN_CREATE, new.row.token_id, detail=detail)
    expiry = new.row.expires_at or "never"
    _out(f"token {new.row.token_id} ({new.row.name}, {new.row.role}), expires: {expiry}")
    _out(f"token (shown once, keep it secret): {new.token}")


def _tokens_list(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import tokens

    rows, now = tokens.list_tokens(store), clock.now()
    if args.json:
        _json(
            [
                {
                    "token_id": t.token_id,
                    "name": t.name,
                    "role": t.role.value,
                    "state": tokens.token_state(t, now).value,
                    "created_at": t.created_at,
                    "expires_at": t.expires_at,
                    "last_used_at": t.last_used_at,
                    "revoked_at": t.revoked_at,
                }
                for t in rows
            ]
        )
        return
    if not rows:
        _out("no tokens (make one: linegate tokens create NAME --role ROLE)")
        return
    _table(
        ("TOKEN ID", "ROLE", "STATE", "EXPIRES", "LAST USED", "NAME"),
        [
            (
                t.token_id,
                t.role.value,
                tokens.token_state(t, now).value,
                t.expires_at or "never",
                t.last_used_at or "never",
                t.name,
            )
            for t in rows
        ],
    )


def _tokens_revoke(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import tokens
    from gateway.access.audit import AuditAction

    with store.transaction():
        changed = tokens.revoke_token(store, args.token_id, clock.now())
        if changed:
            _audit(store, clock, AuditAction.TOKEN_REVOKE, args.token_id.strip())
    _out(f"revoked {args.token_id}" if changed else f"{args.token_id} was revoked already")


# -- terminals -----------------------------------------------------------------------------


def _terminals_pair(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import terminals
    from gateway.access.audit import AuditAction
    from gateway.clock import iso
    from gateway.config.load import ConfigError, load_line_config

    try:
        line = load_line_config(args.config)  # the station must be one of the line's
    except ConfigError as exc:
        raise _Refused(str(exc), EX_CONFIG) from None
    with store.transaction():
        pairing = terminals.pair(store, line, args.station, clock.now())
        target = pairing.row.terminal_id
        _audit(store, clock, AuditAction.TERMINAL_PAIR, target, station=pairing.row.station)
    minutes = int(terminals.CODE_LIFETIME.total_seconds() // 60)
    _out(f"station: {pairing.row.station}")
    _out(f"terminal: {pairing.row.terminal_id}")
    _out(f"code: {pairing.code}")
    _out(f"valid until: {iso(pairing.expires_at)} ({minutes} minutes, once)")
    _out(
        'enter it on the terminal (POST /api/terminals/claim {"code": …, "name": …}): it '
        "receives its credential"
    )


def _terminals_unpair(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import terminals
    from gateway.access.audit import AuditAction

    with store.transaction():
        ended = terminals.unpair(
            store, clock.now(), terminal_id=args.terminal_id, station=args.station
        )
        for row in ended:
            _audit(store, clock, AuditAction.TERMINAL_UNPAIR, row.terminal_id, row.station)
    for row in ended:
        _out(f"unpaired {row.terminal_id} ({row.station}{f', {row.name}' if row.name else ''})")
    if not ended:
        what = args.terminal_id or f"station {args.station}"
        _out(f"nothing to unpair: {what} has no paired or pending terminal")


def _terminals_list(args: argparse.Namespace, store: Store, clock: Clock) -> None:
    from gateway.access import terminals

    rows, now = terminals.list_terminals(store), clock.now()
    if args.json:
        _json(
            [
                {
                    "terminal_id": t.terminal_id,
                    "station": t.station,
                    "name": t.name,
                    "state": terminals.terminal_state(t, now).value,
                    "created_at": t.created_at,
                    "code_expires_at": t.code_expires_at,
                    "paired_at": t.paired_at,
                    "unpaired_at": t.unpaired_at,
                }
                for t in rows
            ]
        )
        return
    if not rows:
        _out("no terminals (pair one: linegate terminals pair STATION)")
        return
    _table(
        ("TERMINAL", "STATION", "STATE", "SINCE", "NAME"),
        [
            (
                t.terminal_id,
                t.station,
                terminals.terminal_state(t, now).value,
                t.unpaired_at or t.paired_at or t.created_at,
                t.name or "",
            )
            for t in rows
        ],
    )


_HANDLERS = {
    ("users", "add"): _users_add,
    ("users", "passwd"): _users_passwd,
    ("users", "disable"): _users_disable,
    ("users", "enable"): _users_enable,
    ("users", "list"): _users_list,
    ("tokens", "create"): _tokens_create,
    ("tokens", "list"): _tokens_list,
    ("tokens", "revoke"): _tokens_revoke,
    ("terminals", "pair"): _terminals_pair,
    ("terminals", "unpair"): _terminals_unpair,
    ("terminals", "list"): _terminals_list,
}
