"""Customer service's lookup over real HTTP (uvicorn on loopback) on SQLite and PostgreSQL:
the JSON, the refusals, the shops' POST /v1/orders still taken on the same path, and the
pages in a real Chromium in Chinese and English, on a phone's width."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from cloud_sync.contract import Envelope
from office.access import Gate, Principal, Role, User, access_routes, hash_password
from office.answer.orders_http import order_routes
from office.answer.orders_view import order_placed, project_orders
from office.app import serve_http
from office.feed import Ledger, feed_routes
from office.i18n import Catalog
from office.receive.http import http_app
from office.store import Store
from office.web import Pages
from tests.office.conftest import now
from tests.screens.conftest import _FLAGS, chromium

pytestmark = pytest.mark.timeout(90)

L3 = "hz01/line3"
READER, SHOP = "bi-t0ken", "shop-t0ken"
PASSWORD = "correct horse battery"
REF = "TB2026111100042"


def ev(seq: int, type_: str, data: dict[str, Any], order_id: str = "SO-1") -> tuple[Envelope, str]:
    d = {
        "v": 1, "gateway_id": L3, "seq": seq, "event_id": f"{L3}:{seq}",
        "ts": f"2026-11-11T10:{seq:02d}:00.000+08:00", "type": type_,
        "order_id": order_id, "data": data,
    }  # fmt: skip
    return Envelope.model_validate(d), json.dumps(d)


@dataclass
class Office:
    url: str
    store: Store


@pytest.fixture
async def office(store_url: str) -> AsyncIterator[Office]:
    store = await Store.open(store_url, now, projectors=[project_orders])
    try:
        catalog = {"kind": "catalog", "version": "1", "materials": [], "routings": [],
                   "skus": [{"sku": "MUG", "routing": "R-1"}]}  # fmt: skip
        await store.put_masterdata(L3, "catalog", catalog)
        gate = Gate(
            store,
            {READER: Principal("bi", Role.READER), SHOP: Principal("tmall", Role.SHOP)},
            now,
        )
        pages = Pages(Catalog())
        users = {"wang": User("wang", Role.SERVICE, hash_password(PASSWORD))}
        routes = [
            *access_routes(store, gate, pages, users, now),
            *feed_routes(store, Ledger(store, [L3], placed=[order_placed]), {SHOP: "tmall"}, now),
            *order_routes(store, gate, pages, "Asia/Shanghai"),
        ]
        app = http_app(store, {}, 64 * 1024, routes)
        async with serve_http(app, "127.0.0.1", 0) as url:
            yield Office(url, store)
    finally:
        await store.close()


async def _feed_and_work(office: Office) -> None:
    order = {
        "order_id": "SO-1", "ship_by": "2026-11-11T18:00:00+08:00", "channel": "tmall",
        "customer_ref": REF, "lines": [{"sku": "MUG", "qty": 2}],
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=office.url) as client:
        taken = await client.post(
            "/v1/orders", json=order, headers={"Authorization": f"Bearer {SHOP}"}
        )
    assert (taken.status_code, taken.json()["line"]) == (200, L3)
    async with httpx.AsyncClient(base_url=office.url) as client:
        sent = await client.get("/v1/orders/SO-1", headers={"Authorization": f"Bearer {READER}"})
    # Fed, the line has said nothing yet: sent to its line, as far as the office knows.
    (waiting,) = sent.json()["on_lines"]
    assert (waiting["status"], waiting["line"], waiting["customer_ref"]) == ("sent", L3, REF)
    # ... and customer service finds it by the buyer's reference already (the feed told the
    # lookup in the order's transaction).
    async with httpx.AsyncClient(base_url=office.url) as client:
        by_ref = await client.get(
            "/v1/orders", params={"q": REF}, headers={"Authorization": f"Bearer {READER}"}
        )
    assert [h["order_id"] for h in by_ref.json()["orders"]] == ["SO-1"]
    await office.store.add_events(L3, [
        ev(1, "order.accepted", {"revision": 1, "units": 2, "ship_by": order["ship_by"]}),
        ev(2, "task.completed", {"task_id": "T-1", "serial": "SN-1", "op": "print",
           "station": "P1", "operator": "u1", "machine": None,
           "lots": [{"material": "BLANK-MUG", "lot": "B-7", "qty": 1}],
           "started_at": "2026-11-11T10:00:00+08:00", "completed_at": "2026-11-11T10:02:00+08:00"}),
        ev(3, "order.progress", {"stage": "in_process", "units_total": 2, "units_done": 0,
           "current": [{"serial": "SN-2", "op": "print", "station": "P1"}],
           "predicted_completion": "2026-11-11T19:30:00+08:00",
           "ship_by": "2026-11-11T18:00:00+08:00", "at_risk": True,
           "reasons": ["printer P1 is down"]}),
    ], "mqtt")  # fmt: skip


async def test_the_json_finds_an_order_by_reference_and_by_id(office: Office) -> None:
    await _feed_and_work(office)
    auth = {"Authorization": f"Bearer {READER}"}
    async with httpx.AsyncClient(base_url=office.url, headers=auth) as client:
        by_ref = await client.get("/v1/orders", params={"q": REF})
        by_prefix = await client.get("/v1/orders", params={"q": "SO-"})
        one = await client.get("/v1/orders/SO-1")
        unknown = await client.get("/v1/orders/SO-404")
        empty = await client.get("/v1/orders", params={"q": " "})
    assert by_ref.status_code == 200
    (hit,) = by_ref.json()["orders"]
    assert (hit["order_id"], hit["line"], hit["customer_ref"], hit["channel"]) == (
        "SO-1", L3, REF, "tmall",
    )  # fmt: skip
    assert (hit["status"], hit["stage"], hit["at_risk"]) == ("accepted", "in_process", True)
    assert datetime.fromisoformat(hit["predicted_completion"]) == datetime(
        2026, 11, 11, 11, 30, tzinfo=UTC
    )
    assert [h["order_id"] for h in by_prefix.json()["orders"]] == ["SO-1"]
    assert one.status_code == 200
    body = one.json()
    assert body["order_id"] == "SO-1"
    (on_line,) = body["on_lines"]
    assert on_line["line"] == L3
    assert on_line["units_ordered"] == 2
    assert on_line["progress"]["reasons"] == ["printer P1 is down"]
    assert on_line["progress"]["current"] == [{"serial": "SN-2", "op": "print", "station": "P1"}]
    (unit,) = on_line["units"]
    assert unit["serial"] == "SN-1"
    assert unit["steps"][0]["station"] == "P1"
    assert unit["lots"] == [{"material": "BLANK-MUG", "lot": "B-7", "qty": 1.0}]
    assert on_line["parcel"] is None
    assert [e["type"] for e in on_line["timeline"]] == [
        "order.accepted", "task.completed", "order.progress",
    ]  # fmt: skip
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "no line has reported order SO-404"
    assert empty.status_code == 400


async def test_refusals_no_token_and_a_shops_token(office: Office) -> None:
    async with httpx.AsyncClient(base_url=office.url) as client:
        bare = await client.get("/v1/orders/SO-1")
        bare_search = await client.get("/v1/orders", params={"q": "SO"})
        shop = await client.get("/v1/orders/SO-1", headers={"Authorization": f"Bearer {SHOP}"})
        wrong = await client.get("/v1/orders", headers={"Authorization": "Bearer nope"})
    assert (bare.status_code, bare_search.status_code, wrong.status_code) == (401, 401, 401)
    assert shop.status_code == 403


async def test_the_pages_in_chinese_and_english_on_a_phone(office: Office) -> None:
    await _feed_and_work(office)
    async with async_playwright() as p:
        browser: Browser = await p.chromium.launch(executable_path=chromium(), args=_FLAGS)
        try:
            context = await browser.new_context(
                locale="zh-CN", viewport={"width": 375, "height": 740}, is_mobile=True
            )
            page = await context.new_page()
            await page.goto(office.url + "/orders")
            assert page.url.startswith(office.url + "/login?next=")
            await page.fill("#name", "wang")
            await page.fill("#password", PASSWORD)
            await page.click("#sign-in")
            await page.wait_for_url(office.url + "/orders")
            assert await page.locator("h1").inner_text() == "订单查询"
            await page.fill("#q", REF)
            await page.click("#search")
            await page.wait_for_selector("tr.hit")
            row = await page.locator("tr.hit").inner_text()
            assert "SO-1" in row and REF in row and "生产中" in row
            # The ETA in the site's time zone (Asia/Shanghai, UTC+8): 19:30 as the line said.
            assert "2026-11-11 19:30" in row and "有延误风险" in row
            await page.click("tr.hit a")
            await page.wait_for_url(office.url + "/orders/SO-1")
            assert await page.locator("#stage").inner_text() == "生产中"
            assert await page.locator("#eta").inner_text() == "2026-11-11 19:30"
            assert await page.locator("#ship-by").inner_text() == "2026-11-11 18:00"
            assert await page.locator("#customer-ref").inner_text() == REF
            assert "printer P1 is down" in await page.locator("#at-risk").inner_text()
            await page.click("#unit-SN-1 summary")
            assert "B-7" in await page.locator("#unit-SN-1 .lots").inner_text()
            # The timeline in words (the contract's type beside them).
            timeline = await page.locator("ol.timeline li").all_inner_texts()
            assert [line.split(" ", 2)[2] for line in timeline] == [
                "产线已接单 (order.accepted)",
                "任务完成 (task.completed)",
                "进度更新 (order.progress)",
            ]
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page is wider than the phone: {width}px"
            await page.click("#lang-en")
            await page.wait_for_selector("#stage")
            assert await page.locator("#stage").inner_text() == "In production"
            assert await page.locator("#status").inner_text() == "Accepted"
            await page.goto(office.url + "/orders/SO-404")
            assert (
                "No line has reported this order" in await page.locator("#not-found").inner_text()
            )
            await page.goto(office.url + "/orders?q=NOTHING-LIKE-IT")
            assert "NOTHING-LIKE-IT" in await page.locator("#none").inner_text()
        finally:
            await browser.close()
