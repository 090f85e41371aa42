"""Master data per line over a real mosquitto and a real store (SQLite and PostgreSQL):
the ERP's catalog and stock kept as each line's document and published retained, so a line
that connects later still gets them; idempotent by digest; the orders waiting for a line
routed again when a catalog makes them; routing by the lines' ``order.progress`` forecasts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cloud_sync.contract import Envelope
from office.access import Gate, Principal, Role
from office.app import serve_http
from office.feed import Ledger, feed_routes
from office.feed.http import unroutable_routes
from office.feed.masterdata import publish_masterdata
from office.feed.publish import Publisher, PublisherSettings
from office.receive.http import http_app
from office.store import RejectKind, Store, schema
from tests.conftest import Mosquitto
from tests.office.conftest import now
from tests.office.test_feed import (
    L3,
    L4,
    LINE_TOKENS,
    SHOP,
    SHOP_TOKEN,
    _line_orders,
    catalog,
    completed,
    order,
)
from tests.office.test_feed_mqtt import _subscriber, _until

pytestmark = pytest.mark.timeout(90)

READER = {"Authorization": "Bearer t0ken-of-the-bi-script"}
TOPIC = "linegate/v1/hz01/{}/in/masterdata/{}"
STOCK = {
    "kind": "stock",
    "as_of": "2026-11-11T01:00:00+08:00",
    "items": [{"material": "BLANK-MUG", "qty": 40, "lot": "L-7"}],
}


class Office:
    def __init__(self, url: str, ledger: Ledger, publisher: Publisher) -> None:
        self.url, self.ledger, self.publisher = url, ledger, publisher

    async def put(self, kind: str, doc: Any, **params: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, headers=SHOP) as client:
            return await client.put(f"/v1/masterdata/{kind}", json=doc, params=params)

    async def order(self, body: Any, **params: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, headers=SHOP) as client:
            return await client.post("/v1/orders", json=body, params=params)

    async def unroutable(self, headers: dict[str, str] = READER) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, headers=headers) as client:
            return await client.get("/v1/orders/unroutable")


@pytest.fixture
async def office(mosquitto: Mosquitto, store: Store) -> AsyncIterator[Office]:
    await store.put_masterdata(L3, "catalog", catalog("MUG", "TEE"))
    await store.put_masterdata(L4, "catalog", catalog("MUG"))
    ledger = Ledger(store, [L3, L4], publish=True)
    settings = PublisherSettings(
        host=mosquitto.host, port=mosquitto.port, client_id="office-feed", retry_s=0.1
    )
    publisher = Publisher(settings, ledger, now)
    gate = Gate(store, {READER["Authorization"][7:]: Principal("bi", Role.READER)}, now)
    routes = unroutable_routes(ledger, gate) + feed_routes(
        store, ledger, {SHOP_TOKEN: "shop-a"}, now
    )
    task = asyncio.create_task(publisher.run())
    try:
        async with serve_http(
            http_app(store, LINE_TOKENS, extra_routes=routes), "127.0.0.1", 0
        ) as url:
            yield Office(url, ledger, publisher)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _outbox_rows(store: Store) -> int:
    async with store.transaction() as conn:
        return int(await conn.scalar(select(func.count()).select_from(schema.feed_outbox)) or 0)


async def test_a_catalog_is_retained_for_a_line_that_connects_later(
    mosquitto: Mosquitto, office: Office, store: Store
) -> None:
    new = catalog("MUG", "TEE", "CAP")
    answer = await office.put("catalog", new)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "kind": "catalog",
        "lines": [{"line": L3, "result": "published"}, {"line": L4, "result": "published"}],
        "rerouted": [],
    }
    await _until(lambda: office.publisher.published == 2)
    # Only now does a line's client connect: the broker hands it the retained documents.
    with _subscriber(mosquitto) as late:
        await _until(lambda: len(late.received()) >= 2)
        assert sorted(late.received()) == [
            (TOPIC.format("line3", "catalog"), new),
            (TOPIC.format("line4", "catalog"), new),
        ]
    # The HTTP lines pull the same document.
    assert await store.masterdata(L4) == [new]
    # The same document again: nothing new kept or published.
    rows = await _outbox_rows(store)
    again = await office.put("catalog", new, line=L3)
    assert again.json()["lines"] == [{"line": L3, "result": "unchanged"}]
    assert await _outbox_rows(store) == rows


async def test_stock_is_a_lines_and_a_bad_document_is_refused_with_reasons(
    mosquitto: Mosquitto, office: Office, store: Store
) -> None:
    assert (await office.put("stock", STOCK)).status_code == 422  # no line named
    assert (await office.put("stock", STOCK, line="hz01/line9")).status_code == 422
    bad = {"kind": "stock", "as_of": "yesterday", "items": [{"material": "X", "qty": -1}]}
    refused = await office.put("stock", bad, line=L3)
    assert refused.status_code == 422
    reasons = refused.json()["reasons"]
    assert any(r.startswith("as_of:") for r in reasons)
    assert any(r.startswith("items.0.qty:") for r in reasons)
    assert store.tally.rejected[RejectKind.MALFORMED] == 1
    wrong_kind = await office.put("stock", catalog("MUG"), line=L3)
    assert wrong_kind.status_code == 422
    assert (await office.put("catalog", STOCK)).status_code == 422
    async with httpx.AsyncClient(base_url=office.url) as anonymous:
        assert (await anonymous.put("/v1/masterdata/stock", json=STOCK)).status_code == 401
    taken = await office.put("stock", STOCK, line=L3)
    assert taken.json()["lines"] == [{"line": L3, "result": "published"}]
    with _subscriber(mosquitto) as late:
        await _until(lambda: len(late.received()) >= 1)
        assert late.received() == [(TOPIC.format("line3", "stock"), STOCK)]


async def test_with_the_broker_away_master_data_waits_then_goes_retained(
    mosquitto: Mosquitto, office: Office, store: Store
) -> None:
    mosquitto.stop()
    # As the webhooks' WMS end does it: in its own transaction.
    async with store.transaction() as conn:
        assert await publish_masterdata(conn, L4, STOCK, now())
        assert not await publish_masterdata(conn, L4, json.loads(json.dumps(STOCK)), now())
    office.ledger.wake.set()
    await asyncio.sleep(0.5)
    [waiting] = await office.ledger.unpublished()
    assert (waiting.topic, waiting.retain) == (TOPIC.format("line4", "stock"), True)
    mosquitto.start()
    await _until(lambda: office.publisher.published == 1, within=30)
    with _subscriber(mosquitto) as late:
        await _until(lambda: len(late.received()) >= 1)
        assert late.received() == [(TOPIC.format("line4", "stock"), STOCK)]
    assert await office.ledger.unpublished() == []


async def test_orders_waiting_for_a_line_are_listed_and_routed_when_a_catalog_comes(
    office: Office, store: Store
) -> None:
    assert (await office.order(order("SO-80", "CAP"))).status_code == 422
    assert (await office.order(order("SO-81", "CAP"), line=L3)).status_code == 422
    assert (await office.unroutable({})).status_code == 401
    listed = (await office.unroutable()).json()["orders"]
    assert [(o["order_id"], o["problem"], o["line"]) for o in listed] == [
        ("SO-80", "no line can make all of CAP", None),
        ("SO-81", f"line {L3} cannot make CAP", L3),
    ]
    answer = await office.put("catalog", catalog("MUG", "CAP"), line=L4)
    assert answer.json()["rerouted"] == [
        {"result": "taken", "order_id": "SO-80", "revision": 1, "line": L4}
    ]
    # SO-81 was named for line3, which still cannot make it: it waits, honoured.
    listed = (await office.unroutable()).json()["orders"]
    assert [(o["order_id"], o["problem"]) for o in listed] == [
        ("SO-81", f"line {L3} cannot make CAP")
    ]
    assert [d["order_id"] for d in await _line_orders(store, L4)] == ["SO-80"]
    await _until(lambda: office.publisher.published == 2)  # the catalog and SO-80
    # Sent again, the moved order is already taken where it went.
    again = await office.order(order("SO-80", "CAP"))
    assert again.json() == {"result": "already taken", "order_id": "SO-80", "revision": 1,
                            "line": L4}  # fmt: skip


def _progress(
    seq: int, gateway_id: str, order_id: str, predicted: str | None
) -> tuple[Envelope, str]:
    d = (
        {
            "v": 1, "gateway_id": gateway_id, "seq": seq, "event_id": f"{gateway_id}:{seq}",
            "ts": "2026-11-11T02:00:00+00:00", "type": "order.progress", "order_id": order_id,
            "data": {"stage": "queued", "predicted_completion": predicted},
        }
    )  # fmt: skip
    return Envelope.model_validate(d), json.dumps(d)


async def test_an_order_goes_to_the_line_its_forecasts_free_soonest(
    office: Office, store: Store
) -> None:
    for body in (order("SO-1", "MUG"), order("SO-2", "MUG"), order("SO-3", "MUG")):
        await office.order(body)
    placed = {d["order_id"]: g for g in (L3, L4) for d in await _line_orders(store, g)}
    assert placed == {"SO-1": L3, "SO-2": L4, "SO-3": L3}  # no forecasts: by count, then name
    # line3: two open orders, the later done at 10:00; line4: one, done at 11:00.
    await store.add_events(L3, [
        _progress(1, L3, "SO-1", "2026-11-11T09:00:00+00:00"),
        _progress(2, L3, "SO-3", "2026-11-11T12:00:00+00:00"),
        _progress(3, L3, "SO-3", "2026-11-11T10:00:00+00:00"),  # the latest word counts
    ], "mqtt")  # fmt: skip
    await store.add_events(L4, [_progress(1, L4, "SO-2", "2026-11-11T11:00:00+00:00")], "mqtt")
    # More orders, but free sooner: line3.
    assert (await office.order(order("SO-4", "MUG"))).json()["line"] == L3
    # SO-4 has no forecast yet, so line3's end is unknown: by count (3 to 1), line4.
    assert (await office.order(order("SO-5", "MUG"))).json()["line"] == L4
    # line4 completes SO-2; SO-5 is forecast at 12:00, SO-4 on line3 at 08:00: line3 is
    # free at 10:00, line4 at 12:00 (by count it would be line4, 1 to 3).
    done = completed(2, L4, "SO-2")
    await store.add_events(L4, [done, _progress(3, L4, "SO-5", "2026-11-11T12:00:00Z")], "mqtt")
    await store.add_events(L3, [_progress(4, L3, "SO-4", "2026-11-11T08:00:00+00:00")], "mqtt")
    assert (await office.order(order("SO-6", "MUG"))).json()["line"] == L3
