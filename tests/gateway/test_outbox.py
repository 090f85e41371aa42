"""The transactional outbox: contiguous seq across restarts, removal only on ack."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import iso
from gateway.store.bulk import BulkInserts
from gateway.store.db import Store
from gateway.store.outbox import Outbox

TS = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _open(path: Path) -> tuple[Store, Outbox]:
    store = Store(path)
    store.open()
    outbox = Outbox(store, "hz01/line3")
    outbox.load()
    return store, outbox


def test_seq_is_contiguous_across_restarts_and_rollbacks(tmp_path: Path) -> None:
    store, outbox = _open(tmp_path / "a.db")
    with store.transaction():
        for i in range(3):
            outbox.append("alarm.raised", {"i": i}, iso(TS))
    with pytest.raises(RuntimeError), store.transaction():
        outbox.append("alarm.raised", {"i": "lost with its transaction"}, iso(TS))
        raise RuntimeError
    outbox.ack([1, 2, 3])
    store.close()
    store, outbox = _open(tmp_path / "a.db")
    assert outbox.last_seq == 3
    with store.transaction():
        seq = outbox.append("alarm.cleared", {}, iso(TS), order_id="SO-1")
    assert seq == 4
    [record] = outbox.peek(0, 10)
    envelope = json.loads(record.payload)
    assert envelope["seq"] == 4
    assert envelope["event_id"] == "hz01/line3:4"
    assert envelope["order_id"] == "SO-1"
    store.close()


def test_events_leave_only_when_acked(tmp_path: Path) -> None:
    store, outbox = _open(tmp_path / "a.db")
    with store.transaction():
        for i in range(5):
            outbox.append("alarm.raised", {"i": i}, iso(TS))
    assert [r.seq for r in outbox.peek(0, 10)] == [1, 2, 3, 4, 5]
    assert [r.seq for r in outbox.peek(2, 2)] == [3, 4]
    outbox.ack([1, 3])
    assert [r.seq for r in outbox.peek(0, 10)] == [2, 4, 5]
    assert outbox.pending_count() == 3
    store.close()


async def test_waiters_wake_on_commit_only(tmp_path: Path) -> None:
    store, outbox = _open(tmp_path / "a.db")
    import asyncio

    waiter = asyncio.create_task(outbox.wait_for_new(0))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    with store.transaction():
        outbox.append("alarm.raised", {}, iso(TS))
        await asyncio.sleep(0.01)
        assert not waiter.done()  # not committed yet
    async with asyncio.timeout(1):
        await waiter
    store.close()


async def test_a_reader_from_zero_waits_when_everything_was_acked(tmp_path: Path) -> None:
    import asyncio

    store, outbox = _open(tmp_path / "a.db")
    with store.transaction():
        outbox.append("alarm.raised", {}, iso(TS))
    outbox.ack([1])
    store.close()
    store, outbox = _open(tmp_path / "a.db")  # a restart: seq 1 is gone, last seq is 1
    waiter = asyncio.create_task(outbox.wait_for_new(0))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # nothing to send: it waits instead of returning at once
    with store.transaction():
        outbox.append("alarm.cleared", {}, iso(TS))
    async with asyncio.timeout(1):
        await waiter
    assert [r.seq for r in outbox.peek(0, 10)] == [2]
    store.close()


def _no_constant(token: str) -> None:
    raise ValueError(f"{token} is no JSON number")


def test_an_event_with_what_is_no_wire_json_goes_out_cleaned(tmp_path: Path) -> None:
    # Whatever its source, an event the hub cannot read would stall the stream: NaN is no
    # JSON (RFC 8259), a lone surrogate no UTF-8, and PostgreSQL's jsonb refuses U+0000.
    store, outbox = _open(tmp_path / "a.db")
    data = {"reason": "jam\u0000med", "ratio": float("nan"), "name": "half \ud83d",
            "nested": [{"ok": "字 🎂"}, float("inf")]}  # fmt: skip
    with store.transaction():
        outbox.append("machine.state", data, iso(TS))
        outbox.append("machine.state", {"state": "EXECUTE"}, iso(TS))
    first, second = outbox.peek(0, 10)
    text = first.payload.decode("utf-8")  # raises if a surrogate got through
    assert "\\u0000" not in text
    event = json.loads(text, parse_constant=_no_constant)
    assert event["seq"] == 1 and event["type"] == "machine.state"
    assert event["data"] == {
        "reason": "jammed",
        "ratio": None,
        "name": "half \ufffd",
        "nested": [{"ok": "字 🎂"}, None],
    }
    assert json.loads(second.payload)["data"] == {"state": "EXECUTE"}
    store.close()


def test_a_flush_rolled_back_with_its_savepoint_loses_nothing_from_before_it(
    tmp_path: Path,
) -> None:
    # Intake flushes the transaction's held rows inside a message's savepoint (so SQL sees
    # the work of the orders before it); when that message then fails, the savepoint's
    # rollback takes those rows out of the database: they must be written again, and
    # only what the failed message added is gone.
    store, outbox = _open(tmp_path / "a.db")
    bulk = BulkInserts(store)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO orders (order_id, revision, status, ship_by, priority, doc, "
            "catalog_version, units, accepted_at) "
            "VALUES ('SO-1', 1, 'released', ?, 5, '{}', 'v1', 1, ?)",
            (iso(TS), iso(TS)),
        )
        outbox.append("order.accepted", {"i": "kept"}, iso(TS), order_id="SO-1")
        bulk.add("tasks", [("SO-1", None, None, "pack", 0, "pack", "ready", iso(TS), 5)])
        with pytest.raises(RuntimeError), store.savepoint():
            store.flush()
            outbox.append("order.cancelled", {"i": "lost with its savepoint"}, iso(TS))
            bulk.add("tasks", [("SO-1", None, None, "gone", 1, "pack", "ready", iso(TS), 5)])
            store.flush()
            raise RuntimeError("the message failed")
        outbox.append("alarm.raised", {"i": "after"}, iso(TS))
    bodies = [json.loads(r.payload)["data"]["i"] for r in outbox.peek(0, 10)]
    assert bodies == ["kept", "after"]
    assert [r.seq for r in outbox.peek(0, 10)] == [1, 2]  # the failed one's seq given back
    ops = [r[0] for r in store.conn.execute("SELECT op FROM tasks ORDER BY op_index")]
    assert ops == ["pack"]
    store.close()


def test_the_waiting_count_kept_in_memory_is_the_tables(tmp_path: Path) -> None:
    # pending_count() is kept in memory (health polls and scrapes call it): after commits,
    # rollbacks, a savepoint rolled back, acks (repeated, and of seqs already gone),
    # retirement and a restart it must equal what the table holds that nobody acked.
    store, outbox = _open(tmp_path / "a.db")

    def truth() -> int:
        return len(outbox.peek(0, 10_000))

    with store.transaction():
        for i in range(4):
            outbox.append("alarm.raised", {"i": i}, iso(TS))
    assert outbox.pending_count() == truth() == 4
    with pytest.raises(RuntimeError), store.transaction():
        outbox.append("alarm.raised", {"i": "rolled back"}, iso(TS))
        store.flush()
        raise RuntimeError
    assert outbox.pending_count() == truth() == 4
    with store.transaction():
        outbox.append("alarm.raised", {"i": 5}, iso(TS))
        with pytest.raises(RuntimeError), store.savepoint():
            outbox.append("alarm.raised", {"i": "savepoint"}, iso(TS))
            store.flush()
            raise RuntimeError
    assert outbox.pending_count() == truth() == 5
    outbox.ack([1, 2])
    outbox.ack([2, 99])  # 2 again, 99 never was
    assert outbox.pending_count() == truth() == 3
    outbox.retire()
    assert outbox.pending_count() == truth() == 3
    outbox.ack([3])
    store.close()  # 3 retired on the way out
    store, outbox = _open(tmp_path / "a.db")
    assert outbox.pending_count() == truth() == 2
    store.close()
