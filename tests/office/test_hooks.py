"""The webhooks' outbox for real: events stored through ``Store.add_events`` (SQLite and a
real PostgreSQL) are queued by the projector in the same transaction and POSTed to a real
HTTP receiver (uvicorn on loopback) that checks each HMAC by the documented formula;
retries after 5xx and a hanging receiver (the deadline), 4xx given up and listed, a restart
sends what was pending once, two instances on one PostgreSQL send each row once. The
office's clock is injected."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, inspect, select

from office.hooks import HookProjector, HookSpec, Sender
from office.hooks.metrics import HookMetrics
from office.report.metrics import OfficeMetrics
from office.store import Store, schema
from tests.office.hooks_parts import (
    L3,
    L4,
    Clock,
    Receiver,
    drain,
    event,
    hook,
    receiving,
    requested,
)

pytestmark = pytest.mark.timeout(90)


async def _open(url: str, clock: Clock, hooks: list[HookSpec]) -> Store:
    return await Store.open(url, clock, projectors=[HookProjector(hooks, clock)])


async def test_material_requests_reach_the_wms_signed_in_seq_order_once(store_url: str) -> None:
    clock = Clock()
    async with receiving(Receiver()) as wms:
        hooks = [hook(wms.url, {"material.requested"}, lines=frozenset({L3}))]
        store = await _open(store_url, clock, hooks)
        try:
            sender = Sender(store, hooks, clock)
            # Out of order, with other types between and another line outside the filter.
            await store.add_events(
                L3, [requested(4, revision=2), event(3, "task.completed")], "mqtt"
            )
            await store.add_events(
                L3,
                [requested(1), requested(2), event(5, "order.completed", order_id="SO-1")],
                "http",
            )
            await store.add_events(L4, [requested(1, L4)], "mqtt")
            async with httpx.AsyncClient() as client:
                assert await drain(lambda: sender.send_due(client)) == 3
                # The same events again (a redelivery): stored once, sent once.
                await store.add_events(
                    L3, [requested(1), requested(2), requested(4, revision=2)], "mqtt"
                )
                assert await drain(lambda: sender.send_due(client)) == 0
        finally:
            await store.close()
    assert wms.bad_signatures == 0
    # The outbox follows storage order (seq 4 was stored first); within what one batch
    # stored, seq order.
    assert wms.taken() == [f"{L3}:4", f"{L3}:1", f"{L3}:2"]
    assert [r.event for r in wms.got] == ["material.requested"] * 3
    assert [r.attempt for r in wms.got] == [1, 1, 1]
    assert {r.t for r in wms.got} == {int(clock.at.timestamp())}
    first = wms.got[0].body  # the envelope as the gateway sent it, extra fields kept
    assert first["seq"] == 4 and first["data"]["revision"] == 2 and first["x_extra"] == "kept"
    assert first["ts"] == "2026-11-11T02:00:00.000+00:00"


async def test_5xx_and_a_hanging_receiver_are_retried_with_doubling_delays(store_url: str) -> None:
    clock = Clock()
    async with receiving(Receiver(script=[500, "hang", 503, 200])) as shop:
        spec = hook(shop.url, {"order.completed"}, name="shop", timeout_s=0.3,
                    first_retry_s=10, max_retry_s=30, max_attempts=5)  # fmt: skip
        store = await _open(store_url, clock, [spec])
        try:
            sender = Sender(store, [spec], clock)
            await store.add_events(L3, [event(1, "order.completed", order_id="SO-1")], "mqtt")
            async with httpx.AsyncClient() as client:
                assert await sender.send_due(client) == 1  # 500
                # Retried after first_retry_s, then doubled, capped at max_retry_s: 10, 20, 30.
                for wait in (10, 20):
                    clock.advance(wait - 0.001)
                    assert await sender.send_due(client) == 0  # not due yet
                    clock.advance(0.001)
                    started = time.monotonic()
                    assert await sender.send_due(client) == 1
                    if wait == 10:  # the hang: cut at the deadline, not at the receiver's 2 s
                        assert time.monotonic() - started < 1.5
                clock.advance(29)
                assert await sender.send_due(client) == 0
                clock.advance(1)
                assert await sender.send_due(client) == 1  # 200
                assert await drain(lambda: sender.send_due(client)) == 0
            async with store.transaction() as conn:
                row = (await conn.execute(select(schema.hook_outbox))).one()
        finally:
            await store.close()
    assert [r.status for r in shop.got] == [500, 0, 503, 200]
    assert [r.attempt for r in shop.got] == [1, 2, 3, 4]
    assert {r.key for r in shop.got} == {f"{L3}:1"}  # one idempotency key for every attempt
    assert (row.state, row.attempts, row.last_status) == ("done", 4, 200)
    assert sender.tally.retried["shop"] == 3 and sender.tally.sent["shop"] == 1


async def test_a_4xx_is_given_up_at_once_and_the_attempts_are_bounded(store_url: str) -> None:
    clock = Clock()
    async with receiving(Receiver(script=[400, 503, 503])) as wms:
        spec = hook(wms.url, {"material.requested"}, first_retry_s=1, max_attempts=2)
        store = await _open(store_url, clock, [spec])
        try:
            sender = Sender(store, [spec], clock)
            metrics = OfficeMetrics(store, clock, HookMetrics(store, ["wms"], sender.tally, clock))
            await store.add_events(L3, [requested(1), requested(2), requested(3)], "mqtt")
            async with httpx.AsyncClient() as client:
                # seq 1: 400, given up at once; seq 2 next: 503, and seq 3 waits behind it.
                assert await sender.send_due(client) == 2
                assert await sender.send_due(client) == 0  # seq 2 not due for 1 s
                clock.advance(1)
                # seq 2: 503 again, its 2nd and last attempt: given up; then seq 3: 200.
                assert await sender.send_due(client) == 2
                assert await drain(lambda: sender.send_due(client)) == 0
            await metrics.refresh()
            families = {
                f.name: f
                for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
            }
        finally:
            await store.close()
    assert [(r.key, r.status) for r in wms.got] == [
        (f"{L3}:1", 400), (f"{L3}:2", 503), (f"{L3}:2", 503), (f"{L3}:3", 200)
    ]  # fmt: skip
    given_up = {
        s.labels["hook"]: s.value for s in families["linegate_office_hook_given_up"].samples
    }
    assert given_up == {"wms": 2.0}
    depth = families["linegate_office_hook_outbox_depth"].samples
    assert [(s.labels["hook"], s.value) for s in depth] == [("wms", 0.0)]


async def test_a_restart_sends_what_was_pending_once(store_url: str) -> None:
    clock = Clock()
    async with receiving(Receiver()) as wms:
        spec = hook(wms.url, {"material.requested"})
        first = await _open(store_url, clock, [spec])
        try:
            await first.add_events(L3, [requested(1), requested(2), requested(3)], "mqtt")
            # An instance that claimed seq 1 and died before it sent.
            dying = Sender(first, [spec], clock)
            async with first.transaction() as conn:
                from office.hooks import outbox

                claimed = await outbox.claim(conn, ["wms"], clock(), 60, 10, 1)
            assert [[d.key for d in stream] for stream in claimed] == [[f"{L3}:1"]]
            del dying
        finally:
            await first.close()
        again = await _open(store_url, clock, [spec])
        try:
            sender = Sender(again, [spec], clock)
            async with httpx.AsyncClient() as client:
                assert (
                    await drain(lambda: sender.send_due(client)) == 0
                )  # seq 1 leased: the line waits
                clock.advance(60)
                assert await drain(lambda: sender.send_due(client)) == 3
                clock.advance(3600)
                assert await drain(lambda: sender.send_due(client)) == 0
        finally:
            await again.close()
    assert wms.taken() == [f"{L3}:1", f"{L3}:2", f"{L3}:3"]


async def test_two_instances_on_one_postgresql_send_each_row_once(pg_url: str) -> None:
    clock = Clock()
    lines = [f"hz01/line{n}" for n in range(1, 7)]
    async with receiving(Receiver()) as wms:
        spec = hook(wms.url, {"material.requested"})
        stores = [await _open(pg_url, clock, [spec]) for _ in range(2)]
        senders = [Sender(s, [spec], clock, poll_s=0.02, batch=4) for s in stores]
        try:
            # Each instance stores part of every line's events, as a shared subscription
            # would; then both send at once, racing for the same head rows.
            for seq in range(1, 21):
                for n, line in enumerate(lines):
                    await stores[(seq + n) % 2].add_events(line, [requested(seq, line)], "mqtt")
            async with asyncio.TaskGroup() as tg:
                runs = [tg.create_task(s.run()) for s in senders]
                async with asyncio.timeout(30):
                    await wms.wait_for(120)
                await asyncio.sleep(0.3)  # nothing more comes
                for run in runs:
                    run.cancel()
        finally:
            for s in stores:
                await s.close()
    counts = Counter(r.key for r in wms.got)
    assert len(counts) == 120 and set(counts.values()) == {1}
    for line in lines:  # each line's in seq order
        seqs = [int(r.key.rsplit(":", 1)[1]) for r in wms.got if r.key.startswith(line + ":")]
        assert seqs == list(range(1, 21))
    assert all(sum(s.tally.sent.values()) > 0 for s in senders)  # both did some


async def test_migration_8_makes_the_tables_schema_py_names(store_url: str) -> None:
    """The frozen tables of migration 8 and schema.py's say the same (columns, indexes)."""
    store = await Store.open(store_url, Clock())
    try:
        async with store.transaction() as conn:

            def shape(sync: Connection) -> dict[str, tuple[list[str], list[str]]]:
                found = inspect(sync)
                return {
                    name: (
                        [c["name"] for c in found.get_columns(name)],
                        sorted(str(i["name"]) for i in found.get_indexes(name)),
                    )
                    for name in ("hook_outbox", "hook_unanswered", "hook_watch")
                }

            migrated = await conn.run_sync(shape)
            feed_indexes = await conn.run_sync(
                lambda sync: [i["name"] for i in inspect(sync).get_indexes("feed_orders")]
            )
    finally:
        await store.close()
    for table in (schema.hook_outbox, schema.hook_unanswered, schema.hook_watch):
        assert migrated[table.name] == (
            [c.name for c in table.columns],
            sorted(str(i.name) for i in table.indexes),
        )
    assert "hooks_feed_orders_received" in feed_indexes


async def test_sent_and_given_up_rows_are_pruned_after_their_days(store_url: str) -> None:
    clock = Clock()

    async def keys(store: Store) -> list[str]:
        async with store.transaction() as conn:
            found = await conn.scalars(
                select(schema.hook_outbox.c.key).order_by(schema.hook_outbox.c.id)
            )
            return list(found)

    async with receiving(Receiver(script=[200, 400])) as wms:
        spec = hook(wms.url, {"material.requested"})
        store = await _open(store_url, clock, [spec])
        try:
            sender = Sender(store, [spec], clock, keep_done_days=7, keep_failed_days=30)
            await store.add_events(L3, [requested(1), requested(2)], "mqtt")
            async with httpx.AsyncClient() as client:
                assert await drain(lambda: sender.send_due(client)) == 2  # done, given up
                clock.advance(7 * 86400)
                await store.add_events(L3, [requested(3)], "mqtt")  # waiting
                assert await sender.prune() == 0  # exactly 7 days: kept
                clock.advance(1)
                assert await sender.prune() == 1
                assert await keys(store) == [f"{L3}:2", f"{L3}:3"]  # given up, waiting: kept
                clock.advance(23 * 86400 - 1)  # 30 days exactly: kept
                assert await sender.prune() == 0
                clock.advance(1)
                assert await sender.prune() == 1  # given up over 30 days ago
                assert await keys(store) == [f"{L3}:3"]  # still waiting: never pruned
                assert await drain(lambda: sender.send_due(client)) == 1
        finally:
            await store.close()
