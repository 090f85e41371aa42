"""The office's HTTP end, served for real (uvicorn on loopback) over a real store: the
gateway's own HttpLink drains its outbox into it and pulls orders and master data from it;
tokens speak for one line; bad bodies get their status and are recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from cloud_sync.http import HttpLink, HttpSettings, MemoryLinkState
from office.app import serve_http
from office.receive.http import http_app
from office.store import Store
from tests.cloud_sync.doubles import ListOutbox, ListSink
from tests.office.conftest import PostgreSQL, now
from tests.office.envelopes import GATEWAY, doc

pytestmark = pytest.mark.timeout(60)

SITE, LINE = GATEWAY.split("/")
TOKEN, OTHER_TOKEN = "t0ken-of-line3", "t0ken-of-line4"
TOKENS = {TOKEN: GATEWAY, OTHER_TOKEN: "hz01/line4"}
EVENTS = f"/v1/gateways/{SITE}/{LINE}/events"


@pytest.fixture
async def office(store: Store) -> AsyncIterator[str]:
    async with serve_http(http_app(store, TOKENS, max_body_bytes=64 * 1024), "127.0.0.1", 0) as url:
        yield url


async def _until(pred: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_gateways_http_link_drains_into_the_office_and_pulls_from_it(
    office: str, store: Store
) -> None:
    for cursor in (1, 2):
        await store.put_order(GATEWAY, cursor, {"order_id": f"SO-{cursor}"})
    catalog = {"kind": "catalog", "version": "7"}
    await store.put_masterdata(GATEWAY, "catalog", catalog)
    outbox = ListOutbox()
    outbox.add(120)
    settings = HttpSettings(
        base_url=office, site=SITE, line=LINE, token=TOKEN, batch_max=50, timeout_s=5.0,
        poll_s=0.05, masterdata_poll_s=0.1, backoff_initial_s=0.05, backoff_max_s=0.2,
    )  # fmt: skip
    state = MemoryLinkState()
    link = HttpLink(settings, state)
    sink = ListSink()
    task = asyncio.create_task(link.run(sink, outbox))
    try:
        await _until(lambda: not outbox.pending)
        outbox.add(7)  # live events after the backlog
        await _until(lambda: not outbox.pending)
        await _until(lambda: len(sink.messages) >= 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await store.event_seqs(GATEWAY) == list(range(1, 128))
    line = await store.line(GATEWAY)
    assert line is not None and line.held_through == 127
    assert link.refused is None and link.published == 127
    assert {"in/masterdata/catalog", "in/orders"} <= {m.topic for m in sink.messages}
    orders = next(m for m in sink.messages if m.topic == "in/orders")
    assert json.loads(orders.payload) == [{"order_id": "SO-1"}, {"order_id": "SO-2"}]
    assert state.get("hub_orders_cursor") == "2"


async def test_a_replayed_batch_is_acknowledged_and_counted_once(office: str, store: Store) -> None:
    async with httpx.AsyncClient(base_url=office, headers=_auth()) as client:
        first = await client.post(EVENTS, json=[doc(1), doc(2), doc(4)])
        again = await client.post(EVENTS, json=[doc(1), doc(2), doc(4)])
    assert first.json() == again.json() == {"acked_through": 2}  # 3 is missing
    assert await store.event_seqs(GATEWAY) == [1, 2, 4]
    assert await store.gaps(GATEWAY) == [(3, 3)]


async def test_another_lines_token_is_refused_and_recorded(office: str, store: Store) -> None:
    async with httpx.AsyncClient(base_url=office) as client:
        other = await client.post(EVENTS, json=[doc(1)], headers=_auth(OTHER_TOKEN))
        unknown = await client.post(EVENTS, json=[doc(1)], headers=_auth("guess"))
        none = await client.get(f"/v1/gateways/{SITE}/{LINE}/orders")
    assert (other.status_code, unknown.status_code, none.status_code) == (403, 401, 401)
    assert await store.event_seqs(GATEWAY) == []
    reasons = [r.reason for r in await store.rejections()]
    assert reasons[0] == f"the token of hz01/line4 used for {GATEWAY}"
    assert len(reasons) == 3


async def test_an_envelope_claiming_another_gateway_is_refused_the_rest_stored(
    office: str, store: Store
) -> None:
    body = [doc(1), doc(2, "hz01/line4"), doc(3), {"v": 1, "seq": "x"}]
    async with httpx.AsyncClient(base_url=office, headers=_auth()) as client:
        answer = await client.post(EVENTS, json=body)
    assert answer.status_code == 422
    assert answer.json()["acked_through"] == 1
    assert [r["seq"] for r in answer.json()["refused"]] == [2, None]
    assert await store.event_seqs(GATEWAY) == [1, 3]
    rejections = await store.rejections()
    assert [r.claimed_gateway_id for r in rejections] == ["hz01/line4", None]
    assert "claims gateway hz01/line4" in rejections[0].reason


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'[{"v": 1, "seq": ', 400, "not JSON"),
        (b'"hello"', 400, "not an envelope"),
        (b"[" + b" " * 70_000 + b"]", 413, "body over 65536 bytes"),
    ],
)
async def test_a_bad_body_gets_its_status_and_is_recorded(
    office: str, store: Store, body: bytes, status: int, reason: str
) -> None:
    async with httpx.AsyncClient(base_url=office, headers=_auth()) as client:
        answer = await client.post(EVENTS, content=body)
    assert answer.status_code == status
    assert reason in answer.json()["error"]
    [rejection] = await store.rejections()
    assert reason in rejection.reason and rejection.claimed_gateway_id == GATEWAY


async def test_the_store_down_is_503_and_nothing_acknowledged(postgres_own: PostgreSQL) -> None:
    store = await Store.open(postgres_own.url(), now)
    try:
        async with (
            serve_http(http_app(store, TOKENS), "127.0.0.1", 0) as url,
            httpx.AsyncClient(base_url=url, headers=_auth()) as client,
        ):
            assert (await client.post(EVENTS, json=[doc(1)])).json() == {"acked_through": 1}
            await asyncio.to_thread(postgres_own.stop)
            down = await client.post(EVENTS, json=[doc(2)])
            assert down.status_code == 503 and down.headers["retry-after"] == "1"
            await asyncio.to_thread(postgres_own.start)
            back = await client.post(EVENTS, json=[doc(2)])
            assert back.json() == {"acked_through": 2}
    finally:
        await store.close()
