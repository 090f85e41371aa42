"""``linegate users``, ``tokens`` and ``terminals`` run as real processes on a real line
database; what they did is checked with the library, in this process, on the same file."""

from __future__ import annotations

import getpass
import json
import os
import pty
import select
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.access import accounts, terminals, tokens
from gateway.access.accounts import SignInRefusal, SignInRefused
from gateway.access.pins import verify_pin
from gateway.access.terminals import Claimed, TerminalRefusal, TerminalRefused
from gateway.access.tokens import TokenRefusal, TokenRefused
from gateway.config.line import Operator
from gateway.store.db import Store
from gateway.store.rows import ApiTokenRow, AuditOutcome, AuditRow, Role, TerminalRow, UserRow
from tests.access.conftest import REFERENCE_LINE, ROOT
from tests.clocks import LINE_MORNING, line_clock_offset_s
from tests.integration.cli import linegate

PASSWORD = "plum tree at noon"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A line's database as the gateway leaves it on its first start."""
    path = tmp_path / "data" / "linegate.db"
    store = Store(path)
    store.open()
    store.close()
    return path


@pytest.fixture
def lib(db: Path) -> Iterator[Store]:
    """The same database, open here while the commands run, as the gateway has it open."""
    store = Store(db)
    store.open()
    yield store
    store.close()


def _at_line_morning() -> tuple[str, str]:
    # The command's clock at the tests' line morning, as `linegate run` takes it.
    return ("--clock-offset-s", str(line_clock_offset_s()))


def _value(out: str, key: str) -> str:
    """The value of a ``key: value`` line of a command's output."""
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(f"{key}"))


def test_users_add_takes_the_password_from_stdin(db: Path) -> None:
    out = linegate(
        "users",
        "add",
        "Wang.Fang",
        "--role",
        "line_lead",
        "--name",
        "王芳",
        "--db",
        str(db),
        stdin=f"{PASSWORD}\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "added wang.fang (line_lead, 王芳)\n"
    store = Store(db)
    store.open()
    try:
        user = accounts.sign_in(store, "wang.fang", PASSWORD)
        assert isinstance(user, UserRow) and user.role is Role.LINE_LEAD
    finally:
        store.close()


def test_users_add_random_prints_the_password_once(db: Path, lib: Store) -> None:
    out = linegate("users", "add", "admin", "--role", "admin", "--random", "--db", str(db))
    assert out.returncode == 0, out.stderr
    password = _value(out.stdout, "password (shown once)")
    assert isinstance(accounts.sign_in(lib, "admin", password), UserRow)
    listed = linegate("users", "list", "--json", "--db", str(db))
    assert password not in listed.stdout and "argon2" not in listed.stdout
    assert [(u["username"], u["role"], u["disabled_at"]) for u in json.loads(listed.stdout)] == [
        ("admin", "admin", None)
    ]


def test_a_password_against_the_policy_adds_no_account(db: Path, lib: Store) -> None:
    out = linegate("users", "add", "ann", "--role", "viewer", "--db", str(db), stdin="short\n")
    assert out.returncode == 1
    assert "at least 12 characters" in out.stderr and "short" not in out.stderr
    out = linegate("users", "add", "ann", "--role", "viewer", "--db", str(db), stdin="ann\n")
    assert out.returncode == 1
    assert accounts.list_users(lib) == []


def test_there_is_no_operator_account(db: Path) -> None:
    out = linegate("users", "add", "op", "--role", "operator", "--db", str(db), stdin=PASSWORD)
    assert out.returncode == 2 and "invalid choice: 'operator'" in out.stderr


def test_users_disable_enable_and_passwd(db: Path, lib: Store) -> None:
    assert (
        linegate(
            "users", "add", "li.qiang", "--role", "quality", "--db", str(db), stdin=PASSWORD
        ).returncode
        == 0
    )
    out = linegate("users", "disable", "li.qiang", "--db", str(db))
    assert (out.returncode, out.stdout) == (0, "disabled li.qiang\n")
    assert accounts.sign_in(lib, "li.qiang", PASSWORD) == SignInRefused(
        SignInRefusal.DISABLED, "li.qiang"
    )
    assert linegate("users", "enable", "li.qiang", "--db", str(db)).stdout == "enabled li.qiang\n"
    new = "a brand new passphrase"
    out = linegate("users", "passwd", "li.qiang", "--db", str(db), stdin=f"{new}\n")
    assert out.returncode == 0, out.stderr
    assert isinstance(accounts.sign_in(lib, "li.qiang", new), UserRow)
    assert isinstance(accounts.sign_in(lib, "li.qiang", PASSWORD), SignInRefused)
    out = linegate("users", "disable", "nobody", "--db", str(db))
    assert (out.returncode, out.stderr) == (1, "linegate users disable: no user 'nobody'\n")


def test_tokens_create_prints_it_once_and_revoke_ends_it(db: Path, lib: Store) -> None:
    out = linegate("tokens", "create", "office-erp", "--role", "viewer", "--db", str(db))
    assert out.returncode == 0, out.stderr
    token = _value(out.stdout, "token (shown once")
    found = tokens.verify_token(lib, token, LINE_MORNING)
    assert isinstance(found, ApiTokenRow) and (found.name, found.role) == (
        "office-erp",
        Role.VIEWER,
    )
    listed = linegate("tokens", "list", "--json", "--db", str(db))
    secret = token.split("_", 2)[2]
    assert secret not in listed.stdout
    [row] = json.loads(listed.stdout)
    assert (row["token_id"], row["state"]) == (found.token_id, "active")
    out = linegate("tokens", "revoke", found.token_id, "--db", str(db))
    assert (out.returncode, out.stdout) == (0, f"revoked {found.token_id}\n")
    assert tokens.verify_token(lib, token, LINE_MORNING) == TokenRefused(TokenRefusal.REVOKED)


def test_a_tokens_expiry_is_counted_from_the_commands_clock(db: Path, lib: Store) -> None:
    out = linegate(
        "tokens",
        "create",
        "contractor",
        "--role",
        "viewer",
        "--expires-days",
        "3",
        "--db",
        str(db),
        *_at_line_morning(),
    )
    assert out.returncode == 0, out.stderr
    [row] = tokens.list_tokens(lib)
    assert row.expires_at is not None
    expires = datetime.fromisoformat(row.expires_at)
    # LINE_MORNING + 3 days, give or take the seconds the command took to start.
    assert timedelta(0) <= expires - (LINE_MORNING + timedelta(days=3)) < timedelta(minutes=1)
    token = _value(out.stdout, "token (shown once")
    after = LINE_MORNING + timedelta(days=3, minutes=1)
    assert tokens.verify_token(lib, token, after) == TokenRefused(TokenRefusal.EXPIRED)


def test_terminals_pair_claim_list_and_unpair(db: Path, lib: Store) -> None:
    where = ("--config", str(REFERENCE_LINE), "--db", str(db), *_at_line_morning())
    out = linegate("terminals", "pair", "pack-1", *where)
    assert out.returncode == 0, out.stderr
    code, terminal_id = _value(out.stdout, "code"), _value(out.stdout, "terminal")
    valid_until = datetime.fromisoformat(_value(out.stdout, "valid until").split(" ")[0])
    assert (
        timedelta(0) <= valid_until - (LINE_MORNING + timedelta(minutes=10)) < timedelta(minutes=1)
    )
    claimed = terminals.claim(lib, code, "pack-1 tablet", LINE_MORNING + timedelta(minutes=2))
    assert isinstance(claimed, Claimed) and claimed.row.terminal_id == terminal_id
    listed = json.loads(linegate("terminals", "list", "--json", *where).stdout)
    assert [(t["terminal_id"], t["station"], t["state"]) for t in listed] == [
        (terminal_id, "pack-1", "paired")
    ]
    out = linegate("terminals", "unpair", terminal_id, *where)
    assert (out.returncode, out.stdout) == (0, f"unpaired {terminal_id} (pack-1, pack-1 tablet)\n")
    assert terminals.verify_terminal(lib, claimed.credential) == TerminalRefused(
        TerminalRefusal.UNPAIRED
    )


def test_terminals_unpair_a_station(db: Path, lib: Store) -> None:
    where = ("--config", str(REFERENCE_LINE), "--db", str(db), *_at_line_morning())
    code = _value(linegate("terminals", "pair", "qc-1", *where).stdout, "code")
    claimed = terminals.claim(lib, code, "qc desk", LINE_MORNING + timedelta(minutes=1))
    assert isinstance(claimed, Claimed)
    assert isinstance(terminals.verify_terminal(lib, claimed.credential), TerminalRow)
    out = linegate("terminals", "unpair", "--station", "qc-1", *where)
    assert out.returncode == 0 and claimed.row.terminal_id in out.stdout
    assert terminals.verify_terminal(lib, claimed.credential) == TerminalRefused(
        TerminalRefusal.UNPAIRED
    )
    out = linegate("terminals", "unpair", *where)
    assert out.returncode == 2 and "TERMINAL_ID or --station" in out.stderr


def test_terminals_pair_only_a_station_of_the_line(db: Path, lib: Store) -> None:
    out = linegate("terminals", "pair", "pack-9", "--config", str(REFERENCE_LINE), "--db", str(db))
    assert out.returncode == 1 and "no station 'pack-9'" in out.stderr
    assert out.stdout == ""
    assert terminals.list_terminals(lib) == []


def test_a_missing_database_is_not_made(tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "linegate.db"
    out = linegate("users", "list", "--db", str(missing))
    assert out.returncode == 70
    assert "no database" in out.stderr and "first starts" in out.stderr
    assert not missing.exists() and not missing.parent.exists()
    # Found through the config and --data-dir, as `linegate trace` finds it.
    out = linegate("tokens", "list", "--config", str(REFERENCE_LINE), "--data-dir", str(tmp_path))
    assert out.returncode == 70 and str(tmp_path / "linegate.db") in out.stderr


def test_the_database_is_found_through_data_dir(db: Path) -> None:
    out = linegate(
        "users",
        "add",
        "ann",
        "--role",
        "viewer",
        "--random",
        "--config",
        str(REFERENCE_LINE),
        "--data-dir",
        str(db.parent),
    )
    assert out.returncode == 0, out.stderr
    listed = linegate("users", "list", "--db", str(db))
    assert listed.stdout.splitlines()[1].split()[:3] == ["ann", "viewer", "active"]


def test_users_pin_hash_prints_a_hash_of_the_pin() -> None:
    out = linegate("users", "pin-hash", stdin="2468\n")
    assert out.returncode == 0, out.stderr
    pin_hash = out.stdout.strip()
    assert "2468" not in pin_hash
    operator = Operator(badge="OP-1001", name="王芳", pin_hash=pin_hash)
    assert verify_pin(operator, "2468") and not verify_pin(operator, "2486")
    refused = linegate("users", "pin-hash", stdin="24a8\n")
    assert refused.returncode == 1 and "4 to 8 digits" in refused.stderr
    assert refused.stdout == ""


def _at_a_terminal(args: list[str], answers: list[bytes]) -> tuple[int, str]:
    """Run ``linegate *args`` on a pseudo-terminal of its own (its controlling terminal,
    as a person's shell gives it), answering each prompt in turn; its exit code and all it
    showed on the terminal."""
    with warnings.catch_warnings():
        # Python 3.12 warns of fork() in a process with threads; the child execs at once.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid, fd = pty.fork()
    if pid == 0:  # the child: becomes linegate
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "gateway", *args])
    shown = b""
    answered = 0  # how much had been shown when the last answer was typed
    deadline = time.monotonic() + 60
    pending = list(answers)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            # A new prompt ("password: "): getpass turns the echo off before it writes one.
            if pending and shown.endswith(b": ") and len(shown) > answered:
                os.write(fd, pending.pop(0))
                answered = len(shown)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_a_password_typed_at_a_terminal_is_asked_twice_and_not_shown(db: Path, lib: Store) -> None:
    args = ["users", "add", "ann", "--role", "viewer", "--db", str(db)]
    code, shown = _at_a_terminal(args, [f"{PASSWORD}\n".encode()] * 2)
    assert code == 0, shown
    assert "password:" in shown and "password again:" in shown
    assert PASSWORD not in shown  # no echo
    assert isinstance(accounts.sign_in(lib, "ann", PASSWORD), UserRow)
    code, shown = _at_a_terminal(
        ["users", "passwd", "ann", "--db", str(db)],
        [b"another long password\n", b"another long passw0rd\n"],
    )
    assert code == 1 and "differ: nothing changed" in shown, shown
    assert isinstance(accounts.sign_in(lib, "ann", PASSWORD), UserRow)


def test_each_change_made_here_is_in_the_audit_trail(db: Path, lib: Store) -> None:
    where = ("--config", str(REFERENCE_LINE), "--db", str(db), *_at_line_morning())
    assert (
        linegate("users", "add", "ann", "--role", "quality", *where, stdin=PASSWORD).returncode == 0
    )
    assert linegate("users", "passwd", "ann", *where, stdin="another long password").returncode == 0
    assert linegate("users", "disable", "ann", *where).returncode == 0
    assert linegate("users", "disable", "ann", *where).returncode == 0  # no change: no record
    assert linegate("users", "enable", "ann", *where).returncode == 0
    assert linegate("users", "enable", "ann", *where).returncode == 0  # no change: no record
    created = linegate("tokens", "create", "office-erp", "--role", "viewer", *where)
    token = _value(created.stdout, "token (shown once")
    token_id = token.split("_")[1]
    assert linegate("tokens", "revoke", token_id, *where).returncode == 0
    paired = linegate("terminals", "pair", "pack-2", *where)
    code, terminal_id = _value(paired.stdout, "code"), _value(paired.stdout, "terminal")
    assert linegate("terminals", "unpair", "--station", "pack-2", *where).returncode == 0
    trail = lib.fetch_all(AuditRow, "SELECT * FROM audit ORDER BY id")
    person = os.environ.get("SUDO_USER") or getpass.getuser()
    assert [(r.action, r.target, r.station, r.actor, r.role, r.outcome) for r in trail] == [
        ("user_add", "ann", None, f"local:{person}", "admin", AuditOutcome.OK),
        ("user_password", "ann", None, f"local:{person}", "admin", AuditOutcome.OK),
        ("user_disable", "ann", None, f"local:{person}", "admin", AuditOutcome.OK),
        ("user_enable", "ann", None, f"local:{person}", "admin", AuditOutcome.OK),
        ("token_create", token_id, None, f"local:{person}", "admin", AuditOutcome.OK),
        ("token_revoke", token_id, None, f"local:{person}", "admin", AuditOutcome.OK),
        ("terminal_pair", terminal_id, "pack-2", f"local:{person}", "admin", AuditOutcome.OK),
        ("terminal_unpair", terminal_id, "pack-2", f"local:{person}", "admin", AuditOutcome.OK),
    ]
    # At the command's clock (the line's morning), and never a secret.
    assert all(
        timedelta(0) <= datetime.fromisoformat(r.ts) - LINE_MORNING < timedelta(minutes=2)
        for r in trail
    )
    secrets = (
        PASSWORD,
        "another long password",
        token.split("_", 2)[2],
        code,
        code.replace("-", ""),
    )
    for row in lib.all("SELECT * FROM audit"):
        assert not any(s in str(v) for s in secrets for v in tuple(row))
    # The gateway publishes the rows: this process never writes its outbox.
    assert lib.count("SELECT count(*) FROM outbox") == 0
