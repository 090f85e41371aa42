"""The MQTT hub link: paho-mqtt 2.x driven from the asyncio event loop (no paho thread)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.backoff import Backoff
from cloud_sync.contract import INBOUND_TOPICS, OUT_EVENTS, OUT_STATUS, topic_prefix
from cloud_sync.paho_asyncio import PahoConnection, cancel_all, connect, first, keep_alive
from cloud_sync.ports import InboundMessage, InboundSink, Outbox, OutboxRecord

log = logging.getLogger(__name__)

# CONNACK and SUBACK must both arrive within this, or the attempt counts as failed.
_HANDSHAKE_TIMEOUT_S = 10.0
# A clean stop waits this long for the broker to take the retained offline status.
_GOODBYE_TIMEOUT_S = 2.0
# A clean stop gives the DISCONNECT this long to leave before the socket is closed under it.
_DISCONNECT_TIMEOUT_S = 2.0
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
    # Messages of backlog (events older than the connection) in flight at once: the rest
    # of the window is kept for live events, which go first, so an event committed now
    # does not queue behind a whole window of yesterday's backlog.
    backlog_window: int = 8
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
    # TLS (mqtts://): the hub's CA (None: the system's), this gateway's certificate and key
    # for mutual TLS, and whether the hub's certificate and host name are checked.
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line

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
        if self.backlog_window < 1:
            raise ValueError("backlog_window must be >= 1")
        if self.batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        if self.batch_bytes < 1:
            raise ValueError("batch_bytes must be >= 1")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")

    @property
    def gateway_id(self) -> str:
        return f"{self.site}/{self.line}"


class _Connection(PahoConnection):
    """The hub link's connection: its subscriptions, inbound backlog and PUBACKs awaited.

    The socket is driven by the loop (cloud_sync.paho_asyncio); every callback here runs on
    the loop thread and acts at once."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        subscriptions: list[tuple[str, int]],
        high_water: int,
        high_water_bytes: int,
    ) -> None:
        super().__init__(loop)
        self._subscriptions = subscriptions
        self._sub_mid: int | None = None
        self._discarding = False
        self.high_water = high_water
        self.high_water_bytes = high_water_bytes
        self.inbound: deque[mqtt.MQTTMessage] = deque()
        self.inbound_bytes = 0
        self.inbound_ready = asyncio.Event()
        self.inflight: dict[int, list[int]] = {}  # paho mid -> outbox seqs awaiting PUBACK
        self.acked: list[int] = []  # seqs the broker holds, not yet acked in the outbox
        self.progress = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.up = False
        self.goodbye_mid: int | None = None
        self.goodbye_acked = asyncio.Event()

    def bind(self, client: mqtt.Client) -> None:
        client.on_connect = self._paho_connect
        client.on_subscribe = self._paho_subscribe
        client.on_message = self._paho_message
        client.on_publish = self._paho_publish
        client.on_disconnect = self._paho_disconnect

    # --- back-pressure ------------------------------------------------------------------

    def over_high_water(self) -> bool:
        return len(self.inbound) > self.high_water or self.inbound_bytes > self.high_water_bytes

    def hold_reading(self) -> bool:
        # Only once the pumps run: before that the handshake needs the socket read (SUBACK).
        # Brokers do not all bound in-flight deliveries by Receive Maximum (Mosquitto 2.0
        # overshoots it). The backlog can pass the mark by what one loop_read() call
        # delivers: one message, or one per event in flight.
        return self.up and not self._discarding and self.over_high_water()

    def discard_inbound(self, client: mqtt.Client) -> None:
        """Stop taking orders in, but go on reading (a PUBACK is awaited): what arrives from now
        on, and what waits in memory, is dropped unacknowledged, so the broker keeps it."""
        self._discarding = True
        self.inbound.clear()
        self.inbound_bytes = 0
        self.resume(client)

    # --- paho's callbacks (inside loop_read / loop_write / loop_misc, on the loop) --------

    def _paho_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.packets += 1
        if self.closed.is_set():
            return
        if reason_code.is_failure:
            self.close(f"broker refused the connection ({reason_code})")
            return
        log.debug("CONNACK, session present: %s", flags.session_present)
        # Subscribe on every connect, not only without a session: a restarted broker without
        # persistence has forgotten it (retained master data is redelivered; it is idempotent).
        result, mid = client.subscribe(self._subscriptions)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.close(f"cannot subscribe ({mqtt.error_string(result)})")
        else:
            self._sub_mid = mid

    def _paho_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self.packets += 1
        if mid != self._sub_mid:
            return
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self.close(f"broker refused the subscriptions ({', '.join(refused)})")
        else:
            self.subscribed.set()

    def _paho_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        self.packets += 1
        if self._discarding:
            return
        self.inbound.append(message)
        self.inbound_bytes += len(message.payload)
        self.inbound_ready.set()

    def _paho_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self.packets += 1
        if mid == self.goodbye_mid:
            self.goodbye_acked.set()
            return
        seqs = self.inflight.pop(mid, None)
        if seqs is not None:
            self.acked.extend(seqs)
            self.progress.set()

    def _paho_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.packets += 1
        self.close(f"connection lost ({reason_code})")


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
        back-pressure to twice ``batch_max`` plus what one read of the socket brings: one
        message, or one per event in flight)."""
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
        s = self._settings
        conn = _Connection(
            asyncio.get_running_loop(),
            self._subscriptions,
            high_water=2 * s.batch_max,
            high_water_bytes=4 * s.batch_bytes,
        )
        client = self._new_client()
        attached = clean = False
        try:
            try:
                rc = await self._connect(client)
            except OSError as exc:
                return f"cannot connect to {s.host}:{s.port}: {exc}"
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return f"cannot connect: {mqtt.error_string(rc)}"
            conn.attach(client)
            attached = True
            return await self._serve(client, conn, sink, outbox)
        except asyncio.CancelledError:
            clean = True
            if conn.up and not conn.closed.is_set():
                await self._say_offline(client, conn)
            log.info("hub link stopped")
            raise
        finally:
            self._connected = False
            await self._release(client, conn, clean=clean, attached=attached)
            # paho's callbacks ran inside its loop calls: PUBACKs read before the end count.
            self._settle(conn, outbox)
            # Closes the socket if it is still open (no DISCONNECT: the broker publishes the
            # offline will), and takes our callbacks off the client.
            client.reinitialise()

    def _new_client(self) -> mqtt.Client:
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
        if s.tls:
            client.tls_set(
                ca_certs=s.ca_file,
                certfile=s.cert_file,
                keyfile=s.key_file,
                cert_reqs=ssl.CERT_REQUIRED if s.verify else ssl.CERT_NONE,
            )
            client.tls_insecure_set(not s.verify)  # host name check follows verify
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        client.max_inflight_messages_set(s.inflight_window + _STATUS_SLOTS)
        client.max_queued_messages_set(s.inflight_window + _STATUS_SLOTS)
        return client

    async def _connect(self, client: mqtt.Client) -> MQTTErrorCode:
        s = self._settings
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # A persistent session (MQTT 5 spells "clean session off" as clean_start=False plus
        # a session that never expires), so orders published while we are away are kept.
        props.SessionExpiryInterval = 0xFFFFFFFF
        props.ReceiveMaximum = s.receive_maximum
        return await connect(
            client, s.host, s.port, s.keepalive_s, clean_start=False, properties=props
        )

    async def _serve(
        self, client: mqtt.Client, conn: _Connection, sink: InboundSink, outbox: Outbox
    ) -> str:
        keepalive = asyncio.create_task(keep_alive(client, conn, self._settings.keepalive_s))
        try:
            return await self._serve_connected(client, conn, sink, outbox)
        finally:
            await cancel_all([keepalive])

    async def _serve_connected(
        self, client: mqtt.Client, conn: _Connection, sink: InboundSink, outbox: Outbox
    ) -> str:
        try:
            async with asyncio.timeout(_HANDSHAKE_TIMEOUT_S):
                await first(conn.subscribed.wait(), conn.closed.wait())
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
            await cancel_all(pumps)
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
                conn.inbound_bytes -= size
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
                conn.resume(client)  # if reading was paused, the backlog is below the mark now
                await asyncio.sleep(0)  # let the socket and the outbound side run between batches

    async def _pump_out(self, client: mqtt.Client, conn: _Connection, outbox: Outbox) -> None:
        """Send the outbox: live events first, the backlog beside them.

        Events committed before this connection came up are the backlog; they drain in seq
        order with at most ``backlog_window`` messages in flight. Events committed since
        are live: they take any free slot of the window first, so a scan made now reaches
        the hub within milliseconds while yesterday's backlog drains (the hub sorts by
        seq; the contract allows out-of-order delivery)."""
        s = self._settings
        window, per = s.inflight_window, s.events_per_message
        backlog_window = min(window, s.backlog_window)
        topic = self._prefix + OUT_EVENTS
        live_from = outbox.last_seq  # newer than this: live
        back_cursor = 0  # highest backlog seq handed to paho on this connection
        live_cursor = live_from  # highest live seq handed to paho
        backlog_mids: set[int] = set()

        def send(records: list[OutboxRecord], backlog: bool) -> bool:
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
                    return False
                conn.inflight[info.mid] = [r.seq for r in group]
                if backlog:
                    backlog_mids.add(info.mid)
            return True

        try:
            while True:
                conn.progress.clear()
                self._flush_acks(conn, outbox)
                backlog_mids.intersection_update(conn.inflight)
                room = min(window - len(conn.inflight), s.batch_max)
                if room > 0:
                    live = outbox.peek(live_cursor, room * per)
                    if live and not send(live, backlog=False):
                        return
                    if live:
                        live_cursor = live[-1].seq
                room = min(window - len(conn.inflight), backlog_window - len(backlog_mids))
                if back_cursor < live_from and room > 0:
                    older = [r for r in outbox.peek(back_cursor, room * per) if r.seq <= live_from]
                    if not older:
                        back_cursor = live_from  # the backlog is all out
                    elif not send(older, backlog=True):
                        return
                    else:
                        back_cursor = older[-1].seq
                if len(conn.inflight) < window:
                    await first(conn.progress.wait(), outbox.wait_for_new(live_cursor))
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
        # The PUBACK must be read even with a full backlog (nobody stores it any more).
        conn.discard_inbound(client)
        info = client.publish(self._prefix + OUT_STATUS, self._status("offline"), 1, True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        conn.goodbye_mid = info.mid
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_GOODBYE_TIMEOUT_S):
                await first(conn.goodbye_acked.wait(), conn.closed.wait())

    async def _release(
        self, client: mqtt.Client, conn: _Connection, *, clean: bool, attached: bool
    ) -> None:
        conn.close("link stopped")  # callbacks still to come must not act on this client
        if not clean:
            return  # no DISCONNECT: closing the socket makes the broker publish the will
        client.disconnect()  # a DISCONNECT: the broker discards the will
        if attached:
            # The loop sends it (paho closes the socket once it is out); a DISCONNECT stuck
            # behind a dead peer must not hold the link up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DISCONNECT_TIMEOUT_S):
                    await conn.socket_closed.wait()

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
