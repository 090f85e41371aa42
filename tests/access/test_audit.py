"""The audit trail on a real SQLite file: a record and its event commit together, the table
is append-only, the text is cleaned, and what another process records reaches the outbox
once, with the gateway's next seq.

The event's fields and outcomes are read from the contract's text (the vendored
hub-protocol.md), not from the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.access.audit import (
    AuditAction,
    publish_forever,
    publish_pending,
    record,
    record_in_store,
)
from gateway.config.load import load_line_config
from gateway.orderbook.context import LineContext
from gateway.store.db import Store
from gateway.store.outbox import Outbox
from gateway.store.rows import AuditOutcome, AuditRow, Role
from tests.clocks import LINE_MORNING, ManualClock

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "station_configs" / "reference-line"
SCHEMAS = ROOT / "cloud_sync" / "schemas"
EVENT_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "event.schema.json").read_text())
PROTOCOL = SCHEMAS / "hub-protocol.md"
# LINE_MORNING (10:00 in Shanghai) in the store's one text form: UTC, milliseconds.
MORNING_TS = "2026-11-26T02:00:00.000+00:00"


def contract_row(type_: str) -> str:
    """The ``data`` column of ``type_``'s row in hub-protocol.md's event tables."""
    for line in PROTOCOL.read_text().splitlines():
        cells = line.split("|")
        if len(cells) > 3 and cells[1].strip() == f"`{type_}`":
            return cells[-2]
    raise AssertionError(f"{type_} is not in the contract")


def contract_fields(type_: str) -> set[str]:
    """The field names of ``type_``'s data (what is in parentheses describes a field)."""
    return set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", contract_row(type_))))


def contract_outcomes() -> set[str]:
    described = re.search(r"`outcome` \(([^)]*)\)", contract_row("audit.recorded"))
    assert described is not None
    return set(re.findall(r"`([a-z_]+)`", described.group(1)))


@dataclass
class Line:
    store: Store
    outbox: Outbox
    core: LineContext
    clock: ManualClock

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r.payload) for r in self.outbox.peek(0, 1_000_000)]

    def rows(self) -> list[AuditRow]:
        return self.store.fetch_all(AuditRow, "SELECT * FROM audit ORDER BY id")

    def elsewhere(self) -> Store:
        """The same database opened as another process (the CLI) opens it."""
        other = Store(self.store.path)
        other.open()
        return other


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    config = load_line_config(REFERENCE)
    store = Store(tmp_path / "linegate.db")
    store.open()
    outbox = Outbox(store, config.gateway_id)
    outbox.load()
    clock = ManualClock(LINE_MORNING)
    yield Line(store, outbox, LineContext(config, store, outbox, clock), clock)
    store.close()


def _sign_in(core: LineContext, badge: str = "OP-1006") -> int:
    return record(
        core,
        actor=badge,
        role=Role.OPERATOR,
        action=AuditAction.SIGN_IN,
        station="laser-1",
        outcome=AuditOutcome.OK,
        client="10.0.0.7",
    )


class Boom(Exception):
    pass


def test_a_record_and_its_event_commit_together_or_not_at_all(line: Line) -> None:
    with line.store.transaction():
        _sign_in(line.core)
    [row] = line.rows()
    assert (row.ts, row.actor, row.role, row.action, row.station, row.outcome, row.client) == (
        MORNING_TS,
        "OP-1006",
        "operator",
        "sign_in",
        "laser-1",
        AuditOutcome.OK,
        "10.0.0.7",
    )
    [event] = line.events()
    assert (event["seq"], event["type"], event["ts"]) == (1, "audit.recorded", MORNING_TS)

    with pytest.raises(Boom), line.store.transaction():
        _sign_in(line.core, "OP-LOST")
        raise Boom
    assert [r.actor for r in line.rows()] == ["OP-1006"]
    assert [e["seq"] for e in line.events()] == [1]

    # A savepoint that rolls back takes its record and its event, the rest commits.
    with line.store.transaction():
        with pytest.raises(Boom), line.store.savepoint():
            _sign_in(line.core, "OP-ALSO-LOST")
            raise Boom
        _sign_in(line.core, "OP-1007")
    assert [r.actor for r in line.rows()] == ["OP-1006", "OP-1007"]
    events = line.events()
    assert [e["seq"] for e in events] == [1, 2]  # the rolled-back seqs were given back
    assert [e["data"]["actor"] for e in events] == ["OP-1006", "OP-1007"]


def test_recording_outside_a_transaction_is_refused(line: Line) -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        _sign_in(line.core)
    with pytest.raises(RuntimeError, match="transaction"):
        record_in_store(
            line.store,
            line.clock,
            actor="root",
            role=Role.ADMIN,
            action=AuditAction.USER_ADD,
            outcome=AuditOutcome.OK,
        )
    with pytest.raises(RuntimeError, match="transaction"):
        publish_pending(line.core)
    assert line.rows() == []
    assert line.events() == []


def test_the_event_carries_the_contracts_fields_and_nothing_else(line: Line) -> None:
    fields = contract_fields("audit.recorded")
    # The parse found the contract's list, not an empty or a partial one.
    assert {"actor", "role", "action", "target", "station", "outcome", "client"} <= fields
    assert {o.value for o in AuditOutcome} == contract_outcomes()
    with line.store.transaction():
        record(
            line.core,
            actor="lead1",
            role=Role.LINE_LEAD,
            action=AuditAction.OVERRIDE,
            target="task 42",
            station="pack-1",
            outcome=AuditOutcome.OK,
            client="10.0.0.8",
            detail="weight off by the gift card, checked by hand",
        )
        # Unknown actor: the contract's nulls.
        record(
            line.core,
            actor=None,
            role=None,
            action=AuditAction.REQUEST,
            target="POST /api/plan",
            outcome=AuditOutcome.DENIED,
            client="10.0.0.9",
            detail="no credential",
        )
    override, refused = line.events()
    for event in (override, refused):
        jsonschema.validate(event, EVENT_SCHEMA)
        assert event["type"] == "audit.recorded"
        assert "order_id" not in event
        assert set(event["data"]) == fields
    assert override["data"] == {
        "actor": "lead1",
        "role": "line_lead",
        "action": "override",
        "target": "task 42",
        "station": "pack-1",
        "outcome": "ok",
        "client": "10.0.0.8",
    }
    assert refused["data"] == {
        "actor": None,
        "role": None,
        "action": "request",
        "target": "POST /api/plan",
        "station": None,
        "outcome": "denied",
        "client": "10.0.0.9",
    }
    # The reason stays on the line.
    assert [r.detail for r in line.rows()] == [
        "weight off by the gift card, checked by hand",
        "no credential",
    ]


def test_sqlite_refuses_to_update_or_delete_the_trail(line: Line) -> None:
    with line.store.transaction():
        _sign_in(line.core)
    before = line.rows()
    # Through the gateway's connection, and as anyone with the sqlite3 shell would.
    plain = sqlite3.connect(line.store.path)
    try:
        for conn in (line.store.conn, plain):
            for sql in (
                "UPDATE audit SET outcome = 'denied'",
                "UPDATE audit SET actor = NULL WHERE id = 1",
                "DELETE FROM audit",
                "DELETE FROM audit WHERE id = 1",
            ):
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute(sql)
    finally:
        plain.close()
    assert line.rows() == before


def test_control_characters_and_lone_surrogates_are_cleaned(line: Line) -> None:
    with line.store.transaction():
        record(
            line.core,
            actor="OP-\x00100\x1b6",
            role="operator\x07",
            action=AuditAction.SIGN_IN,
            # A forged second record after a line break, in what an attacker sends.
            target="POST /api/x\r\n2026-11-26 ok sign_in admin",
            station="laser-1\ud83d",
            outcome=AuditOutcome.DENIED,
            client="\x9b10.0.0.7\t",
            detail="line one\nline two\x07\x85",
        )
        record(
            line.core,
            actor=" \x00\x1f ",  # nothing left: unknown
            role=None,
            action=AuditAction.REQUEST,
            outcome=AuditOutcome.DENIED,
        )
    expected = {
        "actor": "OP-1006",
        "role": "operator",
        "target": "POST /api/x 2026-11-26 ok sign_in admin",
        "station": "laser-1\ufffd",
        "client": "10.0.0.7",
    }
    first, blank = line.rows()
    assert {k: getattr(first, k) for k in expected} == expected
    assert first.detail == "line one\nline two"
    assert blank.actor is None
    event = line.events()[0]
    assert {k: event["data"][k] for k in expected} == expected
    # The event's bytes are UTF-8 JSON without a control character.
    [raw, _] = [r.payload for r in line.outbox.peek(0, 10)]
    assert not re.search(rb"[\x00-\x1f]|\\u00[01]", raw)


def test_long_fields_are_bounded(line: Line) -> None:
    # A refused request's path is what a client chose to send: at most 200 characters
    # a field, 2000 for the detail.
    with line.store.transaction():
        record(
            line.core,
            actor=None,
            role=None,
            action=AuditAction.REQUEST,
            target="GET /" + "a" * 10_000,
            outcome=AuditOutcome.DENIED,
            detail="b" * 10_000,
        )
    [row] = line.rows()
    assert row.target is not None and row.detail is not None
    assert len(row.target) == 200 and row.target.startswith("GET /aaa") and row.target[-1] == "…"
    assert len(row.detail) == 2000 and row.detail[-1] == "…"
    assert line.events()[0]["data"]["target"] == row.target


def test_what_another_process_records_is_published_once_by_the_gateway(line: Line) -> None:
    other = line.elsewhere()
    try:
        with other.transaction():
            record_in_store(
                other,
                line.clock,
                actor="root",
                role=Role.ADMIN,
                action=AuditAction.USER_ADD,
                target="lead1",
                outcome=AuditOutcome.OK,
                client="cli",
            )
        # The other process wrote the row, and nothing of the outbox or its counter.
        assert line.events() == []
        assert other.count("SELECT count(*) FROM counters WHERE name = 'seq'") == 0

        line.clock.advance(60)  # published a minute later: the event keeps the row's time
        with line.store.transaction():
            line.core.emit("alarm.raised", {"alarm_id": "a1"})
            assert publish_pending(line.core) == 1
        with line.store.transaction():
            assert publish_pending(line.core) == 0
        events = line.events()
        assert [(e["seq"], e["type"]) for e in events] == [
            (1, "alarm.raised"),
            (2, "audit.recorded"),
        ]
        assert events[1]["ts"] == MORNING_TS
        assert events[1]["data"]["target"] == "lead1"

        # A record made in the gateway takes those waiting with it, oldest first.
        with other.transaction():
            record_in_store(
                other,
                line.clock,
                actor="root",
                role=Role.ADMIN,
                action=AuditAction.TOKEN_REVOKE,
                target="tok1",
                outcome=AuditOutcome.OK,
                client="cli",
            )
        with pytest.raises(Boom), other.transaction():
            record_in_store(
                other,
                line.clock,
                actor="root",
                role=Role.ADMIN,
                action=AuditAction.USER_DISABLE,
                target="never",
                outcome=AuditOutcome.OK,
            )
            raise Boom
        with line.store.transaction():
            _sign_in(line.core)
    finally:
        other.close()
    events = line.events()
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["data"]["action"] for e in events[2:]] == ["token_revoke", "sign_in"]

    # After a restart nothing is published again.
    line.store.close()
    store = Store(line.store.path)
    store.open()
    outbox = Outbox(store, line.core.config.gateway_id)
    outbox.load()
    core = LineContext(line.core.config, store, outbox, line.clock)
    try:
        with store.transaction():
            assert publish_pending(core) == 0
        assert [r.seq for r in outbox.peek(0, 100)] == [1, 2, 3, 4]
    finally:
        store.close()
    line.store.open()  # for the fixture to close


async def test_the_gateways_task_publishes_a_backlog_in_order(line: Line) -> None:
    # More than one batch waits (the gateway was stopped while a script added users).
    other = line.elsewhere()
    try:
        with other.transaction():
            for i in range(1200):
                record_in_store(
                    other,
                    line.clock,
                    actor="root",
                    role=Role.ADMIN,
                    action=AuditAction.USER_ADD,
                    target=f"user-{i}",
                    outcome=AuditOutcome.OK,
                )
        task = asyncio.create_task(publish_forever(line.core, interval_s=0.01))
        try:
            async with asyncio.timeout(20):
                while line.outbox.last_seq < 1200:
                    await line.outbox.wait_for_new(line.outbox.last_seq)
                # One more, while the task runs.
                with other.transaction():
                    record_in_store(
                        other,
                        line.clock,
                        actor="root",
                        role=Role.ADMIN,
                        action=AuditAction.TERMINAL_PAIR,
                        target="pack-1",
                        station="pack-1",
                        outcome=AuditOutcome.OK,
                    )
                while line.outbox.last_seq < 1201:
                    await line.outbox.wait_for_new(line.outbox.last_seq)
                await asyncio.sleep(0.1)  # a few more looks: nothing is published twice
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        other.close()
    events = line.events()
    assert [e["seq"] for e in events] == list(range(1, 1202))
    assert [e["data"]["target"] for e in events] == [f"user-{i}" for i in range(1200)] + ["pack-1"]


def test_a_field_typed_by_the_caller_shows_what_it_is() -> None:
    from gateway.access.audit import one_line

    # A right-to-left override would show "pack-1" reversed after it; a zero-width space
    # and a soft hyphen would make two different badges look alike; U+2028 is a line break
    # to a text view.
    assert one_line("GET /api/stations/pack\u202e-1\u2028x") == "GET /api/stations/pack-1 x"
    assert one_line("OP-10\u200b06\u00ad") == "OP-1006"
    assert one_line("\u200b\ufeff") is None
    assert one_line("王芳 OP-1001") == "王芳 OP-1001"
