"""The shop's and the WMS's side of the webhooks, for real (uvicorn on loopback, SQLite and
a real PostgreSQL): a shop's hook gets the completions, rejections (with their errors) and
cancellations of the orders that shop sent, never another shop's nor the line's own; an
order no line answered in time is reported once; the WMS's stock goes in through
``POST /v1/wms/stock`` and out as the line's stock document; what was given up is listed
to a reader. ``[[webhooks]]`` and ``[[wms]]`` in office.toml."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloud_sync.contract import Order
from office.access import Gate, Principal, Role
from office.app import serve_http
from office.config import ConfigError, load_config
from office.feed import Ledger
from office.hooks import HookProjector, Sender, UnansweredWatch, hook_routes, hook_specs
from office.receive.http import http_app
from office.store import Store, schema
from tests.office.hooks_parts import L3, L4, Clock, Receiver, drain, event, hook, receiving
from tests.office.test_config_cli import GOOD, _write

pytestmark = pytest.mark.timeout(60)

WMS_TOKEN, READER_TOKEN = "wms-t0ken", "reader-t0ken"
CATALOG = {"kind": "catalog", "version": "1", "materials": [], "routings": [],
           "skus": [{"sku": "TEE", "routing": "R-1"}]}  # fmt: skip
STOCK = {
    "kind": "stock", "as_of": "2026-11-11T01:30:00+00:00",
    "items": [{"material": "CARTON-M", "lot": "L-7", "qty": 40, "expires": "2027-06-30"}],
}  # fmt: skip


def _order(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "revision": 1, "ship_by": "2026-11-12T10:00:00+00:00",
            "lines": [{"sku": "TEE", "qty": 1}]}  # fmt: skip


async def _feed(store: Store, clock: Clock, shop: str, *order_ids: str) -> None:
    ledger = Ledger(store, [L3, L4])
    for order_id in order_ids:
        doc = _order(order_id)
        outcome = await ledger.take(shop, Order.model_validate(doc), doc, L3, clock())
        assert outcome.line == L3, outcome


async def test_a_shop_hears_of_its_own_orders_only(store_url: str) -> None:
    clock = Clock()
    async with receiving(Receiver()) as a, receiving(Receiver()) as b:
        types = {"order.completed", "order.rejected", "order.cancelled"}
        hooks = [hook(a.url, types, name="shop-a", shop="shop-a"),
                 hook(b.url, types, name="shop-b", shop="shop-b")]  # fmt: skip
        store = await Store.open(store_url, clock, projectors=[HookProjector(hooks, clock)])
        try:
            await store.put_masterdata(L3, "catalog", CATALOG)
            await _feed(store, clock, "shop-a", "SO-A1", "SO-A2")
            await _feed(store, clock, "shop-b", "SO-B1")
            errors = [{"code": "UNKNOWN_SKU", "field": "lines[0].sku", "message": "TEE?"}]
            parcel: dict[str, Any] = {
                "units": ["U-1"], "weight_g": 412, "label_id": "LB-1",
                "containers": [{"material": "POLYBAG-L", "qty": 1}],
            }  # fmt: skip
            await store.add_events(L3, [
                event(1, "order.accepted", order_id="SO-A1"),
                event(2, "order.completed", order_id="SO-A1", **parcel),
                event(3, "order.rejected", order_id="SO-B1", errors=errors, raw_ref="r/1"),
                event(4, "order.completed", order_id="SO-LINE-OWN"),  # not fed by the office
                event(5, "order.cancelled", order_id="SO-A2", reason="customer"),
                event(6, "order.rejected", order_id=None, errors=errors),  # no order id read
            ], "mqtt")  # fmt: skip
            sender = Sender(store, hooks, clock)
            async with httpx.AsyncClient() as client:
                assert await drain(lambda: sender.send_due(client)) == 3
        finally:
            await store.close()
    assert [(r.event, r.body["order_id"]) for r in a.got] == [
        ("order.completed", "SO-A1"), ("order.cancelled", "SO-A2")
    ]  # fmt: skip
    assert a.got[0].body["data"] == parcel
    assert [(r.event, r.body["order_id"], r.body["data"]["errors"]) for r in b.got] == [
        ("order.rejected", "SO-B1", errors)
    ]


@asynccontextmanager
async def _office(store: Store, clock: Clock) -> AsyncIterator[str]:
    gate = Gate(
        store,
        {WMS_TOKEN: Principal("wms-a", Role.WMS), READER_TOKEN: Principal("ops", Role.READER)},
        clock,
    )
    routes = hook_routes(store, gate, [L3, L4], clock, publish=True)
    async with serve_http(http_app(store, {}, extra_routes=routes), "127.0.0.1", 0) as url:
        yield url


async def test_an_order_no_line_answers_is_reported_once(store_url: str) -> None:
    clock = Clock()
    async with receiving(Receiver()) as shop:
        hooks = [hook(shop.url, {"order.unanswered"}, name="shop-a", shop="shop-a")]
        store = await Store.open(store_url, clock, projectors=[HookProjector(hooks, clock)])
        try:
            await store.put_masterdata(L3, "catalog", CATALOG)
            watch = UnansweredWatch(store, hooks, clock, answer_within_s=600)
            await _feed(store, clock, "shop-a", "SO-1", "SO-2", "SO-3")
            await _feed(store, clock, "shop-b", "SO-4")
            await store.add_events(L3, [event(1, "order.accepted", order_id="SO-2"),
                                        event(2, "order.rejected", order_id="SO-3", errors=[])],
                                   "mqtt")  # fmt: skip
            clock.advance(599)
            assert await watch.check() == []
            clock.advance(2)
            found = await watch.check()
            assert [(u.order_id, u.shop) for u in found] == [("SO-1", "shop-a"), ("SO-4", "shop-b")]
            assert await watch.check() == []  # once
            clock.advance(3600)
            assert await watch.check() == []
            sender = Sender(store, hooks, clock)
            async with httpx.AsyncClient() as client:
                assert await drain(lambda: sender.send_due(client)) == 1
            async with _office(store, clock) as url, httpx.AsyncClient(base_url=url) as client:
                listed = await client.get(
                    "/v1/hooks/failed", headers={"Authorization": f"Bearer {READER_TOKEN}"}
                )
                refused = await client.get(
                    "/v1/hooks/failed", headers={"Authorization": f"Bearer {WMS_TOKEN}"}
                )
        finally:
            await store.close()
    assert [(r.event, r.body["order_id"], r.body["data"]["answer_within_s"]) for r in shop.got] == [
        ("order.unanswered", "SO-1", 600.0)
    ]
    assert listed.status_code == 200 and refused.status_code == 403
    assert {u["order_id"] for u in listed.json()["unanswered"]} == {"SO-1", "SO-4"}
    assert listed.json()["failed"] == []


async def test_the_wms_stock_becomes_the_lines_stock(store_url: str) -> None:
    clock = Clock()
    store = await Store.open(store_url, clock)
    wms = {"Authorization": f"Bearer {WMS_TOKEN}"}
    try:
        async with _office(store, clock) as url, httpx.AsyncClient(base_url=url) as client:
            good = await client.post("/v1/wms/stock", params={"line": L3}, json=STOCK, headers=wms)
            same = await client.post("/v1/wms/stock", params={"line": L3}, json=STOCK, headers=wms)
            bad_doc = {**STOCK, "items": [{"material": "X", "qty": -1}]}
            bad = await client.post("/v1/wms/stock", params={"line": L3}, json=bad_doc, headers=wms)
            unknown = await client.post(
                "/v1/wms/stock", params={"line": "hz01/line9"}, json=STOCK, headers=wms
            )
            anonymous = await client.post("/v1/wms/stock", params={"line": L3}, json=STOCK)
            reader = await client.post(
                "/v1/wms/stock", params={"line": L3}, json=STOCK,
                headers={"Authorization": f"Bearer {READER_TOKEN}"},
            )  # fmt: skip
        assert await store.masterdata(L3) == [STOCK]
        async with store.transaction() as conn:
            topics = (await conn.scalars(select(schema.feed_outbox.c.topic))).all()
            a = schema.audit
            audited = (
                await conn.execute(
                    select(a.c.actor, a.c.action, a.c.target, a.c.outcome).where(
                        a.c.action == "wms.stock"
                    )
                )
            ).all()
        rejections = await store.rejections()
    finally:
        await store.close()
    assert good.status_code == 200 and good.json()["result"] == "published"
    assert same.json()["result"] == "unchanged"
    assert topics == ["linegate/v1/hz01/line3/in/masterdata/stock"]  # once, retained
    assert bad.status_code == 422
    assert any(r.startswith("items.0.qty") for r in bad.json()["reasons"])
    assert unknown.status_code == 422 and "hz01/line9" in unknown.json()["reasons"][0]
    assert (anonymous.status_code, reader.status_code) == (401, 403)
    assert [r.via for r in rejections] == ["wms", "wms"]
    stock_in = ("wms-a", "wms.stock", f"{L3} as_of {STOCK['as_of']}", "ok")
    assert [tuple(row) for row in audited] == [stock_in, stock_in]


HOOKS = """
[[shops]]
name = "tmall"
token_file = "tmall.token"

[[wms]]
name = "wms-a"
token_file = "wms.token"

[[webhooks]]
name = "wms-a"
url = "https://wms.example/linegate"
secret_file = "wms-hook.secret"
events = ["material.requested"]
lines = ["hz01/line3"]
timeout_s = 5

[[webhooks]]
name = "tmall"
url = "http://shop.example:8080/hooks"
secret_file = "tmall-hook.secret"
events = ["order.completed", "order.rejected", "order.cancelled", "order.unanswered"]
shop = "tmall"

[feed]
answer_within_s = 900
"""
SECRETS = {"tmall.token": "s1", "wms.token": "w1", "wms-hook.secret": "k1\n",
           "tmall-hook.secret": "k2"}  # fmt: skip


def test_webhooks_read_their_secrets(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD + HOOKS, **SECRETS))
    specs = {s.name: s for s in hook_specs(config.webhooks, config.webhook_secrets())}
    assert specs["wms-a"].secret == "k1" and specs["wms-a"].lines == frozenset({L3})
    assert specs["wms-a"].timeout_s == 5 and specs["tmall"].shop == "tmall"
    assert specs["tmall"].lines is None
    assert config.wms_tokens() == {"w1": "wms-a"}
    assert config.feed.answer_within_s == 900
    assert load_config(_write(tmp_path, GOOD)).feed.answer_within_s == 600
    assert specs["tmall"].retry_after(1) == 5 and specs["tmall"].retry_after(3) == 20
    assert specs["tmall"].retry_after(30) == 3600  # the cap


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('shop = "tmall"', 'shop = "jd"'), "webhook tmall: shop jd is not in [[shops]]"),
        (
            ('lines = ["hz01/line3"]', 'lines = ["hz01/line9"]'),
            "line hz01/line9 is not in [[lines]]",
        ),
        (("https://wms.example/linegate", "ftp://wms.example"), "must be http(s)://"),
        (('events = ["material.requested"]', "events = []"), "events"),
        (('name = "tmall"\nurl', 'name = "wms-a"\nurl'), "webhook wms-a listed twice"),
    ],
)
def test_a_wrong_webhook_is_named(tmp_path: Path, change: tuple[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_config(_write(tmp_path, GOOD + HOOKS.replace(*change), **SECRETS))


def test_a_wms_needs_a_token_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WMS wms-a has the token of shop tmall"):
        load_config(_write(tmp_path, GOOD + HOOKS, **{**SECRETS, "wms.token": "s1"}))
