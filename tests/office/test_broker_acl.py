"""deploy/mosquitto/acl, as shipped, on a real Mosquitto with a password file: a gateway's
broker user publishes its own line's events (they reach the office's shared subscription
and are stored), while a publish on another line's topic is refused by the broker (MQTT 5
says why; nothing reaches the office), and a gateway reads only what is for its line."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.mqtt import MqttLink, MqttSettings
from office.receive.mqtt import MqttReceiver, MqttReceiverSettings
from office.store import Store
from tests.cloud_sync.doubles import ListOutbox, ListSink
from tests.conftest import Mosquitto, missing, mosquitto_binary
from tests.office.conftest import now
from tests.office.envelopes import doc

pytestmark = pytest.mark.timeout(60)

ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "acl"
PASSWORDS = {"linegate-office": "office-pw", "gw-hz01-line3": "line3-pw", "gw-hz01-line4": "l4"}
LINE3, LINE4 = "hz01/line3", "hz01/line4"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = mosquitto_binary()
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if i == 0 else []
        try:
            subprocess.run(
                ["mosquitto_passwd", *create, "-b", str(passwd), user, password],
                check=True, capture_output=True,
            )  # fmt: skip
        except FileNotFoundError:
            missing("mosquitto_passwd is not installed (apt-get install mosquitto)")
    # Started as root, mosquitto would switch to its own user, who cannot read these.
    listener = (
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {ACL}\nuser {getpass.getuser()}\n"
    )
    started = Mosquitto(binary, tmp_path, listener=listener)
    started.start()
    try:
        yield started
    finally:
        started.stop()


async def _until(pred: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _running(*runs: Awaitable[None]) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(run) for run in runs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _publish_v5(broker: Mosquitto, user: str, topic: str, payload: bytes) -> ReasonCode:
    """Publish at QoS 1 over MQTT 5 as ``user``; the PUBACK's reason code."""
    done = threading.Event()
    codes: list[ReasonCode] = []

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, code: ReasonCode, _p: object) -> None:
        codes.append(code)
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-v5", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, PASSWORDS[user])
    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1)
        assert done.wait(5), "no PUBACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def _receive(broker: Mosquitto, user: str, topic_filter: str, publish: Callable[[], None]) -> int:
    """Messages ``user`` gets on ``topic_filter`` while ``publish`` runs (and 0.5 s after)."""
    got = threading.Event()
    count = [0]
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        count[0] += 1
        got.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-reader")
    client.username_pw_set(user, PASSWORDS[user])
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.subscribe(topic_filter, qos=1)
        assert subscribed.wait(5)
        publish()
        got.wait(0.5)
    finally:
        client.disconnect()
        client.loop_stop()
    return count[0]


async def test_a_gateway_publishes_its_own_line_only(broker: Mosquitto, tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'office.sqlite3'}", now)
    office = MqttReceiver(
        MqttReceiverSettings(
            host=broker.host, port=broker.port, client_id="office-1",
            username="linegate-office", password=PASSWORDS["linegate-office"],
            backoff_initial_s=0.05, backoff_max_s=0.3,
        ),
        store,
    )  # fmt: skip
    gateway = MqttLink(
        MqttSettings(
            host=broker.host, port=broker.port, site="hz01", line="line3",
            client_id="linegate-hz01-line3", username="gw-hz01-line3",
            password=PASSWORDS["gw-hz01-line3"], backoff_initial_s=0.05, backoff_max_s=0.3,
        ),
        lambda: datetime(2026, 11, 11, 2, 0, tzinfo=UTC),
    )  # fmt: skip
    outbox = ListOutbox()  # hz01/line3's events
    try:
        async with _running(office.run()):
            await _until(lambda: office.connected)  # its shared subscription was allowed
            # line3's user claims line4 on line4's topic: the broker says no.
            foreign = json.dumps(doc(1, LINE4)).encode()
            code = await asyncio.to_thread(
                _publish_v5, broker, "gw-hz01-line3", "linegate/v1/hz01/line4/out/events", foreign
            )
            assert code.value == 0x87  # Not authorized
            # Its own line goes through, by the gateway's own link.
            outbox.add(5)
            async with _running(gateway.run(ListSink(), outbox)):
                await _until(lambda: not outbox.pending)
                await _until(lambda: office.stored == 5)
            # line4's own user may publish there: the rule is per user, not a closed topic.
            code = await asyncio.to_thread(
                _publish_v5, broker, "gw-hz01-line4", "linegate/v1/hz01/line4/out/events", foreign
            )
            assert code.value == 0
            await _until(lambda: office.stored == 6)
        assert await store.event_seqs(LINE3) == [1, 2, 3, 4, 5]
        assert await store.event_seqs(LINE4) == [1]  # line4's own publish only
        assert office.refused == 0 and await store.rejections() == []
    finally:
        await store.close()


def test_a_gateway_reads_what_is_for_its_line_only(broker: Mosquitto) -> None:
    def office_writes(line: str) -> Callable[[], None]:
        def publish() -> None:
            code = _publish_v5(
                broker, "linegate-office", f"linegate/v1/hz01/{line}/in/orders", b"[]"
            )
            assert code.value in (0, 0x10)  # success, or "no matching subscribers"

        return publish

    assert _receive(broker, "gw-hz01-line3", "linegate/v1/hz01/line3/in/#", office_writes("line3"))
    assert not _receive(broker, "gw-hz01-line3", "linegate/v1/hz01/+/in/#", office_writes("line4"))
