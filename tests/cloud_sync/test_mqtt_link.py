"""MqttLink against a real mosquitto: status and will, persistent session, acks both ways."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.contract import IN_CANCEL, IN_ORDERS, OUT_EVENTS, OUT_STATUS, topic_prefix
from cloud_sync.mqtt import MqttLink, MqttSettings
from cloud_sync.ports import InboundMessage
from tests.cloud_sync.doubles import ListOutbox, ListSink, envelope
from tests.conftest import Mosquitto, free_port

pytestmark = pytest.mark.timeout(30)

SITE, LINE = "hz01", "line3"
GATEWAY = f"{SITE}/{LINE}"
PREFIX = topic_prefix(SITE, LINE)
CLIENT_ID = "linegate-hz01-line3"
LINK_THREAD = f"paho-mqtt-client-{CLIENT_ID}"


def now() -> datetime:
    return datetime(2026, 11, 11, 2, 0, tzinfo=UTC)


def settings(port: int, **overrides: Any) -> MqttSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "site": SITE,
        "line": LINE,
        "client_id": CLIENT_ID,
        # Short delays keep the reconnect tests quick.
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
    }
    values.update(overrides)
    return MqttSettings(**values)


# --- the gateway's side, kept honest and small -------------------------------------------


# --- the hub's side ----------------------------------------------------------------------


class HubClient:
    """A plain paho client on the hub's side of the broker (its calls block briefly)."""

    def __init__(
        self,
        broker: Mosquitto,
        name: str,
        react: Callable[[HubClient, mqtt.MQTTMessage], None] | None = None,
    ) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._react = react
        self._subscribed = threading.Event()
        # No automatic reconnect: after a broker restart a test makes a new client.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=name,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()

    def subscribe(self, *suffixes: str) -> None:
        self._subscribed.clear()
        self.client.subscribe([(PREFIX + suffix, 1) for suffix in suffixes])
        assert self._subscribed.wait(5), "no SUBACK"

    def publish(self, suffix: str, payload: bytes) -> None:
        info = self.client.publish(PREFIX + suffix, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    def received(self, suffix: str) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in list(self.messages) if m.topic == PREFIX + suffix]

    def states(self) -> list[str]:
        return [status["state"] for status in self.received(OUT_STATUS)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client.reinitialise()  # closes the wake-up socket pair now, not in a GC pass

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(msg)
        if self._react is not None:
            self._react(self, msg)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._subscribed.set()


HubFactory = Callable[..., HubClient]


@pytest.fixture
def hub(mosquitto: Mosquitto) -> Iterator[HubFactory]:
    made: list[HubClient] = []

    def make(
        name: str, react: Callable[[HubClient, mqtt.MQTTMessage], None] | None = None
    ) -> HubClient:
        client = HubClient(mosquitto, name, react)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


class TcpProxy:
    """A loopback relay between link and broker: cut it, hold one direction, or refuse."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.refusing = False
        self._to_link = asyncio.Event()
        self._to_link.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        """Stop passing bytes from the broker to the link (PUBACKs among them)."""
        self._to_link.clear()

    def release(self) -> None:
        self._to_link.set()

    def sever(self) -> None:
        """Drop every relayed connection at once, with no DISCONNECT: a dead network."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self.release()
        self.sever()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            if self.refusing:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.upstream_port
                )
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(
                    self._pipe(reader, up_writer, None),
                    self._pipe(up_reader, writer, self._to_link),
                )
            finally:
                up_writer.transport.abort()
                self._writers.discard(up_writer)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._handlers.discard(task)

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        try:
            while data := await source.read(65536):
                if gate is not None:
                    await gate.wait()
                sink.write(data)
                await sink.drain()
            sink.write_eof()  # pass a clean close on as one
        except (OSError, RuntimeError):
            sink.transport.abort()


@pytest.fixture
async def proxy(mosquitto: Mosquitto) -> AsyncIterator[TcpProxy]:
    relay = TcpProxy(mosquitto.port)
    await relay.start()
    yield relay
    await relay.close()


@contextlib.asynccontextmanager
async def running(link: MqttLink, sink: ListSink, outbox: ListOutbox) -> AsyncIterator[None]:
    task = asyncio.create_task(link.run(sink, outbox))
    try:
        yield
        assert not task.done(), "run() returned or raised"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # A stopped link leaves no paho network thread behind.
    assert not [t.name for t in threading.enumerate() if t.name.startswith(LINK_THREAD)]


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    # Polling, not an Event: the conditions are often set from paho's threads.
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def order(order_id: str) -> bytes:
    return json.dumps({"order_id": order_id}).encode()


# --- tests -------------------------------------------------------------------------------


async def test_online_is_retained_and_sent_only_once_subscribed(
    mosquitto: Mosquitto, hub: HubFactory
) -> None:
    def order_on_online(client: HubClient, msg: mqtt.MQTTMessage) -> None:
        # Straight from the broker's callback: if the link said online before its
        # subscription was in place, this non-retained order would be lost.
        if json.loads(msg.payload)["state"] == "online":
            client.client.publish(PREFIX + IN_ORDERS, order("SO-1"), qos=1)

    watcher = hub("watcher", order_on_online)
    watcher.subscribe(OUT_STATUS)
    sink = ListSink()
    link = MqttLink(settings(mosquitto.port), now)
    async with running(link, sink, ListOutbox()):
        await until(lambda: len(sink.messages) == 1)
        assert sink.messages == [InboundMessage(IN_ORDERS, order("SO-1"))]
        assert link.connected

        late = hub("late")
        late.subscribe(OUT_STATUS)
        await until(lambda: len(late.messages) == 1)
        assert late.messages[0].retain
        assert late.received(OUT_STATUS) == [
            {"gateway_id": GATEWAY, "state": "online", "ts": now().isoformat(), "version": "0.1.0"}
        ]


async def test_will_on_abrupt_loss_then_online_again_and_offline_on_clean_stop(
    mosquitto: Mosquitto, hub: HubFactory, proxy: TcpProxy
) -> None:
    watcher = hub("watcher")
    watcher.subscribe(OUT_STATUS)
    link = MqttLink(settings(proxy.port), now)
    async with running(link, ListSink(), ListOutbox()):
        await until(lambda: watcher.states() == ["online"])
        proxy.sever()
        await until(lambda: watcher.states() == ["online", "offline", "online"])
        await until(lambda: link.connected)
    await until(lambda: watcher.states() == ["online", "offline", "online", "offline"])
    assert not link.connected
    will = watcher.received(OUT_STATUS)[1]
    assert will == {"gateway_id": GATEWAY, "state": "offline", "ts": will["ts"], "version": "0.1.0"}

    late = hub("late")
    late.subscribe(OUT_STATUS)
    await until(lambda: len(late.messages) == 1)
    assert late.messages[0].retain
    assert late.states() == ["offline"]


async def test_orders_sent_while_stopped_arrive_after_restart(
    mosquitto: Mosquitto, hub: HubFactory
) -> None:
    first = ListSink()
    link = MqttLink(settings(mosquitto.port, batch_max=8), now)
    async with running(link, first, ListOutbox()):
        await until(lambda: link.connected)

    office = hub("office")
    for n in range(30):
        office.publish(IN_ORDERS, order(f"SO-{n}"))
    office.publish(IN_CANCEL, order("SO-3"))

    second = ListSink()
    again = MqttLink(settings(mosquitto.port, batch_max=8), now)
    async with running(again, second, ListOutbox()):
        await until(lambda: len(second.messages) == 31)
    assert first.messages == []
    assert second.messages[:30] == [InboundMessage(IN_ORDERS, order(f"SO-{n}")) for n in range(30)]
    assert second.messages[30] == InboundMessage(IN_CANCEL, order("SO-3"))
    assert all(1 <= len(batch) <= 8 for batch in second.batches)


async def test_a_raising_sink_gets_the_message_again_and_only_then_acks_it(
    mosquitto: Mosquitto, hub: HubFactory
) -> None:
    office = hub("office")
    sink = ListSink(fail_times=1)
    link = MqttLink(settings(mosquitto.port), now)
    async with running(link, sink, ListOutbox()):
        await until(lambda: link.connected)
        office.publish(IN_ORDERS, order("SO-A"))
        await until(lambda: len(sink.messages) == 1)
    assert sink.failed == sink.batches == [[InboundMessage(IN_ORDERS, order("SO-A"))]]

    # Had SO-A not been acked, the broker would redeliver it ahead of SO-B.
    office.publish(IN_ORDERS, order("SO-B"))
    later = ListSink()
    async with running(MqttLink(settings(mosquitto.port), now), later, ListOutbox()):
        await until(lambda: len(later.messages) == 1)
    assert later.messages == [InboundMessage(IN_ORDERS, order("SO-B"))]


async def test_events_flow_in_seq_order_in_a_window_and_leave_the_outbox_on_puback(
    mosquitto: Mosquitto, hub: HubFactory, proxy: TcpProxy
) -> None:
    watcher = hub("watcher")
    watcher.subscribe(OUT_EVENTS)
    outbox = ListOutbox()
    link = MqttLink(settings(proxy.port, inflight_window=5), now)
    async with running(link, ListSink(), outbox):
        await until(lambda: link.connected)
        proxy.hold()  # the broker gets the events, the link gets no PUBACK
        outbox.add(20)
        await until(lambda: len(watcher.messages) == 5)
        await asyncio.sleep(0.2)  # room for a sixth, which the window must not allow
        assert [e["seq"] for e in watcher.received(OUT_EVENTS)] == [1, 2, 3, 4, 5]
        assert sorted(outbox.pending) == list(range(1, 21))
        assert link.published == 0

        proxy.release()
        await until(lambda: not outbox.pending and len(watcher.messages) == 20)
        assert [e["seq"] for e in watcher.received(OUT_EVENTS)] == list(range(1, 21))
        assert link.published == 20
        assert watcher.received(OUT_EVENTS)[0] == envelope(1)


async def test_a_live_event_overtakes_the_backlog(
    mosquitto: Mosquitto, hub: HubFactory, proxy: TcpProxy
) -> None:
    watcher = hub("watcher")
    watcher.subscribe(OUT_EVENTS)
    outbox = ListOutbox()
    outbox.add(50)  # the backlog: committed while the link was away
    link = MqttLink(settings(proxy.port, inflight_window=10, backlog_window=2), now)
    async with running(link, ListSink(), outbox):
        await until(lambda: link.connected)
        proxy.hold()  # the backlog's window fills and stays full
        await asyncio.sleep(0.3)
        backlog_seen = len(watcher.messages)
        assert backlog_seen < 50

        outbox.add(1)  # an operator's scan, now
        await until(lambda: 51 in [e["seq"] for e in watcher.received(OUT_EVENTS)])
        assert len(watcher.messages) == backlog_seen + 1  # it did not wait for the backlog

        proxy.release()
        await until(lambda: not outbox.pending and len(watcher.messages) == 51)
    seqs = [e["seq"] for e in watcher.received(OUT_EVENTS)]
    assert sorted(seqs) == list(range(1, 52))
    backlog = [q for q in seqs if q <= 50]
    assert backlog == sorted(backlog)  # the backlog itself in seq order
    assert link.published == 51


async def test_broker_outage_keeps_events_and_the_link_drains_them_on_return(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloud_sync.mqtt")
    outbox = ListOutbox()
    link = MqttLink(settings(mosquitto.port), now)
    async with running(link, ListSink(), outbox):
        outbox.add(3)
        await until(lambda: not outbox.pending)

        mosquitto.stop()
        await until(lambda: not link.connected)
        outbox.add(5)
        await asyncio.sleep(0.3)  # several refused reconnects
        assert sorted(outbox.pending) == [4, 5, 6, 7, 8]
        assert not link.connected

        mosquitto.start()
        await until(lambda: not outbox.pending and link.connected)
        assert link.published == 8
    messages = [r.getMessage() for r in caplog.records if r.name == "cloud_sync.mqtt"]
    assert sum(m.startswith("hub link down") for m in messages) == 1
    assert sum(m.startswith("hub link up") for m in messages) == 2


async def test_events_held_through_an_outage_reach_the_hub_after_it(
    mosquitto: Mosquitto, hub: HubFactory, proxy: TcpProxy
) -> None:
    outbox = ListOutbox()
    link = MqttLink(settings(proxy.port), now)
    async with running(link, ListSink(), outbox):
        await until(lambda: link.connected)
        mosquitto.stop()
        await until(lambda: not link.connected)
        outbox.add(5)
        # The restarted broker has no sessions: subscribe before the link may return.
        proxy.refusing = True
        mosquitto.start()
        watcher = hub("watcher")
        watcher.subscribe(OUT_EVENTS)
        proxy.refusing = False
        await until(lambda: len(watcher.messages) == 5 and not outbox.pending)
    assert [e["seq"] for e in watcher.received(OUT_EVENTS)] == [1, 2, 3, 4, 5]


async def test_an_unreachable_broker_is_retried_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cloud_sync.mqtt")
    outbox = ListOutbox()
    outbox.add(2)
    link = MqttLink(settings(free_port()), now)
    async with running(link, ListSink(), outbox):
        await asyncio.sleep(0.3)
        assert not link.connected
        assert sorted(outbox.pending) == [1, 2]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == ["hub link down"]
    assert sum("still down" in r.getMessage() for r in caplog.records) >= 2


@pytest.mark.parametrize(
    "overrides",
    [
        {"site": "hz 01"},
        {"client_id": ""},
        {"port": 0},
        {"inflight_window": 0},
        {"backlog_window": 0},
    ],
)
def test_settings_reject_nonsense(overrides: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 1883,
        "site": SITE,
        "line": LINE,
        "client_id": "gw",
    }
    with pytest.raises(ValueError):
        MqttSettings(**(values | overrides))


class SlowSink(ListSink):
    """A store that takes its time, as a gateway does in the middle of a promotion burst."""

    def deliver(self, messages: Sequence[InboundMessage]) -> None:
        time.sleep(0.01)  # blocking on purpose: the event loop is busy committing
        super().deliver(messages)


async def test_a_burst_waits_in_the_broker_not_in_memory(
    mosquitto: Mosquitto, hub: HubFactory
) -> None:
    office = hub("office")
    sink = SlowSink()
    link = MqttLink(settings(mosquitto.port, batch_max=10), now)
    async with running(link, sink, ListOutbox()):
        await until(lambda: link.connected)
        infos = [
            office.client.publish(PREFIX + IN_ORDERS, order(f"SO-{n}"), qos=1) for n in range(600)
        ]  # below Mosquitto's default queue of 1000 per session
        infos[-1].wait_for_publish(10)
        await until(lambda: len(sink.messages) == 600, within=30)
    assert sink.messages == [InboundMessage(IN_ORDERS, order(f"SO-{n}")) for n in range(600)]
    assert all(len(batch) <= 10 for batch in sink.batches)
    # paho's thread stops reading past twice the batch: the rest stayed in the broker.
    assert 10 <= link.backlog_peak <= 2 * 10 + 1
