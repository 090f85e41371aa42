"""The MQTT hub link: paho-mqtt 2.x on its own network thread, bridged into asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.backoff import Backoff
from cloud_sync.contract import INBOUND_TOPICS, OUT_EVENTS, OUT_STATUS, topic_prefix
from cloud_sync.ports import InboundMessage, InboundSink, Outbox

log = logging.getLogger(__name__)

# CONNACK and SUBACK must both arrive within this, or the attempt counts as failed.
_HANDSHAKE_TIMEOUT_S = 10.0
# A clean stop waits this long for the broker to take the retained offline status.
_GOODBYE_TIMEOUT_S = 2.0
# The paho thread gets this long to end after a disconnect before its socket is shut under it.
_JOIN_TIMEOUT_S = 2.0
# Room in paho's queue, beside the event window, for the online/offline status messages.
_STATUS_SLOTS = 2
# Message ids are 16 bits: a window near 65535 would let paho reuse an id still in flight.
_MAX_WINDOW = 60_000


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where the hub's broker is and who this gateway is on it."""

    host: str
    port: int
    site: str
    line: str
    client_id: str
    keepalive_s: int = 30
    version: str = "0.1.0"
    inflight_window: int = 100
    # The contract allows an array of envelopes per message: one PUBLISH/PUBACK round for
    # many events is what lets a burst drain at broker speed instead of per-message speed.
    events_per_message: int = 1
    # MQTT 5 Receive Maximum: the broker sends at most this many unacknowledged orders, so
    # a promotion burst waits in the broker, not in the gateway's memory.
    receive_maximum: int = 500
    batch_max: int = 500
    # A batch also ends at this many payload bytes: a hub that sends arrays of orders must
    # not turn 500 messages into one transaction of 50,000 orders held in memory.
    batch_bytes: int = 1 << 20
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        topic_prefix(self.site, self.line)  # raises ValueError on a bad segment
        if not self.host:
            raise ValueError("host must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        if not self.client_id:
            raise ValueError("a persistent session needs a stable, non-empty client_id")
        if self.keepalive_s < 0:
            raise ValueError("keepalive_s must be >= 0")
        if not 1 <= self.receive_maximum <= 65_535:
            raise ValueError("receive_maximum must be in 1..65535")
        if not 1 <= self.events_per_message <= 10_000:
            raise ValueError("events_per_message must be in 1..10000")
        if not 1 <= self.inflight_window <= _MAX_WINDOW:
            raise ValueError(f"inflight_window must be in 1..{_MAX_WINDOW}")
        if self.batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        if self.batch_bytes < 1:
            raise ValueError("batch_bytes must be >= 1")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")

    @property
    def gateway_id(self) -> str:
        return f"{self.site}/{self.line}"


class _Connection:
    """What one paho client's callbacks report, for one connection.

    The callbacks run on paho's network thread and do nothing but hop onto the event loop, so
    every field here is read and written on the loop thread only. Nothing refers back to the
    client, so no reference cycle keeps a finished client (and its sockets) alive.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, subscriptions: list[tuple[str, int]]
    ) -> None:
        self._loop = loop
        self._subscriptions = subscriptions
        self._sub_mid: int | None = None
        self.inbound: deque[mqtt.MQTTMessage] = deque()
        self.high_water = 1000
        self.high_water_bytes = 4 << 20
        # Written by one thread each, so their difference is safe to read from either.
        self.bytes_in = 0  # paho's thread
        self.bytes_out = 0  # the loop
        self._wake_pending = False
        self.inbound_ready = asyncio.Event()
        self.inflight: dict[int, list[int]] = {}  # paho mid -> outbox seqs awaiting PUBACK
        self.acked: list[int] = []  # seqs the broker holds, not yet acked in the outbox
        self.progress = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.closed = asyncio.Event()
        self.reason = ""
        self.up = False
        self.goodbye_mid: int | None = None
        self.goodbye_acked = asyncio.Event()

    def close(self, reason: str) -> None:
        if not self.closed.is_set():
            self.reason = reason
            self.closed.set()

    def attach(self, client: mqtt.Client) -> None:
        client.on_connect = self._paho_connect
        client.on_subscribe = self._paho_subscribe
        client.on_message = self._paho_message
        client.on_publish = self._paho_publish
        client.on_disconnect = self._paho_disconnect

    # --- paho's network thread: hop onto the loop, nothing else -------------------------

    def _hop(self, handler: Callable[..., None], *args: Any) -> None:
        # RuntimeError: the loop is closed, the link is gone and nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(handler, *args)

    def _paho_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._hop(self._on_connack, client, flags.session_present, reason_code)

    def _paho_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._hop(self._on_suback, mid, reason_codes)

    def _paho_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        # deque.append is atomic; one wake-up per burst instead of one per message (each
        # call_soon_threadsafe writes to the loop's self-pipe).
        self.bytes_in += len(message.payload)
        self.inbound.append(message)
        if not self._wake_pending:
            self._wake_pending = True
            self._hop(self._on_message)
        # Back-pressure: while the loop has a full backlog, this thread stops reading the
        # socket, so a promotion burst waits in the broker (on disk there), not in our memory.
        # Brokers do not all bound in-flight deliveries by Receive Maximum (Mosquitto 2.0
        # overshoots it); TCP flow control always works. Bounded: the loop drains the deque.
        # Only once the pumps run: before that the handshake needs this thread (SUBACK).
        while (
            (
                len(self.inbound) > self.high_water
                or self.bytes_in - self.bytes_out > self.high_water_bytes
            )
            and self.up
            and not self.closed.is_set()
        ):
            time.sleep(0.002)

    def _paho_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self._hop(self._on_puback, mid)

    def _paho_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._hop(self.close, f"connection lost ({reason_code})")

    # --- the event loop thread ----------------------------------------------------------

    def _on_connack(
        self, client: mqtt.Client, session_present: bool, reason_code: ReasonCode
    ) -> None:
        if self.closed.is_set():
            return
        if reason_code.is_failure:
            self.close(f"broker refused the connection ({reason_code})")
            return
        log.debug("CONNACK, session present: %s", session_present)
        # Subscribe on every connect, not only without a session: a restarted broker without
        # persistence has forgotten it (retained master data is redelivered; it is idempotent).
        result, mid = client.subscribe(self._subscriptions)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.close(f"cannot subscribe ({mqtt.error_string(result)})")
        else:
            self._sub_mid = mid

    def _on_suback(self, mid: int, reason_codes: list[ReasonCode]) -> None:
        if mid != self._sub_mid:
            return
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self.close(f"broker refused the subscriptions ({', '.join(refused)})")
        else:
            self.subscribed.set()

    def _on_message(self) -> None:
        self._wake_pending = False
        self.inbound_ready.set()

    def _on_puback(self, mid: int) -> None:
        if mid == self.goodbye_mid:
            self.goodbye_acked.set()
            return
        seqs = self.inflight.pop(mid, None)
        if seqs is not None:
            self.acked.extend(seqs)
            self.progress.set()


class MqttLink:
    """The hub link over MQTT, as hub-protocol.md asks: at-least-once in both directions.

    Inbound QoS 1 messages are acknowledged to the broker only after ``sink.deliver`` returned
    (the sink has committed them); outbox events are acked in the outbox only after the
    broker's PUBACK. Each connection uses a fresh paho client on the same client id and
    persistent session, so the broker keeps orders while the gateway is away.
    """

    def __init__(self, settings: MqttSettings, clock_now: Callable[[], datetime]) -> None:
        self._settings = settings
        self._now = clock_now
        self._prefix = topic_prefix(settings.site, settings.line)
        self._subscriptions = [(self._prefix + topic, 1) for topic in INBOUND_TOPICS]
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        self._connected = False
        self._published = 0
        self._backlog_peak = 0
        self._state: str | None = None  # "up" or "down", so only transitions are logged
        self._store_failed = False

    @property
    def connected(self) -> bool:
        """Subscribed, online status sent, and the connection has not dropped since."""
        return self._connected

    @property
    def backlog_peak(self) -> int:
        """The most inbound messages ever waiting in memory for the store (bounded by
        back-pressure to about twice ``batch_max``)."""
        return self._backlog_peak

    @property
    def published(self) -> int:
        """Events the broker has acknowledged (and the outbox has forgotten) so far."""
        return self._published

    async def run(self, sink: InboundSink, outbox: Outbox) -> None:
        """Keep the link up until cancelled; broker outages are retried, never raised."""
        try:
            while True:
                reason = await self._session(sink, outbox)
                self._went_down(reason)
                await asyncio.sleep(self._backoff.next())
        finally:
            self._connected = False
            self._state = None

    # --- one connection -----------------------------------------------------------------

    async def _session(self, sink: InboundSink, outbox: Outbox) -> str:
        """One connection from connect to loss; returns why it ended."""
        conn = _Connection(asyncio.get_running_loop(), self._subscriptions)
        conn.high_water = 2 * self._settings.batch_max
        conn.high_water_bytes = 4 * self._settings.batch_bytes
        client = self._new_client(conn)
        started = clean = False
        try:
            try:
                rc = await self._connect(client)
            except OSError as exc:
                return f"cannot connect to {self._settings.host}:{self._settings.port}: {exc}"
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return f"cannot connect: {mqtt.error_string(rc)}"
            client.loop_start()
            started = True
            return await self._serve(client, conn, sink, outbox)
        except asyncio.CancelledError:
            clean = True
            if conn.up and not conn.closed.is_set():
                await self._say_offline(client, conn)
            log.info("hub link stopped")
            raise
        finally:
            self._connected = False
            await self._release(client, conn, clean=clean, started=started)
            # The paho thread has ended, so its last callbacks are queued on the loop: one
            # turn runs them, and PUBACKs that arrived just before the end still count.
            await asyncio.sleep(0)
            self._settle(conn, outbox)
            # The public way to close the socket pair loop_start() opened: left to
            # Client.__del__, a collected reference cycle can warn about an unclosed socket.
            client.reinitialise()

    def _new_client(self, conn: _Connection) -> mqtt.Client:
        s = self._settings
        # A fresh client per connection: paho would resend its own unacked messages on a
        # reconnect, on top of our restart from the oldest unacked outbox record.
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        client.will_set(self._prefix + OUT_STATUS, self._status("offline"), qos=1, retain=True)
        client.max_inflight_messages_set(s.inflight_window + _STATUS_SLOTS)
        client.max_queued_messages_set(s.inflight_window + _STATUS_SLOTS)
        conn.attach(client)
        return client

    async def _connect(self, client: mqtt.Client) -> MQTTErrorCode:
        s = self._settings
        # connect() resolves the name and opens the TCP connection: blocking, so off the loop.
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # A persistent session (MQTT 5 spells "clean session off" as clean_start=False plus
        # a session that never expires), so orders published while we are away are kept.
        props.SessionExpiryInterval = 0xFFFFFFFF
        props.ReceiveMaximum = s.receive_maximum
        connect = partial(
            client.connect, s.host, s.port, s.keepalive_s, clean_start=False, properties=props
        )
        connecting = asyncio.get_running_loop().run_in_executor(None, connect)
        try:
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # The thread carries on regardless: let it finish so its socket can be closed.
            with contextlib.suppress(Exception):
                await connecting
            raise

    async def _serve(
        self, client: mqtt.Client, conn: _Connection, sink: InboundSink, outbox: Outbox
    ) -> str:
        try:
            async with asyncio.timeout(_HANDSHAKE_TIMEOUT_S):
                await _first(conn.subscribed.wait(), conn.closed.wait())
        except TimeoutError:
            return f"no CONNACK/SUBACK within {_HANDSHAKE_TIMEOUT_S:g} s"
        if conn.closed.is_set():
            return conn.reason
        # Only now, with the subscriptions in place, may the hub see us online.
        info = client.publish(self._prefix + OUT_STATUS, self._status("online"), 1, True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return f"cannot publish the online status: {mqtt.error_string(info.rc)}"
        conn.up = True
        self._connected = True
        self._went_up()
        pumps = [
            asyncio.create_task(self._pump_in(client, conn, sink)),
            asyncio.create_task(self._pump_out(client, conn, outbox)),
        ]
        try:
            await conn.closed.wait()
        finally:
            self._connected = False
            await _cancel_all(pumps)
        return conn.reason

    async def _pump_in(self, client: mqtt.Client, conn: _Connection, sink: InboundSink) -> None:
        batch_max = self._settings.batch_max
        batch_bytes = self._settings.batch_bytes
        while True:
            await conn.inbound_ready.wait()
            conn.inbound_ready.clear()
            while conn.inbound and not conn.closed.is_set():
                self._backlog_peak = max(self._backlog_peak, len(conn.inbound))
                batch: list[mqtt.MQTTMessage] = []
                size = 0
                while conn.inbound and len(batch) < batch_max and size < batch_bytes:
                    message = conn.inbound.popleft()
                    size += len(message.payload)
                    batch.append(message)
                conn.bytes_out += size
                try:
                    sink.deliver(
                        [
                            InboundMessage(m.topic.removeprefix(self._prefix), bytes(m.payload))
                            for m in batch
                        ]
                    )
                except Exception:
                    # The sink handles bad payloads itself, so a raise means the store is broken.
                    # Nothing is acknowledged: dropping the session makes the broker redeliver.
                    log.exception("inbound sink failed; %d message(s) left unacked", len(batch))
                    self._store_failed = True
                    conn.close("inbound sink failed")
                    return
                self._store_ok()
                for message in batch:
                    if message.qos > 0:
                        client.ack(message.mid, message.qos)
                await asyncio.sleep(0)  # let the outbound side run between large batches

    async def _pump_out(self, client: mqtt.Client, conn: _Connection, outbox: Outbox) -> None:
        window = self._settings.inflight_window
        topic = self._prefix + OUT_EVENTS
        cursor = 0  # highest seq handed to paho on this connection
        try:
            while True:
                conn.progress.clear()
                self._flush_acks(conn, outbox)
                room = min(window - len(conn.inflight), self._settings.batch_max)
                per = self._settings.events_per_message
                if room > 0:
                    records = outbox.peek(cursor, room * per)
                    for k in range(0, len(records), per):
                        group = records[k : k + per]
                        payload = (
                            group[0].payload
                            if per == 1
                            else b"[" + b",".join(r.payload for r in group) + b"]"
                        )
                        info = client.publish(topic, payload, qos=1)
                        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                            conn.close(f"cannot publish an event: {mqtt.error_string(info.rc)}")
                            return
                        conn.inflight[info.mid] = [r.seq for r in group]
                        cursor = group[-1].seq
                if len(conn.inflight) < window:
                    await _first(conn.progress.wait(), outbox.wait_for_new(cursor))
                else:
                    await conn.progress.wait()
        except Exception:
            log.exception("outbox failed; dropping the hub connection")
            self._store_failed = True
            conn.close("outbox failed")

    def _flush_acks(self, conn: _Connection, outbox: Outbox) -> None:
        if conn.acked:
            seqs, conn.acked = conn.acked, []
            outbox.ack(seqs)
            self._published += len(seqs)
            self._store_ok()

    async def _say_offline(self, client: mqtt.Client, conn: _Connection) -> None:
        info = client.publish(self._prefix + OUT_STATUS, self._status("offline"), 1, True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        conn.goodbye_mid = info.mid
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_GOODBYE_TIMEOUT_S):
                await _first(conn.goodbye_acked.wait(), conn.closed.wait())

    async def _release(
        self, client: mqtt.Client, conn: _Connection, *, clean: bool, started: bool
    ) -> None:
        conn.close("link stopped")  # callbacks still in flight must not act on this client
        if clean:
            client.disconnect()  # a DISCONNECT: the broker discards the will
        else:
            _shut(client)  # no DISCONNECT: the broker publishes the offline will
        if not started:
            return
        try:
            async with asyncio.timeout(_JOIN_TIMEOUT_S):
                await asyncio.to_thread(client.loop_stop)
        except TimeoutError:
            # A DISCONNECT stuck behind a dead peer must not hold the link up.
            _shut(client)
            await asyncio.to_thread(client.loop_stop)

    def _settle(self, conn: _Connection, outbox: Outbox) -> None:
        """Ack in the outbox what the broker acknowledged before the connection ended."""
        try:
            self._flush_acks(conn, outbox)
        except Exception:
            log.exception("outbox ack failed; those events will be sent again")

    def _status(self, state: str) -> bytes:
        s = self._settings
        status = {
            "gateway_id": s.gateway_id,
            "state": state,
            "ts": self._now().isoformat(),
            "version": s.version,
        }
        return json.dumps(status, separators=(",", ":")).encode()

    def _went_up(self) -> None:
        if not self._store_failed:
            self._backoff.reset()
        if self._state != "up":
            s = self._settings
            log.info("hub link up (%s:%d as %s)", s.host, s.port, s.client_id)
        self._state = "up"

    def _went_down(self, reason: str) -> None:
        if self._state != "down":
            log.warning("hub link down: %s", reason)
        else:
            log.debug("hub link still down: %s", reason)
        self._state = "down"

    def _store_ok(self) -> None:
        if self._store_failed:
            self._store_failed = False
            self._backoff.reset()


def _shut(client: mqtt.Client) -> None:
    """Cut the TCP connection under paho: its thread sees the loss and ends."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def _first(*waits: Coroutine[Any, Any, object]) -> None:
    """Return once the first of ``waits`` is done (re-raising its error); cancel the rest."""
    tasks = [asyncio.create_task(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel_all(tasks)
    for task in done:
        task.result()


async def _cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
