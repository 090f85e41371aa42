"""Publish the feed's outbox to the lines' broker topics, QoS 1, after the commit.

A row is marked published once the broker acknowledged it (PUBACK); a publish that fails
(broker away, no PUBACK in time) leaves the row for the next round, so an order is never
lost and may reach its line twice (the gateway ignores an order revision it already has).
Rows go in their order on one connection (QoS 1 keeps it), so each line sees its orders
and cancels in order.
Master data rows go retained: a line that connects later still gets its catalog and stock.

paho runs no thread of its own: cloud_sync.paho_asyncio drives it from the event loop (as
the receiver and the gateway's hub link), and a PUBACK is an asyncio future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.backoff import Backoff
from cloud_sync.paho_asyncio import PahoConnection, cancel_all, connect, first, keep_alive
from office.feed.ledger import Ledger, Outgoing
from office.store import StoreUnavailable

__all__ = ["Publisher", "PublisherSettings"]

log = logging.getLogger(__name__)

_HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PublisherSettings:
    host: str
    port: int
    client_id: str  # not the receiver's: each connection its own id
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive_s: int = 30
    puback_timeout_s: float = 5.0
    retry_s: float = 1.0  # a failed round is tried again after this long
    batch: int = 100
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0


class _Connection(PahoConnection):
    """The publisher's connection: CONNACK and each PUBACK as a future, on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.connected = asyncio.Event()
        self.acks: dict[int, asyncio.Future[None]] = {}

    def close(self, reason: str) -> None:
        super().close(reason)
        for ack in self.acks.values():
            if not ack.done():
                ack.set_exception(ConnectionError(reason))
        self.acks.clear()

    def bind(self, client: mqtt.Client) -> None:
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect

    def socket_gone(self) -> None:
        self.close(self.reason or "socket closed")

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, reason_code: ReasonCode, _p: object
    ) -> None:
        self.packets += 1
        if reason_code.is_failure:
            self.close(f"broker refused the connection ({reason_code})")
        else:
            self.connected.set()

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, _rc: ReasonCode, _p: object
    ) -> None:
        self.packets += 1
        ack = self.acks.pop(mid, None)
        if ack is not None and not ack.done():
            ack.set_result(None)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason_code: ReasonCode, _p: object
    ) -> None:
        self.packets += 1
        self.close(f"connection lost ({reason_code})")


class Publisher:
    def __init__(
        self, settings: PublisherSettings, ledger: Ledger, now: Callable[[], datetime]
    ) -> None:
        self._s = settings
        self._ledger = ledger
        self._now = now
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        self.published = 0
        self.connected = False

    async def run(self) -> None:
        """Until cancelled; broker outages are retried (the rows wait in the outbox)."""
        try:
            while True:
                reason = await self._session()
                log.info("feed publisher link down: %s", reason)
                await asyncio.sleep(self._backoff.next())
        finally:
            self.connected = False

    async def _session(self) -> str:
        s = self._s
        # A fresh client per connection: paho would resend its own unacked messages on a
        # reconnect, on top of ours (the outbox's unpublished rows go again anyway).
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            reconnect_on_failure=False,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        conn = _Connection(asyncio.get_running_loop())
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                rc = await connect(client, s.host, s.port, s.keepalive_s)
            except OSError as exc:
                return f"cannot connect to {s.host}:{s.port}: {exc}"
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return f"cannot connect: {mqtt.error_string(rc)}"
            conn.attach(client)
            tasks.append(asyncio.create_task(keep_alive(client, conn, s.keepalive_s)))
            try:
                async with asyncio.timeout(_HANDSHAKE_TIMEOUT_S):
                    await first(conn.connected.wait(), conn.closed.wait())
            except TimeoutError:
                return f"no CONNACK within {_HANDSHAKE_TIMEOUT_S:g} s"
            if conn.closed.is_set():
                return conn.reason
            self.connected = True
            self._backoff.reset()
            await self._serve(client, conn)
            return conn.reason
        finally:
            self.connected = False
            await cancel_all(tasks)
            if not conn.closed.is_set():
                conn.close("publisher stopped")
                with contextlib.suppress(Exception):
                    client.disconnect()
                    client.loop_write()
            client.reinitialise()  # closes the socket, drops our callbacks

    async def _serve(self, client: mqtt.Client, conn: _Connection) -> None:
        s = self._s
        while not conn.closed.is_set():
            self._ledger.wake.clear()
            sent = await self._round(client, conn)
            if conn.closed.is_set():
                return
            if sent == s.batch:
                continue  # a full window went: more may wait, at once
            # Woken by a commit; every retry_s after a failure, and now and then anyway
            # (another office instance's commits do not wake this one).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.retry_s if sent is None else s.retry_s * 5):
                    await first(self._ledger.wake.wait(), conn.closed.wait())

    async def _round(self, client: mqtt.Client, conn: _Connection) -> int | None:
        """Publish a window of what is left: how many went, None when not all of them did.

        A window of rows is in flight at once (QoS 1 on one connection keeps their order at
        the broker) and the acknowledged prefix is marked in one commit: a PUBACK round trip
        and a commit per row would bound the feed at a few dozen messages a second."""
        try:
            rows = await self._ledger.unpublished(self._s.batch)
            acked = await self._publish(client, conn, rows)
            await self._ledger.mark_published([row.id for row in rows[:acked]], self._now())
            self.published += acked
        except StoreUnavailable as exc:
            log.warning("feed outbox unavailable: %s", exc)
            return None
        return acked if acked == len(rows) else None

    async def _publish(self, client: mqtt.Client, conn: _Connection, rows: list[Outgoing]) -> int:
        """How many of ``rows``, from the first, the broker acknowledged."""
        loop = asyncio.get_running_loop()
        acks: list[asyncio.Future[None]] = []
        for row in rows:
            if conn.closed.is_set():
                break
            info = client.publish(row.topic, row.payload, qos=1, retain=row.retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                conn.close(f"cannot publish: {mqtt.error_string(info.rc)}")
                break
            # The PUBACK can only be read by a later loop_read(): the future is in place first.
            ack: asyncio.Future[None] = loop.create_future()
            conn.acks[info.mid] = ack
            acks.append(ack)
        done = 0
        try:
            async with asyncio.timeout(self._s.puback_timeout_s):
                for ack in acks:
                    await ack
                    done += 1
        except TimeoutError:
            log.info("feed publish: no PUBACK in time (%d of %d acknowledged)", done, len(rows))
            conn.close("no PUBACK in time")
        except ConnectionError as exc:
            log.info("feed publish failed after %d of %d: %s", done, len(rows), exc)
        finally:
            for ack in acks:
                ack.cancel()  # those never answered: nobody waits for them any more
        return done
