"""The contract's MQTT transport, the office's end: every line's events and status.

Subscribed at QoS 1 to ``$share/{group}/linegate/v1/+/+/out/events`` (several office
instances in one group split the stream: the broker gives each message to one of them)
and to ``linegate/v1/+/+/out/status`` (retained; every instance keeps the latest). The
gateway_id comes from the topic; an envelope claiming another is refused.

At least once, made exactly once by the store: a message is acknowledged (paho
``manual_ack``) only after what it carried is committed (or its refusal recorded), so a
crash before the commit means a redelivery, and a redelivery is harmless (insert-or-ignore
on ``(gateway_id, seq)``). While the store is down nothing is acknowledged and the batch
is tried again; a malformed or oversized payload is recorded and acknowledged, never
retried for ever.

paho runs no thread of its own: cloud_sync.paho_asyncio drives it from the event loop (the
gateway's hub link uses the same plumbing), so its callbacks run on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from cloud_sync.backoff import Backoff
from cloud_sync.contract import OUT_EVENTS, OUT_STATUS, SEGMENT, TOPIC_ROOT, Envelope, Status
from cloud_sync.paho_asyncio import PahoConnection, connect, first, keep_alive
from office.receive.intake import sort_payload
from office.store import RejectKind, Store, StoreUnavailable

__all__ = ["MqttReceiver", "MqttReceiverSettings"]

log = logging.getLogger(__name__)

_HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MqttReceiverSettings:
    host: str
    port: int
    client_id: str
    group: str = "linegate-office"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive_s: int = 30
    max_payload_bytes: int = 4 << 20
    # Messages per store transaction: a burst is stored in few commits.
    batch_max: int = 200
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0

    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        return [
            (f"$share/{self.group}/{TOPIC_ROOT}/+/+/{OUT_EVENTS}", 1),
            (f"{TOPIC_ROOT}/+/+/{OUT_STATUS}", 1),
        ]


def topic_gateway(topic: str) -> tuple[str, str] | None:
    """(gateway_id, suffix) of ``linegate/v1/{site}/{line}/out/...``; None for another."""
    root = TOPIC_ROOT + "/"
    if not topic.startswith(root):
        return None
    parts = topic[len(root) :].split("/", 2)
    if len(parts) != 3 or not (SEGMENT.match(parts[0]) and SEGMENT.match(parts[1])):
        return None
    return f"{parts[0]}/{parts[1]}", parts[2]


class _Connection(PahoConnection):
    """One paho client's connection, its socket watched by the loop (cloud_sync.paho_asyncio)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: MqttReceiverSettings) -> None:
        super().__init__(loop)
        self._settings = settings
        self._sub_mid: int | None = None
        self.inbound: deque[mqtt.MQTTMessage] = deque()
        self.ready = asyncio.Event()
        self.connacked = asyncio.Event()
        self.subscribed = asyncio.Event()

    def close(self, reason: str) -> None:
        super().close(reason)
        self.ready.set()

    def bind(self, client: mqtt.Client) -> None:
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect

    def hold_reading(self) -> bool:
        # Back-pressure: with a full backlog the socket is left unread, and the burst
        # waits in the broker, not in our memory.
        return len(self.inbound) >= 2 * self._settings.batch_max

    def socket_gone(self) -> None:
        self.close(self.reason or "socket closed")

    def _on_connect(
        self,
        client: mqtt.Client,
        _u: object,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _props: object,
    ) -> None:
        self.packets += 1
        if reason_code.is_failure:
            self.close(f"broker refused the connection ({reason_code})")
            return
        self.connacked.set()
        # On every connect: a broker without persistence has forgotten the session.
        result, mid = client.subscribe(self._settings.subscriptions)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.close(f"cannot subscribe ({mqtt.error_string(result)})")
        else:
            self._sub_mid = mid

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        self.packets += 1
        if mid != self._sub_mid:
            return
        refused = [str(code) for code in codes if code.is_failure]
        if refused:
            self.close(f"broker refused the subscriptions ({', '.join(refused)})")
        else:
            self.subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        self.packets += 1
        self.inbound.append(message)
        self.ready.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason_code: ReasonCode, _p: object
    ) -> None:
        self.packets += 1
        self.close(f"connection lost ({reason_code})")


class MqttReceiver:
    """Receives every line's events and status until cancelled; broker outages are retried."""

    def __init__(self, settings: MqttReceiverSettings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        self.connected = False
        self.messages = 0  # acknowledged messages
        self.stored = 0  # events newly stored
        self.duplicates = 0
        self.conflicts = 0
        self.refused = 0

    async def run(self) -> None:
        try:
            while True:
                reason = await self._session()
                log.warning("office MQTT link down: %s", reason)
                await asyncio.sleep(self._backoff.next())
        finally:
            self.connected = False

    async def _session(self) -> str:
        s = self._settings
        loop = asyncio.get_running_loop()
        # A fresh client per connection; a persistent session (clean_session off) keeps
        # what the lines publish while this instance is away.
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        conn = _Connection(loop, s)
        misc: asyncio.Task[None] | None = None
        try:
            try:
                rc = await connect(client, s.host, s.port, s.keepalive_s)
            except OSError as exc:
                return f"cannot connect to {s.host}:{s.port}: {exc}"
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return f"cannot connect: {mqtt.error_string(rc)}"
            conn.attach(client)
            misc = asyncio.create_task(keep_alive(client, conn, s.keepalive_s))
            try:
                async with asyncio.timeout(_HANDSHAKE_TIMEOUT_S):
                    await first(conn.connacked.wait(), conn.closed.wait())
            except TimeoutError:
                return f"no CONNACK within {_HANDSHAKE_TIMEOUT_S:g} s"
            if conn.closed.is_set():
                return conn.reason
            self._backoff.reset()
            # Stored from the CONNACK on, not from the SUBACK: resuming a persistent
            # session, the broker may send what it queued for us before the SUBACK, more
            # than our back-pressure reads; waiting for the SUBACK to store them would
            # leave it unread behind them for ever.
            sub_watch = asyncio.create_task(self._subscribed(conn))
            try:
                await self._consume(client, conn)
            finally:
                sub_watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sub_watch
            return conn.reason
        finally:
            self.connected = False
            if misc is not None:
                misc.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await misc
            if not conn.closed.is_set():
                with contextlib.suppress(Exception):
                    client.disconnect()
                    client.loop_write()
            client.reinitialise()  # closes the socket, drops our callbacks

    async def _subscribed(self, conn: _Connection) -> None:
        """``connected`` once the SUBACK came (every line's stream reaches us from then
        on). A connection whose SUBACK does not come while nothing else does either (a
        broker that took it and went silent) is closed; packets still arriving (a queued
        backlog ahead of the SUBACK), or messages still to store (the silence is ours),
        are progress."""
        seen = -1
        while not conn.subscribed.is_set() and not conn.closed.is_set():
            if conn.packets == seen and not conn.inbound:
                conn.close(f"no SUBACK within {_HANDSHAKE_TIMEOUT_S:g} s")
                return
            seen = conn.packets
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_HANDSHAKE_TIMEOUT_S):
                    await first(conn.subscribed.wait(), conn.closed.wait())
        if conn.subscribed.is_set() and not conn.closed.is_set():
            self.connected = True
            s = self._settings
            log.info("office MQTT link up: %s:%s as %s", s.host, s.port, s.client_id)

    async def _consume(self, client: mqtt.Client, conn: _Connection) -> None:
        while not conn.closed.is_set():
            await conn.ready.wait()
            conn.ready.clear()
            while conn.inbound and not conn.closed.is_set():
                batch = [
                    conn.inbound.popleft()
                    for _ in range(min(len(conn.inbound), self._settings.batch_max))
                ]
                await self._store_until_done(batch, conn)
                if conn.closed.is_set():
                    return  # unacknowledged: the broker sends them again
                for message in batch:  # in the order received, as MQTT asks
                    if message.qos > 0:
                        client.ack(message.mid, message.qos)
                self.messages += len(batch)
                conn.resume(client)

    async def _store_until_done(self, batch: list[mqtt.MQTTMessage], conn: _Connection) -> None:
        backoff = Backoff(self._settings.backoff_initial_s, self._settings.backoff_max_s)
        while not conn.closed.is_set():
            try:
                await self._store_batch(batch)
                return
            except StoreUnavailable as exc:
                log.warning(
                    "store unavailable, %d messages wait unacknowledged: %s", len(batch), exc
                )
                await asyncio.sleep(backoff.next())

    async def _store_batch(self, batch: list[mqtt.MQTTMessage]) -> None:
        """Store what the batch carries: refusals first (recorded), then each line's
        envelopes in one call."""
        by_line: dict[str, list[tuple[Envelope, str]]] = {}
        statuses: dict[str, Status] = {}
        for message in batch:
            payload = bytes(message.payload)
            found = topic_gateway(message.topic)
            if found is None:
                await self._refuse(
                    None, RejectKind.MALFORMED, f"not a line's topic: {message.topic}", payload
                )
                continue
            gateway_id, suffix = found
            if suffix == OUT_STATUS:
                await self._status(gateway_id, payload, statuses)
                continue
            if suffix != OUT_EVENTS:
                await self._refuse(
                    gateway_id,
                    RejectKind.MALFORMED,
                    f"not an office topic: {message.topic}",
                    payload,
                )
                continue
            sorted_ = sort_payload(payload, gateway_id, self._settings.max_payload_bytes)
            for refusal in sorted_.refused:
                await self._refuse(
                    refusal.claimed_gateway_id, refusal.kind, refusal.reason, refusal.payload
                )
            by_line.setdefault(gateway_id, []).extend(sorted_.accepted)
        for gateway_id, status in statuses.items():
            await self._store.set_status(gateway_id, status.model_dump(mode="json"))
        for gateway_id, envelopes in by_line.items():
            if envelopes:
                added = await self._store.add_events(gateway_id, envelopes, "mqtt")
                self.stored += added.new
                self.duplicates += added.duplicates
                self.conflicts += added.conflicts

    async def _status(self, gateway_id: str, payload: bytes, statuses: dict[str, Status]) -> None:
        try:
            status = Status.model_validate_json(payload)
        except ValidationError as exc:
            await self._refuse(
                gateway_id,
                RejectKind.MALFORMED,
                f"not a status document: {exc.errors()[0]['msg']}",
                payload,
            )
            return
        if status.gateway_id != gateway_id:
            reason = f"status claims gateway {status.gateway_id}, sent on {gateway_id}'s topic"
            await self._refuse(status.gateway_id, RejectKind.FOREIGN, reason, payload)
            return
        statuses[gateway_id] = status  # the latest of the batch wins

    async def _refuse(
        self, claimed: str | None, kind: RejectKind, reason: str, payload: bytes
    ) -> None:
        log.warning("refused (%s): %s", claimed, reason)
        await self._store.reject("mqtt", claimed, reason, payload, kind=kind)
        self.refused += 1
