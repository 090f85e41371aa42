"""``linegate audit`` run as a real process on a database the test wrote: the records the
test made come back, oldest first, filtered as asked; a path it cannot read is one line."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.access.audit import AuditAction, record, record_in_store
from gateway.config.load import load_line_config
from gateway.orderbook.context import LineContext
from gateway.store.db import Store
from gateway.store.outbox import Outbox
from gateway.store.rows import AuditOutcome, Role
from tests.clocks import LINE_MORNING, ManualClock, line_clock_offset_s
from tests.integration.cli import linegate

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "station_configs" / "reference-line"

# What the test records, an hour apart from 10:00 in Shanghai (02:00 UTC); the last one as
# the CLI records it (the gateway has not published it yet).
EXPECTED: list[dict[str, Any]] = [
    {
        "id": 1,
        "ts": "2026-11-26T02:00:00.000+00:00",
        "actor": "OP-1006",
        "role": "operator",
        "action": "sign_in",
        "target": None,
        "station": "laser-1",
        "outcome": "ok",
        "client": "10.0.0.7",
        "detail": None,
        "published": True,
    },
    {
        "id": 2,
        "ts": "2026-11-26T03:00:00.000+00:00",
        "actor": None,
        "role": None,
        "action": "request",
        "target": "POST /api/plan",
        "station": None,
        "outcome": "denied",
        "client": "10.0.0.9",
        "detail": "no credential",
        "published": True,
    },
    {
        "id": 3,
        "ts": "2026-11-26T04:00:00.000+00:00",
        "actor": "lead1",
        "role": "line_lead",
        "action": "replan",
        "target": None,
        "station": None,
        "outcome": "ok",
        "client": "10.0.0.8",
        "detail": None,
        "published": True,
    },
    {
        "id": 4,
        "ts": "2026-11-26T05:00:00.000+00:00",
        "actor": "lead1",
        "role": "line_lead",
        "action": "sign_in",
        "target": None,
        "station": None,
        "outcome": "denied",
        "client": "10.0.0.8",
        "detail": "wrong password\nthird time",
        "published": True,
    },
    {
        "id": 5,
        "ts": "2026-11-26T06:00:00.000+00:00",
        "actor": "root",
        "role": "admin",
        "action": "user_add",
        "target": "qa1",
        "station": None,
        "outcome": "ok",
        "client": "cli",
        "detail": None,
        "published": False,
    },
]


def ids(out: subprocess.CompletedProcess[str]) -> list[int]:
    assert out.returncode == 0, out.stderr
    return [json.loads(line)["id"] for line in out.stdout.splitlines()]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The database where the reference line's gateway keeps it under ``tmp_path``."""
    config = load_line_config(REFERENCE)
    store = Store(config.store_path(tmp_path))
    store.open()
    outbox = Outbox(store, config.gateway_id)
    outbox.load()
    clock = ManualClock(LINE_MORNING)
    core = LineContext(config, store, outbox, clock)
    try:
        for doc in EXPECTED:
            with store.transaction():
                fields: dict[str, Any] = {
                    "actor": doc["actor"],
                    "role": None if doc["role"] is None else Role(doc["role"]),
                    "action": AuditAction(doc["action"]),
                    "target": doc["target"],
                    "station": doc["station"],
                    "outcome": AuditOutcome(doc["outcome"]),
                    "client": doc["client"],
                    "detail": doc["detail"],
                }
                if doc["published"]:
                    record(core, **fields)
                else:
                    record_in_store(store, clock, **fields)
            clock.advance(3600)
    finally:
        store.close()
    return store.path


def test_audit_json_gives_every_record_oldest_first(db: Path) -> None:
    out = linegate("audit", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == EXPECTED


def test_audit_filters_by_time_actor_action_and_outcome(db: Path) -> None:
    base = ("audit", "--db", str(db), "--json")
    assert ids(linegate(*base, "--since", "2026-11-26T11:30+08:00")) == [3, 4, 5]
    assert ids(linegate(*base, "--since", "2026-11-26T04:00Z")) == [3, 4, 5]  # included
    assert ids(linegate(*base, "--until", "2026-11-26T04:00Z")) == [1, 2]  # not included
    assert ids(linegate(*base, "--since", "2026-11-26T03:00Z", "--until", "2026-11-26T05:30Z")) == [
        2,
        3,
        4,
    ]
    assert ids(linegate(*base, "--actor", "lead1")) == [3, 4]
    assert ids(linegate(*base, "--outcome", "denied")) == [2, 4]
    assert ids(linegate(*base, "--action", "sign_in")) == [1, 4]
    assert ids(linegate(*base, "--actor", "lead1", "--outcome", "denied")) == [4]
    assert ids(linegate(*base, "--actor", "nobody")) == []
    # A duration back from now: now is 14:30 in Shanghai, two hours back is 12:30.
    now = line_clock_offset_s(LINE_MORNING + timedelta(hours=4, minutes=30))
    assert ids(linegate(*base, "--since", "2h", "--clock-offset-s", str(now))) == [4, 5]
    assert ids(linegate(*base, "--since", "4h", "--clock-offset-s", str(now))) == [2, 3, 4, 5]
    assert ids(linegate(*base, "--until", "1h", "--clock-offset-s", str(now))) == [1, 2, 3, 4]


def test_audit_reads_times_without_offset_in_the_lines_zone(db: Path) -> None:
    # With --config the line's zone is known (Asia/Shanghai): 11:30 there is 03:30 UTC.
    by_config = ("audit", "--config", str(REFERENCE), "--data-dir", str(db.parent), "--json")
    assert ids(linegate(*by_config, "--since", "2026-11-26T11:30")) == [3, 4, 5]
    assert ids(linegate(*by_config, "--until", "2026-11-26")) == []  # midnight in Shanghai
    # With --db it is not: a time without an offset is refused rather than guessed.
    out = linegate("audit", "--db", str(db), "--since", "2026-11-26T11:30")
    assert out.returncode == 2
    assert "no UTC offset" in out.stderr and out.stdout == ""


def test_audit_table_is_one_line_a_record_in_the_lines_time(db: Path) -> None:
    out = linegate("audit", "--config", str(REFERENCE), "--data-dir", str(db.parent))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 + len(EXPECTED)
    assert lines[0].split() == [
        "time",
        "outcome",
        "action",
        "actor",
        "role",
        "station",
        "target",
        "client",
        "detail",
    ]
    shown = [line.split() for line in lines[1:]]
    assert [s[:2] for s in shown] == [["2026-11-26", f"{h}:00:00+08:00"] for h in range(10, 15)]
    assert [s[2:4] for s in shown] == [[d["outcome"], d["action"]] for d in EXPECTED]
    assert shown[1][4:] == ["-", "-", "-", "POST", "/api/plan", "10.0.0.9", "no", "credential"]
    # The line break of a detail is shown as its escape: one record, one line.
    assert lines[4].endswith("wrong password\\nthird time")
    # The columns line up: each starts where its header does.
    assert all(line.index("10.0.0.") == lines[0].index("client") for line in lines[1:5])
    assert "1 of these records wait for the gateway" in out.stderr


def test_audit_with_nothing_to_show_says_so(db: Path) -> None:
    out = linegate("audit", "--db", str(db), "--actor", "nobody")
    assert out.returncode == 0
    assert out.stdout == ""
    assert out.stderr == "linegate audit: no record matches\n"


def test_an_unreadable_database_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "notes.txt").write_text("not a database\n")
    (tmp_path / "empty.db").write_bytes(b"")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.close()
    # A linegate database from before the audit trail (its schema_migrations, no audit).
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
    old.close()
    cases = {
        "missing.db": "no database at",
        "folder": "is a folder, not a database file",
        "notes.txt": "is not a database",
        "empty.db": "is not a database (it is empty)",
        "other.db": "is an SQLite database but not a linegate one",
        "old.db": "has no audit trail",
    }
    for name, why in cases.items():
        out = linegate("audit", "--db", str(tmp_path / name))
        assert out.returncode == 70, (name, out.stderr)
        assert out.stdout == ""
        assert out.stderr.count("\n") == 1 and out.stderr.endswith("\n"), out.stderr
        assert out.stderr.startswith("linegate audit: ") and why in out.stderr, out.stderr
    assert not (tmp_path / "missing.db").exists()  # reading never creates a file


def test_bad_filters_are_refused_before_reading(tmp_path: Path) -> None:
    db = str(tmp_path / "missing.db")  # never reached: each is refused first
    for args, why in (
        (("--since", "yesterday"), "is neither an ISO 8601 time"),
        (("--until", "24 hours"), "is neither an ISO 8601 time"),
        (("--since", "99999999999w"), "before the year 1"),
        (("--action", "dance"), "--action 'dance' is none of: sign_in"),
        (("--outcome", "maybe"), "--outcome 'maybe' is none of: ok, denied"),
        (("--since", "2026-11-27T00:00Z", "--until", "2026-11-26T00:00Z"), "before --until"),
        (("--data-dir", str(tmp_path)), "--data-dir goes with --config"),
    ):
        out = linegate("audit", "--db", db, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert why in out.stderr, out.stderr
    out = linegate("audit", "--db", db, "--config", str(REFERENCE))
    assert out.returncode == 2 and "not allowed with argument" in out.stderr
