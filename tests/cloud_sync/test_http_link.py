"""The HTTP hub link against a real HTTP hub on loopback (simulators/http_hub.py): batches
with idempotency keys, ``acked_through`` honoured, retries on 5xx, 429 and 503 with
Retry-After, timeouts after the body was sent and truncated answers, no retry of a refusal,
orders pulled with a cursor that survives a restart, master data applied once per change.
Each fault test counts what the hub holds: nothing lost, each seq held once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from cloud_sync.http import HttpLink, HttpSettings, MemoryLinkState
from simulators.http_hub import HttpHub, serve_http_hub
from tests.cloud_sync.doubles import ListOutbox, ListSink

SITE, LINE, TOKEN = "hz01", "line3", "t0ken-of-line3"


@asynccontextmanager
async def _hub(**kwargs: Any) -> AsyncIterator[tuple[HttpHub, str]]:
    hub = HttpHub(SITE, LINE, token=TOKEN, **kwargs)
    async with serve_http_hub(hub) as url:
        yield hub, url


def _settings(url: str, **overrides: Any) -> HttpSettings:
    values: dict[str, Any] = {
        "base_url": url,
        "site": SITE,
        "line": LINE,
        "token": TOKEN,
        "batch_max": 50,
        "timeout_s": 1.0,
        "poll_s": 0.05,
        "masterdata_poll_s": 0.1,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
    }
    values.update(overrides)
    return HttpSettings(**values)


@asynccontextmanager
async def _running(
    link: HttpLink, outbox: ListOutbox, sink: ListSink | None = None
) -> AsyncIterator[ListSink]:
    sink = sink or ListSink()
    task = asyncio.create_task(link.run(sink, outbox))
    try:
        yield sink
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(pred: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


async def test_events_go_in_batches_and_leave_the_outbox_once_held() -> None:
    async with _hub() as (hub, url):
        outbox = ListOutbox()
        outbox.add(120)
        link = HttpLink(_settings(url), MemoryLinkState())
        async with _running(link, outbox):
            await _until(lambda: not outbox.pending)
            outbox.add(7)  # live ones, after the backlog
            await _until(lambda: not outbox.pending)
        assert sorted(hub.events) == list(range(1, 128))
        assert hub.duplicates == 0 and link.published == 127
        assert hub.posts == 4  # 50 + 50 + 20, then the 7
        assert set(hub.idempotency_keys) == {
            f"{SITE}/{LINE}:1-50", f"{SITE}/{LINE}:51-100", f"{SITE}/{LINE}:101-120",
            f"{SITE}/{LINE}:121-127",
        }  # fmt: skip
        assert hub.events[1]["event_id"] == f"{SITE}/{LINE}:1"


@pytest.mark.parametrize("fault", ["500", "truncated", "timeout"])
async def test_a_failed_batch_goes_again_and_the_hub_holds_each_event_once(fault: str) -> None:
    async with _hub(slow_s=1.5) as (hub, url):
        outbox = ListOutbox()
        outbox.add(80)
        hub.fail(fault, fault)  # the first two tries of the first batch
        link = HttpLink(_settings(url), MemoryLinkState())
        async with _running(link, outbox):
            await _until(lambda: not outbox.pending)
        assert sorted(hub.events) == list(range(1, 81))  # nothing lost
        assert hub.missing(80) == []
        assert link.retries == 2
        # The same batch, with the same key, until it was held.
        assert hub.idempotency_keys[f"{SITE}/{LINE}:1-50"] == 3
        if fault in ("timeout", "truncated"):  # held the first time: the retries were repeats
            assert hub.duplicates == 2 * 50


@pytest.mark.parametrize("fault", ["429", "503"])
async def test_retry_after_is_honoured(fault: str) -> None:
    async with _hub(retry_after_s=1) as (hub, url):
        outbox = ListOutbox()
        outbox.add(10)
        hub.fail(fault)
        link = HttpLink(_settings(url), MemoryLinkState())
        started = time.monotonic()
        async with _running(link, outbox):
            await _until(lambda: not outbox.pending)
        assert time.monotonic() - started >= 1.0  # not the 0.05 s backoff
        assert sorted(hub.events) == list(range(1, 11))
        assert hub.statuses[int(fault)] == 1


async def test_a_refusal_is_not_retried_and_raises_a_problem() -> None:
    async with _hub() as (hub, url):
        outbox = ListOutbox()
        outbox.add(10)
        hub.fail("refuse")
        problems: list[tuple[str, str | None]] = []
        hub.add_orders({"order_id": "SO-1"})
        link = HttpLink(_settings(url), MemoryLinkState(), lambda w, p: problems.append((w, p)))
        async with _running(link, outbox) as sink:
            await _until(lambda: any(p for _, p in problems))
            posts = hub.posts
            await asyncio.sleep(0.5)
            assert hub.posts == posts == 1  # no retry
            assert sorted(outbox.pending) == list(range(1, 11))  # nothing dropped
            # Orders still come in.
            await _until(lambda: bool(sink.messages))
        assert link.refused is not None and "HTTP 400" in link.refused
        # Raised once; orders coming in clear nothing of it.
        assert [(w, p) for w, p in problems if w == "events"] == [
            ("events", f"the hub refused events: {link.refused}")
        ]


async def test_a_wrong_token_is_refused_not_retried() -> None:
    async with _hub() as (hub, url):
        outbox = ListOutbox()
        outbox.add(3)
        link = HttpLink(_settings(url, token="stolen"), MemoryLinkState())
        async with _running(link, outbox):
            await _until(lambda: link.refused is not None)
        assert "HTTP 401" in (link.refused or "")
        assert hub.events == {}


async def test_orders_are_pulled_with_a_cursor_that_survives_a_restart() -> None:
    async with _hub() as (hub, url):
        state = MemoryLinkState()
        hub.add_orders({"order_id": "SO-1"}, {"order_id": "SO-2"})
        hub.set_masterdata({"kind": "catalog", "version": "v1"}, {"kind": "stock", "items": []})
        async with _running(HttpLink(_settings(url), state), ListOutbox()) as sink:
            await _until(lambda: state.get("hub_orders_cursor") == "2")
            await asyncio.sleep(0.3)  # several polls of unchanged master data
        topics = [m.topic for m in sink.messages]
        assert topics.count("in/orders") == 1
        assert (
            topics.count("in/masterdata/catalog") == 1 and topics.count("in/masterdata/stock") == 1
        )
        orders = next(json.loads(m.payload) for m in sink.messages if m.topic == "in/orders")
        assert [o["order_id"] for o in orders] == ["SO-1", "SO-2"]

        # A restart: the cursor is where it was; only the new order comes.
        hub.add_orders({"order_id": "SO-3"})
        async with _running(HttpLink(_settings(url), state), ListOutbox()) as sink:
            await _until(lambda: state.get("hub_orders_cursor") == "3")
        got = [json.loads(m.payload) for m in sink.messages if m.topic == "in/orders"]
        assert got == [[{"order_id": "SO-3"}]]


async def test_a_live_event_rides_ahead_of_the_backlog_and_is_not_sent_twice() -> None:
    async with _hub() as (hub, url):
        outbox = ListOutbox()
        outbox.add(3000)  # the backlog: committed while the hub was away
        link = HttpLink(_settings(url, batch_max=100), MemoryLinkState())
        async with _running(link, outbox):
            await _until(lambda: hub.posts >= 2)
            outbox.add(1)  # an operator's scan, now: seq 3001
            await _until(lambda: 3001 in hub.events)
            assert hub.acked_through < 3000  # the backlog is still draining
            await _until(lambda: not outbox.pending)
        arrival = list(hub.events)
        assert arrival.index(3001) < 3000  # it did not wait for the backlog
        assert sorted(hub.events) == list(range(1, 3002))
        assert hub.duplicates == 0  # held ahead, acknowledged once the backlog caught up
        assert link.published == 3001


async def test_a_hub_that_keeps_only_what_follows_on_still_gets_everything() -> None:
    async with _hub(keeps_ahead=False) as (hub, url):
        outbox = ListOutbox()
        outbox.add(1000)
        link = HttpLink(_settings(url, batch_max=100), MemoryLinkState())
        async with _running(link, outbox):
            await _until(lambda: hub.posts >= 2)
            outbox.add(5)  # live: dropped by this hub when they arrive early
            await _until(lambda: not outbox.pending)
        assert sorted(hub.events) == list(range(1, 1006))
