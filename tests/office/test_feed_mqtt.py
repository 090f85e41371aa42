"""The feed over MQTT, against a real mosquitto: a routed order is published QoS 1 to
``linegate/v1/{site}/{line}/in/orders`` after its commit, a cancel to ``in/cancel``; with
the broker away the order waits in the feed's outbox and goes once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from office.app import serve_http
from office.feed import Ledger, feed_routes
from office.feed.publish import Publisher, PublisherSettings
from office.receive.http import http_app
from office.store import Store
from tests.conftest import Mosquitto
from tests.office.conftest import now
from tests.office.test_feed import L3, L4, LINE_TOKENS, SHOP, SHOP_TOKEN, catalog, order

pytestmark = pytest.mark.timeout(60)


class _Subscriber:
    """A line's broker client as a plain subscriber: what arrives on ``in/#``."""

    def __init__(self, broker: Mosquitto) -> None:
        self.got: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="line-listener")
        self._client.on_connect = lambda c, *_: c.subscribe("linegate/v1/+/+/in/#", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._subscribed.wait(5)

    def _message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((message.topic, json.loads(message.payload)))

    def received(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self.got)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextlib.contextmanager
def _subscriber(broker: Mosquitto) -> Iterator[_Subscriber]:
    sub = _Subscriber(broker)
    try:
        yield sub
    finally:
        sub.close()


async def _until(pred: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


@pytest.fixture
async def feed(mosquitto: Mosquitto, store: Store) -> AsyncIterator[tuple[str, Ledger, Publisher]]:
    await store.put_masterdata(L3, "catalog", catalog("MUG", "TEE"))
    await store.put_masterdata(L4, "catalog", catalog("MUG"))
    ledger = Ledger(store, [L3, L4], publish=True)
    settings = PublisherSettings(
        host=mosquitto.host, port=mosquitto.port, client_id="office-feed", retry_s=0.1
    )
    publisher = Publisher(settings, ledger, now)
    routes = feed_routes(store, ledger, {SHOP_TOKEN: "shop-a"}, now)
    task = asyncio.create_task(publisher.run())
    try:
        async with serve_http(
            http_app(store, LINE_TOKENS, extra_routes=routes), "127.0.0.1", 0
        ) as url:
            yield url, ledger, publisher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _post(url: str, path: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers=SHOP) as client:
        return await client.post(path, json=body)


async def test_a_routed_order_and_its_cancel_are_published_to_its_line(
    mosquitto: Mosquitto, feed: tuple[str, Ledger, Publisher]
) -> None:
    url, ledger, publisher = feed
    with _subscriber(mosquitto) as sub:
        sent = order("SO-60", "TEE", channel="web")
        assert (await _post(url, "/v1/orders", sent)).json()["line"] == L3
        cancel = await _post(url, "/v1/orders/SO-60/cancel", {"reason": "customer asked"})
        assert cancel.json() == {"result": "cancel sent", "order_id": "SO-60", "line": L3}
        await _until(lambda: len(sub.received()) >= 2)
        assert sub.received() == [
            ("linegate/v1/hz01/line3/in/orders", sent),
            ("linegate/v1/hz01/line3/in/cancel", {"order_id": "SO-60", "reason": "customer asked"}),
        ]
    await _until(lambda: publisher.published == 2)
    assert await ledger.unpublished() == []
    unknown = await _post(url, "/v1/orders/SO-99/cancel", {"reason": "?"})
    assert unknown.status_code == 404


async def test_with_the_broker_away_the_order_waits_and_goes_once_it_is_back(
    mosquitto: Mosquitto, feed: tuple[str, Ledger, Publisher]
) -> None:
    url, ledger, publisher = feed
    mosquitto.stop()
    sent = order("SO-70", "MUG")
    answer = await _post(url, "/v1/orders", sent)
    assert answer.status_code == 200  # taken: the line's feed has it, MQTT or not
    await asyncio.sleep(0.5)
    [waiting] = await ledger.unpublished()
    assert waiting.topic == f"linegate/v1/hz01/{answer.json()['line'].split('/')[1]}/in/orders"
    mosquitto.start()
    with _subscriber(mosquitto) as sub:
        await _until(lambda: len(sub.received()) >= 1, within=20)
        assert sub.received() == [(waiting.topic, sent)]
    assert await ledger.unpublished() == []
    assert publisher.published == 1
