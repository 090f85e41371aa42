"""A seq sent again with other content is a conflict, not a duplicate: the stored event is
kept and the other recorded in ``rejected``; a refusal sent again is recorded once, with a
count; the table is bounded; a store from before migration 2 is brought up to date. On
SQLite and a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from cloud_sync.contract import Envelope
from office.store import RejectedBound, RejectKind, Store, v1
from office.store.schema import schema_migrations
from tests.office.conftest import now
from tests.office.envelopes import GATEWAY, doc, pairs

pytestmark = pytest.mark.timeout(60)


def _pair(d: dict[str, object]) -> tuple[Envelope, str]:
    return Envelope.model_validate(d), json.dumps(d)


async def test_other_content_under_a_held_seq_is_a_conflict_recorded_once(store: Store) -> None:
    await store.add_events(GATEWAY, pairs([1, 2, 3, 5]), "http")  # held 3; 5 above a hole
    other_id = {**doc(2), "event_id": "hz01/line3:reseeded-2"}
    other_body = {**doc(3), "data": {"n": -1}}  # same event_id, another body
    other_above = {**doc(5), "event_id": "hz01/line3:reseeded-5"}
    same_reordered = dict(reversed(list(doc(1).items())))  # the same event, keys reordered
    batch = [_pair(other_id), _pair(other_body), _pair(other_above), _pair(same_reordered)]
    added = await store.add_events(GATEWAY, batch, "http")
    assert (added.new, added.duplicates, added.conflicts, added.held_through) == (0, 1, 3, 3)
    # The stored ones are kept.
    for seq in (2, 3, 5):
        body = await store.event_body(GATEWAY, seq)
        assert body is not None and json.loads(body) == doc(seq)
    rejections = await store.rejections()
    assert [r.reason for r in rejections] == [
        "conflict: seq 2 already held with event_id hz01/line3:2; "
        "this one has event_id hz01/line3:reseeded-2",
        "conflict: seq 3 already held with event_id hz01/line3:3; "
        "this one has the same event_id and another body",
        "conflict: seq 5 already held with event_id hz01/line3:5; "
        "this one has event_id hz01/line3:reseeded-5",
    ]
    assert all((r.via, r.claimed_gateway_id, r.times) == ("http", GATEWAY, 1) for r in rejections)
    assert json.loads(rejections[0].payload) == other_id  # what was sent, whole
    # The gateway sends the batch again: counted again, recorded once.
    again = await store.add_events(GATEWAY, batch, "mqtt")
    assert (again.new, again.duplicates, again.conflicts) == (0, 1, 3)
    # via differs (mqtt): a row of its own per conflict; the http rows are not counted twice.
    third = await store.add_events(GATEWAY, batch, "mqtt")
    assert third.conflicts == 3
    times = sorted((r.via, r.reason[:17], r.times) for r in await store.rejections())
    assert times == [
        ("http", "conflict: seq 2 a", 1),
        ("http", "conflict: seq 3 a", 1),
        ("http", "conflict: seq 5 a", 1),
        ("mqtt", "conflict: seq 2 a", 2),
        ("mqtt", "conflict: seq 3 a", 2),
        ("mqtt", "conflict: seq 5 a", 2),
    ]
    tally = store.tally
    assert (tally.stored["http"], tally.duplicates, tally.conflicts) == (4, 3, 9)
    assert tally.rejected[RejectKind.CONFLICT] == 9


async def test_a_seq_twice_in_one_new_batch_with_other_content_is_a_conflict(
    store: Store,
) -> None:
    first, other = doc(1), {**doc(1), "event_id": "hz01/line3:other"}
    added = await store.add_events(GATEWAY, [_pair(first), _pair(other), _pair(first)], "http")
    assert (added.new, added.duplicates, added.conflicts) == (1, 1, 1)
    body = await store.event_body(GATEWAY, 1)
    assert body is not None and json.loads(body) == first
    [rejection] = await store.rejections()
    assert rejection.reason.endswith("this one has event_id hz01/line3:other")


async def test_a_refusal_sent_again_is_one_row_with_a_count(store: Store) -> None:
    malformed = RejectKind.MALFORMED
    for _ in range(3):
        await store.reject("mqtt", GATEWAY, "not JSON: x", b"{oops", kind=malformed)
    await store.reject("mqtt", GATEWAY, "not JSON: x", b"{oops!", kind=malformed)  # other payload
    await store.reject("http", GATEWAY, "not JSON: x", b"{oops", kind=malformed)  # other via
    rows = await store.rejections()
    assert [(r.via, r.payload, r.times) for r in rows] == [
        ("mqtt", "{oops", 3),
        ("mqtt", "{oops!", 1),
        ("http", "{oops", 1),
    ]
    assert store.tally.rejected[malformed] == 5


async def test_the_rejected_table_keeps_the_newest_rows_and_forgets_old_ones(
    store_url: str,
) -> None:
    clock = [now()]
    bound = RejectedBound(rows=3, days=30, prune_every=1)
    store = await Store.open(store_url, lambda: clock[0], bound)
    try:
        for n in range(5):
            await store.reject("http", None, f"reason {n}", b"", kind=RejectKind.AUTH)
        # Pruned after each insert: the newest 3 are left.
        assert [r.reason for r in await store.rejections()] == ["reason 2", "reason 3", "reason 4"]
        clock[0] = now() + timedelta(days=30, seconds=1)
        await store.reject("http", None, "reason 3", b"", kind=RejectKind.AUTH)  # seen again
        await store.reject("http", None, "late", b"", kind=RejectKind.AUTH)
        # "reason 2" and "reason 4" were last seen over 30 days ago.
        assert [(r.reason, r.times) for r in await store.rejections()] == [
            ("reason 3", 2),
            ("late", 1),
        ]
    finally:
        await store.close()


async def test_a_store_from_before_migration_2_is_brought_up_to_date(store_url: str) -> None:
    at = now().isoformat()
    engine = create_async_engine(store_url)
    async with engine.begin() as conn:

        def make_v1(sync_conn: object) -> None:
            schema_migrations.create(sync_conn)  # type: ignore[arg-type]
            for table in v1.TABLES:
                table.create(sync_conn)  # type: ignore[arg-type]

        await conn.run_sync(make_v1)
        await conn.execute(insert(schema_migrations).values(version=1, name="v1", applied_at=at))
        events, lines, rejected = v1.TABLES[0], v1.TABLES[1], v1.TABLES[2]
        await conn.execute(
            insert(events).values(
                gateway_id=GATEWAY, seq=1, type="task.completed", ts=at, order_id="SO-1",
                body=json.dumps(doc(1)), received_at=at, via="http",
            )
        )  # fmt: skip
        await conn.execute(insert(lines).values(gateway_id=GATEWAY, held_through=1))
        await conn.execute(
            insert(rejected).values(
                at=at, via="http", claimed_gateway_id=None, reason="old", payload="", size=0
            )
        )
    await engine.dispose()
    store = await Store.open(store_url, now)
    try:
        same = await store.add_events(GATEWAY, [_pair(doc(1))], "http")
        assert (same.duplicates, same.conflicts) == (1, 0)  # no digest stored: computed
        other = await store.add_events(GATEWAY, [_pair({**doc(1), "data": {}})], "http")
        assert other.conflicts == 1
        old, conflict = await store.rejections()
        assert (old.reason, old.times, old.last_at) == ("old", 1, at)
        assert conflict.reason.startswith("conflict: seq 1 already held")
    finally:
        await store.close()
