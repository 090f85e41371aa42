"""The office's store on SQLite and on a real PostgreSQL: each (gateway_id, seq) once,
held_through and gaps by their definition, unknown types kept, rejections recorded, the
migrations applied once; on PostgreSQL also two instances at once and a server restart
under load."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from office.store import RejectKind, Store, StoreUnavailable, schema
from office.store.migrations import MIGRATIONS
from office.store.schema import schema_migrations
from tests.office.conftest import PostgreSQL, now
from tests.office.envelopes import GATEWAY, pair, pairs

pytestmark = pytest.mark.timeout(60)

OVERSIZED = RejectKind.OVERSIZED


async def test_events_are_kept_once_with_held_through_and_gaps(store: Store) -> None:
    added = await store.add_events(GATEWAY, pairs([1, 2, 3, 5, 8, 9]), "http")
    # 1..3 contiguous; 4 and 6..7 are missing below the highest seq seen (9).
    assert (added.new, added.duplicates, added.held_through) == (6, 0, 3)
    assert added.gaps == [(4, 4), (6, 7)]
    again = await store.add_events(GATEWAY, pairs([1, 2, 4, 4]), "mqtt")
    # 1 and 2 held already, 4 new, the second 4 a duplicate within the batch.
    assert (again.new, again.duplicates, again.held_through) == (1, 3, 5)
    assert await store.gaps(GATEWAY) == [(6, 7)]
    assert await store.event_seqs(GATEWAY) == [1, 2, 3, 4, 5, 8, 9]
    line = await store.line(GATEWAY)
    assert line is not None and line.held_through == 5


async def test_a_replayed_old_range_is_counted_not_stored_twice(store: Store) -> None:
    await store.add_events(GATEWAY, pairs(range(1, 201)), "http")
    replay = await store.add_events(GATEWAY, pairs(range(50, 151)), "http")
    assert (replay.new, replay.duplicates, replay.held_through) == (0, 101, 200)
    assert await store.event_seqs(GATEWAY) == list(range(1, 201))


async def test_lines_are_kept_apart(store: Store) -> None:
    await store.add_events(GATEWAY, pairs([1, 2]), "http")
    other = await store.add_events("hz01/line4", pairs([1, 3], "hz01/line4"), "http")
    assert (other.new, other.held_through, other.gaps) == (2, 1, [(2, 2)])
    assert await store.gaps(GATEWAY) == []


async def test_an_unknown_event_type_is_kept_as_it_came(store: Store) -> None:
    envelope, body = pair(1, type_="robot.waved")
    body = json.dumps({**json.loads(body), "extra_field": [1, 2]})
    added = await store.add_events(GATEWAY, [(envelope, body)], "mqtt")
    assert added.new == 1
    stored = await store.event_body(GATEWAY, 1)
    assert stored is not None and json.loads(stored)["type"] == "robot.waved"
    assert json.loads(stored)["extra_field"] == [1, 2]


async def test_an_envelope_of_another_line_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.add_events(GATEWAY, pairs([1], "hz01/line4"), "http")


async def test_rejections_are_recorded_with_a_bounded_payload(store: Store) -> None:
    payload = b"x" * 10_000
    await store.reject("mqtt", "hz01/line9", "payload over 4 MiB", payload, kind=OVERSIZED)
    [rejection] = await store.rejections()
    assert rejection.size == 10_000 and len(rejection.payload) == 4096
    assert (rejection.via, rejection.claimed_gateway_id) == ("mqtt", "hz01/line9")


async def test_status_orders_and_masterdata(store: Store) -> None:
    await store.set_status(GATEWAY, {"state": "online", "gateway_id": GATEWAY})
    line = await store.line(GATEWAY)
    assert line is not None and line.status == {"state": "online", "gateway_id": GATEWAY}
    for cursor in (1, 2, 3):
        await store.put_order(GATEWAY, cursor, {"order_id": f"SO-{cursor}"})
    assert await store.orders_after(GATEWAY, 1) == ([{"order_id": "SO-2"}, {"order_id": "SO-3"}], 3)
    assert await store.orders_after(GATEWAY, 3) == ([], 3)
    await store.put_masterdata(GATEWAY, "stock", {"kind": "stock", "n": 1})
    await store.put_masterdata(GATEWAY, "stock", {"kind": "stock", "n": 2})
    assert await store.masterdata(GATEWAY) == [{"kind": "stock", "n": 2}]


async def test_migrations_run_once(store_url: str) -> None:
    first = await Store.open(store_url, now)
    await first.close()
    second = await Store.open(store_url, now)  # finds the work done
    await second.close()
    engine = create_async_engine(store_url)
    async with engine.connect() as conn:
        versions = list(await conn.scalars(select(schema_migrations.c.version)))
    await engine.dispose()
    assert versions == [m.version for m in MIGRATIONS]


async def test_two_instances_on_one_postgresql_store_each_seq_once(pg_url: str) -> None:
    one, two = await asyncio.gather(Store.open(pg_url, now), Store.open(pg_url, now))
    rng = random.Random(16)
    batches = [list(range(start, start + 40)) for start in range(1, 1000, 25)]  # overlapping
    rng.shuffle(batches)
    try:
        results = await asyncio.gather(
            *(
                (one if i % 2 else two).add_events(GATEWAY, pairs(batch), "mqtt")
                for i, batch in enumerate(batches)
            )
        )
        seqs = await one.event_seqs(GATEWAY)
        highest = max(max(b) for b in batches)
        assert seqs == list(range(1, highest + 1))
        assert sum(r.new for r in results) == highest
        assert sum(r.new + r.duplicates for r in results) == sum(len(b) for b in batches)
        line = await one.line(GATEWAY)
        assert line is not None and line.held_through == highest
    finally:
        await one.close()
        await two.close()


async def test_postgresql_restarted_under_load_loses_nothing_and_stores_nothing_twice(
    postgres_own: PostgreSQL,
) -> None:
    store = await Store.open(postgres_own.url(), now)
    failures = 0
    done = 0

    async def producer() -> None:
        nonlocal failures, done
        for start in range(1, 3001, 50):
            batch = pairs(range(start, start + 50))
            while True:  # a sender retries a batch until it is held
                try:
                    await store.add_events(GATEWAY, batch, "http")
                    break
                except StoreUnavailable:
                    failures += 1
                    await asyncio.sleep(0.05)
            done += 1

    task = asyncio.create_task(producer())
    try:
        async with asyncio.timeout(40):
            while done < 10:  # noqa: ASYNC110 - waiting for the load to be under way
                await asyncio.sleep(0.01)
            await asyncio.to_thread(postgres_own.stop)
            await asyncio.sleep(0.5)  # down for a while: the producer meets the error
            await asyncio.to_thread(postgres_own.start)
            await task
        assert failures > 0
        assert await store.event_seqs(GATEWAY) == list(range(1, 3001))
        line = await store.line(GATEWAY)
        assert line is not None and line.held_through == 3000
    finally:
        task.cancel()
        await store.close()


async def test_projectors_see_each_new_event_once_in_its_transaction(store_url: str) -> None:
    seen: list[tuple[str, int]] = []

    async def project(_conn: object, gateway_id: str, envelopes: object) -> None:
        assert isinstance(envelopes, list)
        seen.extend((gateway_id, e.seq) for e in envelopes)

    async def fail_on_7(conn: AsyncConnection, _gateway_id: str, envelopes: object) -> None:
        assert isinstance(envelopes, list)
        if any(e.seq == 7 for e in envelopes):
            # Half its work done, then it fails: that half must not stay.
            await conn.execute(
                insert(schema.audit).values(at="x", action="half", target="x", outcome="ok")
            )
            raise RuntimeError("view broken")

    store = await Store.open(store_url, now, projectors=[project, fail_on_7])
    reads: list[asyncio.Task[list[int]]] = []

    def after() -> None:
        # Called after the commit: the new events are there for anyone to read.
        reads.append(asyncio.get_running_loop().create_task(store.event_seqs(GATEWAY)))

    store.after_commit.append(after)
    try:
        await store.add_events(GATEWAY, pairs([1, 2, 3]), "http")
        first = await reads[0]  # read before the next batch
        await store.add_events(GATEWAY, pairs([2, 3, 4]), "mqtt")  # 2, 3 duplicates
        await store.add_events(GATEWAY, pairs([1, 4]), "mqtt")  # nothing new: nobody told
        assert len(reads) == 2
        assert seen == [(GATEWAY, 1), (GATEWAY, 2), (GATEWAY, 3), (GATEWAY, 4)]
        assert [first, await reads[1]] == [[1, 2, 3], [1, 2, 3, 4]]
        # A projector that fails loses its own part of the batch, never the events (nor
        # the other views' parts): the line's stream does not stall behind a view's bug.
        added = await store.add_events(GATEWAY, pairs([5, 6, 7]), "http")
        assert (added.new, added.held_through) == (3, 7)
        assert await store.event_seqs(GATEWAY) == [1, 2, 3, 4, 5, 6, 7]
        assert seen[-3:] == [(GATEWAY, 5), (GATEWAY, 6), (GATEWAY, 7)]
        async with store.read() as conn:
            assert (await conn.execute(select(schema.audit))).all() == []
        assert dict(store.tally.projection_failures) == {
            "test_projectors_see_each_new_event_once_in_its_transaction.<locals>.fail_on_7": 1
        }
    finally:
        await store.close()
