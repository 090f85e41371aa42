"""Feed the lines: shops' orders over real HTTP (uvicorn on loopback) into a real store
(SQLite and PostgreSQL), routed by catalog and open load, idempotent by (order_id,
revision), and pulled by the gateway's own HttpLink from the line's orders feed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from cloud_sync.contract import Envelope
from cloud_sync.http import HttpLink, HttpSettings, MemoryLinkState
from office.app import serve_http
from office.feed import Ledger, feed_routes
from office.feed.routing import Choice, choose_line
from office.receive.http import http_app
from office.store import RejectKind, Store
from tests.cloud_sync.doubles import ListOutbox, ListSink
from tests.office.conftest import now

pytestmark = pytest.mark.timeout(60)

L3, L4 = "hz01/line3", "hz01/line4"
LINE_TOKENS = {"t0ken-of-line3": L3, "t0ken-of-line4": L4}
SHOP_TOKEN = "t0ken-of-the-shop"
SHOP = {"Authorization": f"Bearer {SHOP_TOKEN}"}


def catalog(*skus: str) -> dict[str, Any]:
    return {
        "kind": "catalog",
        "version": "1",
        "materials": [],
        "routings": [],
        "skus": [{"sku": sku, "routing": "R-1"} for sku in skus],
    }


def order(order_id: str, *skus: str, revision: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "revision": revision,
        "ship_by": "2026-11-12T10:00:00+00:00",
        "lines": [{"sku": sku, "qty": 1} for sku in skus],
        **extra,
    }


def completed(seq: int, gateway_id: str, order_id: str) -> tuple[Envelope, str]:
    d = {
        "v": 1, "gateway_id": gateway_id, "seq": seq, "event_id": f"{gateway_id}:{seq}",
        "ts": "2026-11-11T02:00:00.000000+00:00", "type": "order.completed",
        "order_id": order_id, "data": {},
    }  # fmt: skip
    return Envelope.model_validate(d), json.dumps(d)


@pytest.fixture
async def office(store: Store) -> AsyncIterator[str]:
    await store.put_masterdata(L3, "catalog", catalog("MUG", "TEE"))
    await store.put_masterdata(L4, "catalog", catalog("MUG"))
    routes = feed_routes(store, Ledger(store, [L3, L4]), {SHOP_TOKEN: "shop-a"}, now)
    app = http_app(store, LINE_TOKENS, extra_routes=routes)
    async with serve_http(app, "127.0.0.1", 0) as url:
        yield url


async def _post(url: str, body: Any, params: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers=SHOP) as client:
        return await client.post("/v1/orders", json=body, params=params)


async def _line_orders(store: Store, gateway_id: str) -> list[dict[str, Any]]:
    docs, _ = await store.orders_after(gateway_id, 0, limit=1000)
    return docs


def test_a_line_is_chosen_by_catalog_then_least_load_then_name() -> None:
    cats = {L3: frozenset({"MUG", "TEE"}), L4: frozenset({"MUG"})}
    assert choose_line({"TEE"}, [L3, L4], cats, {L3: 9}) == Choice(L3)
    assert choose_line({"MUG"}, [L3, L4], cats, {L3: 1}) == Choice(L4)
    assert choose_line({"MUG"}, [L3, L4], cats, {L3: 1, L4: 1}) == Choice(L3)
    assert choose_line({"CAP"}, [L3, L4], cats, {}).gateway_id is None
    assert choose_line({"TEE"}, [L3, L4], cats, {}, named=L4) == Choice(
        None, f"line {L4} cannot make TEE"
    )
    assert choose_line({"MUG"}, [L3, L4], cats, {}, named="hz01/line9").gateway_id is None


async def test_orders_go_to_a_line_that_can_make_them_with_the_least_open_load(
    office: str, store: Store
) -> None:
    taken: list[str] = []
    for order_id, skus in (("SO-1", ("MUG", "TEE")), ("SO-2", ("MUG",)), ("SO-3", ("MUG",))):
        answer = await _post(office, order(order_id, *skus))
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == "taken"
        taken.append(answer.json()["line"])
    # SO-1: only line3 makes TEE; SO-2: line4 has no load; SO-3: 1 and 1, line3 by name.
    assert taken == [L3, L4, L3]
    answer = await _post(office, order("SO-4", "MUG"))
    assert answer.json()["line"] == L4  # 2 open on line3, 1 on line4
    answer = await _post(office, order("SO-5", "MUG"))
    assert answer.json()["line"] == L3  # 2 and 2: line3 by name
    # line3 reports SO-1 and SO-3 completed: 1 open there, 2 on line4 (3 and 2 if the
    # completions were not read).
    await store.add_events(L3, [completed(1, L3, "SO-1"), completed(2, L3, "SO-3")], "http")
    answer = await _post(office, order("SO-6", "MUG"))
    assert answer.json()["line"] == L3
    assert [d["order_id"] for d in await _line_orders(store, L3)] == [
        "SO-1",
        "SO-3",
        "SO-5",
        "SO-6",
    ]
    assert [d["order_id"] for d in await _line_orders(store, L4)] == ["SO-2", "SO-4"]


async def test_the_same_revision_is_taken_once_and_a_new_one_follows_the_order(
    office: str, store: Store
) -> None:
    first = await _post(office, order("SO-7", "MUG", channel="web"))
    line = first.json()["line"]
    again = await _post(office, order("SO-7", "MUG", channel="web"))
    assert again.status_code == 200
    assert again.json() == {
        "result": "already taken",
        "order_id": "SO-7",
        "revision": 1,
        "line": line,
    }
    other = await _post(office, order("SO-7", "MUG", channel="app"))
    assert other.status_code == 409
    assert other.json()["result"] == "conflict" and "other content" in other.json()["reason"]
    [rejection] = [r for r in await store.rejections() if "SO-7" in r.reason]
    assert '"app"' in rejection.payload  # what was refused is recorded
    # Fill the other line's load: revision 2 still goes where the order is.
    other_line = L4 if line == L3 else L3
    for n in range(3):
        await _post(office, order(f"X-{n}", "MUG", line=other_line))
    third = await _post(office, order("SO-7", "MUG", "MUG", revision=3))
    assert (third.status_code, third.json()["line"]) == (200, line)
    stale = await _post(office, order("SO-7", "MUG", revision=2))
    assert stale.status_code == 409 and "older than revision 3" in stale.json()["reason"]
    assert [(d["order_id"], d["revision"]) for d in await _line_orders(store, line)] == [
        ("SO-7", 1),
        ("SO-7", 3),
    ]
    assert store.tally.rejected[RejectKind.CONFLICT] == 2  # the other content, the stale one


async def test_a_batch_takes_the_good_orders_and_names_each_bad_one(
    office: str, store: Store
) -> None:
    bad_qty = order("SO-21", "MUG")
    bad_qty["lines"][0]["qty"] = 0
    answer = await _post(office, [order("SO-20", "TEE"), bad_qty, order("SO-22", "CAP"), 7])
    assert answer.status_code == 422
    results = answer.json()["orders"]
    assert [r["result"] for r in results] == ["taken", "invalid", "unroutable", "invalid"]
    assert results[0]["line"] == L3
    assert results[1]["order_id"] == "SO-21" and "lines.0.qty" in results[1]["reason"]
    assert results[2]["reason"] == "no line can make all of CAP"
    assert [d["order_id"] for d in await _line_orders(store, L3)] == ["SO-20"]
    assert any("SO-21" in r.reason and "lines.0.qty" in r.reason for r in await store.rejections())
    # The unroutable order is kept: once line4's catalog has CAP, sending it again routes it.
    await store.put_masterdata(L4, "catalog", catalog("MUG", "CAP"))
    again = await _post(office, order("SO-22", "CAP"))
    assert (again.status_code, again.json()["result"], again.json()["line"]) == (200, "taken", L4)


async def test_the_shop_may_name_the_line(office: str, store: Store) -> None:
    named = await _post(office, order("SO-30", "MUG", line=L4))
    assert named.json()["line"] == L4
    # The routing hint is the office's, not the line's: the line gets the order without it.
    assert await _line_orders(store, L4) == [order("SO-30", "MUG")]
    by_query = await _post(office, order("SO-31", "TEE"), params={"line": L4})
    assert by_query.status_code == 422
    assert by_query.json()["reason"] == f"line {L4} cannot make TEE"
    unknown = await _post(office, order("SO-32", "MUG", line="hz01/line9"))
    assert unknown.json() == {
        "result": "unroutable", "order_id": "SO-32", "revision": 1,
        "reason": "no line hz01/line9 at this office",
    }  # fmt: skip


async def test_only_a_shops_token_posts_orders_and_bad_bodies_are_refused(office: str) -> None:
    async with httpx.AsyncClient(base_url=office) as client:
        bare = await client.post("/v1/orders", json=order("SO-40", "MUG"))
        as_line = await client.post(
            "/v1/orders",
            json=order("SO-40", "MUG"),
            headers={"Authorization": "Bearer t0ken-of-line3"},
        )
        broken = await client.post("/v1/orders", content=b"{nope", headers=SHOP)
        empty = await client.post("/v1/orders", json=[], headers=SHOP)
        cancel = await client.post("/v1/orders/SO-40/cancel", json={"reason": "gone"}, headers=SHOP)
    assert (bare.status_code, as_line.status_code) == (401, 401)
    # No broker here: the contract's HTTP orders feed has no cancel form.
    assert cancel.status_code == 422 and "MQTT only" in cancel.json()["error"]
    assert broken.status_code == 400 and broken.json()["error"].startswith("not JSON")
    assert empty.status_code == 400


async def _until(pred: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


async def test_the_gateways_http_link_pulls_the_orders_routed_to_its_line(office: str) -> None:
    sent = [
        order("SO-50", "TEE", priority=7),
        order("SO-51", "TEE", destination={"city": "Hangzhou"}),
    ]
    assert (await _post(office, sent)).status_code == 200
    site, line = L3.split("/")
    settings = HttpSettings(
        base_url=office, site=site, line=line, token="t0ken-of-line3", batch_max=50,
        timeout_s=5.0, poll_s=0.05, masterdata_poll_s=0.1, backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )  # fmt: skip
    link = HttpLink(settings, MemoryLinkState())
    sink = ListSink()
    task = asyncio.create_task(link.run(sink, ListOutbox()))
    try:
        await _until(lambda: any(m.topic == "in/orders" for m in sink.messages))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert link.refused is None
    pulled = next(m for m in sink.messages if m.topic == "in/orders")
    assert json.loads(pulled.payload) == sent
