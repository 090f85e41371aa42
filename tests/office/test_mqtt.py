"""The office's MQTT end against a real Mosquitto, with the gateway's own MqttLink
publishing: every event stored once, the status kept, bad payloads recorded and
acknowledged, two office instances in one shared-subscription group splitting a stream,
and nothing acknowledged while the store is down."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.mqtt import MqttLink, MqttSettings
from office.receive.mqtt import MqttReceiver, MqttReceiverSettings
from office.store import Store
from tests.cloud_sync.doubles import ListOutbox, ListSink
from tests.conftest import Mosquitto
from tests.office.conftest import PostgreSQL, now
from tests.office.envelopes import GATEWAY, doc

pytestmark = pytest.mark.timeout(60)

SITE, LINE = GATEWAY.split("/")


def _receiver(broker: Mosquitto, store: Store, client_id: str = "office-1") -> MqttReceiver:
    settings = MqttReceiverSettings(
        host=broker.host, port=broker.port, client_id=client_id, max_payload_bytes=64 * 1024,
        backoff_initial_s=0.05, backoff_max_s=0.3,
    )  # fmt: skip
    return MqttReceiver(settings, store)


def _gateway(broker: Mosquitto) -> MqttLink:
    settings = MqttSettings(
        host=broker.host, port=broker.port, site=SITE, line=LINE, client_id="linegate-hz01-line3",
        backoff_initial_s=0.05, backoff_max_s=0.3,
    )  # fmt: skip
    return MqttLink(settings, lambda: datetime(2026, 11, 11, 2, 0, tzinfo=UTC))


@contextlib.asynccontextmanager
async def _running(*runs: Awaitable[None]) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(run) for run in runs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _until(pred: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


async def _stored(store: Store, count: int, within: float = 20.0) -> list[int]:
    async with asyncio.timeout(within):
        while len(seqs := await store.event_seqs(GATEWAY)) < count:  # noqa: ASYNC110 - polling the store
            await asyncio.sleep(0.05)
    return seqs


def _publish(broker: Mosquitto, *messages: tuple[str, bytes]) -> None:
    """Publish as a plain client would (QoS 1), waiting for each PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rogue")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_the_gateways_mqtt_link_publishes_into_the_office(
    mosquitto: Mosquitto, store: Store
) -> None:
    receiver = _receiver(mosquitto, store)
    outbox = ListOutbox()
    outbox.add(150)
    outbox.add(50, as_array=True)  # one message carrying an array of envelopes
    async with _running(receiver.run()):
        await _until(lambda: receiver.connected)
        async with _running(_gateway(mosquitto).run(ListSink(), outbox)):
            await _until(lambda: not outbox.pending)
            seqs = await _stored(store, 200)
            async with asyncio.timeout(10):
                while (line := await store.line(GATEWAY)) is None or line.status is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
    assert seqs == list(range(1, 201))
    assert line.held_through == 200
    assert line.status["state"] == "online"
    assert receiver.stored == 200


async def test_bad_payloads_are_recorded_acknowledged_and_the_rest_stored(
    mosquitto: Mosquitto, store: Store
) -> None:
    topic = f"linegate/v1/{SITE}/{LINE}/out/events"
    receiver = _receiver(mosquitto, store)
    async with _running(receiver.run()):
        await _until(lambda: receiver.connected)
        await asyncio.to_thread(
            _publish,
            mosquitto,
            (topic, b"{not json"),
            (topic, b"[" + b" " * 70_000 + b"]"),
            (topic, json.dumps(doc(1, "hz01/line4")).encode()),  # another line's id
            (topic, json.dumps([doc(1), doc(2, type_="robot.waved")]).encode()),
        )
        await _until(lambda: receiver.messages == 4)
    assert await store.event_seqs(GATEWAY) == [1, 2]  # the unknown type kept
    reasons = [r.reason for r in await store.rejections()]
    assert len(reasons) == 3
    assert reasons[0].startswith("not JSON")
    assert reasons[1] == "payload of 70002 bytes is over 65536"
    assert reasons[2] == f"envelope claims gateway hz01/line4, sent for {GATEWAY}"


async def test_a_conflict_over_mqtt_is_recorded_once_and_acknowledged(
    mosquitto: Mosquitto, store: Store
) -> None:
    topic = f"linegate/v1/{SITE}/{LINE}/out/events"
    other = json.dumps({**doc(1), "event_id": "hz01/line3:reseeded-1"}).encode()
    receiver = _receiver(mosquitto, store)
    async with _running(receiver.run()):
        await _until(lambda: receiver.connected)
        await asyncio.to_thread(
            _publish,
            mosquitto,
            (topic, json.dumps(doc(1)).encode()),
            (topic, json.dumps(doc(1)).encode()),  # a redelivery: a duplicate
            (topic, other),
            (topic, other),  # the same conflict again: one row, counted twice
        )
        await _until(lambda: receiver.messages == 4)
    assert (receiver.stored, receiver.duplicates, receiver.conflicts) == (1, 1, 2)
    body = await store.event_body(GATEWAY, 1)
    assert body is not None and json.loads(body) == doc(1)
    [rejection] = await store.rejections()
    assert (rejection.via, rejection.times) == ("mqtt", 2)
    assert rejection.reason == (
        "conflict: seq 1 already held with event_id hz01/line3:1; "
        "this one has event_id hz01/line3:reseeded-1"
    )


async def test_two_offices_in_one_group_split_a_stream_each_event_once(
    mosquitto: Mosquitto, pg_url: str
) -> None:
    one, two = await asyncio.gather(Store.open(pg_url, now), Store.open(pg_url, now))
    first, second = _receiver(mosquitto, one, "office-1"), _receiver(mosquitto, two, "office-2")
    outbox = ListOutbox()
    outbox.add(600)
    try:
        async with _running(first.run(), second.run()):
            await _until(lambda: first.connected and second.connected)
            async with _running(_gateway(mosquitto).run(ListSink(), outbox)):
                await _until(lambda: not outbox.pending)
                seqs = await _stored(one, 600)
                await _until(lambda: first.messages + second.messages >= 600)
        assert seqs == list(range(1, 601))
        assert first.stored > 0 and second.stored > 0  # both took a share
        assert first.stored + second.stored == 600
        line = await one.line(GATEWAY)
        assert line is not None and line.held_through == 600
    finally:
        await one.close()
        await two.close()


async def test_nothing_is_acknowledged_while_the_store_is_down(
    mosquitto: Mosquitto, postgres_own: PostgreSQL
) -> None:
    store = await Store.open(postgres_own.url(), now)
    topic = f"linegate/v1/{SITE}/{LINE}/out/events"
    receiver = _receiver(mosquitto, store)
    try:
        async with _running(receiver.run()):
            await _until(lambda: receiver.connected)
            await asyncio.to_thread(postgres_own.stop)
            await asyncio.to_thread(
                _publish, mosquitto, *((topic, json.dumps(doc(s)).encode()) for s in (1, 2, 3))
            )
            await asyncio.sleep(1.0)
            assert receiver.messages == 0  # held, unacknowledged, tried again
            await asyncio.to_thread(postgres_own.start)
            await _until(lambda: receiver.messages == 3)
        assert await store.event_seqs(GATEWAY) == [1, 2, 3]
    finally:
        await store.close()


async def test_a_backlog_queued_while_away_is_taken_on_return(
    mosquitto: Mosquitto, store: Store
) -> None:
    # Returning to its persistent session, the office gets what the broker queued for it
    # right after the CONNACK, ahead of the SUBACK, and more than its back-pressure reads
    # (batch_max 5: the socket is left unread at 10 waiting). It must store them from the
    # CONNACK on: waiting for a SUBACK stuck behind them would never end.
    settings = MqttReceiverSettings(
        host=mosquitto.host, port=mosquitto.port, client_id="office-resume", batch_max=5,
        backoff_initial_s=0.05, backoff_max_s=0.3,
    )  # fmt: skip
    away = MqttReceiver(settings, store)
    async with _running(away.run()):
        await _until(lambda: away.connected)
    topic = f"linegate/v1/{SITE}/{LINE}/out/events"
    _publish(mosquitto, *[(topic, json.dumps(doc(seq)).encode()) for seq in range(1, 301)])
    back = MqttReceiver(settings, store)
    async with _running(back.run()):
        seqs = await _stored(store, 300, within=30)
        await _until(lambda: back.connected)
    assert seqs == list(range(1, 301))
    assert back.stored == 300
