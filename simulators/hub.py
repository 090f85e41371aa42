"""A simulated hub: master data and order waves out, every event in, checked, stock refilled.

The hub counts what it released itself. On a broker another hub may publish orders (and
master data) for the same line: the gateway's events about those orders are counted
apart, as neither this hub's success nor its failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.contract import (
    IN_CANCEL,
    IN_CATALOG,
    IN_ORDERS,
    IN_STOCK,
    OUT_EVENTS,
    OUT_STATUS,
    topic_prefix,
)
from cloud_sync.memory import MemoryHub
from simulators.orders import GeneratedOrder, JsonDict, OrderStream

log = logging.getLogger(__name__)

# How long one wait of the in-memory pump lasts before it simply waits again.
_MEMORY_WAIT_S = 3600.0
MASTERDATA_TOPICS = (IN_CATALOG, IN_STOCK)
# Marks the stock snapshots a simulated hub publishes (the contract keeps extra fields), so
# that it knows its own, from this run or an earlier one, when the broker hands them back.
# Not the catalog: the gateway keeps a catalog version's first contents, and a catalog is
# known by them.
PUBLISHER_FIELD = "published_by"
PUBLISHER = "linegate simulated hub"


class HubSink(Protocol):
    """Where a transport hands what the gateway sent, and the master data on the line's
    topics (retained, from this hub or another)."""

    def on_events(self, envelopes: list[JsonDict]) -> None: ...

    def on_status(self, status: JsonDict) -> None: ...

    def on_masterdata(self, topic_suffix: str, payload: bytes) -> None: ...


class HubTransport(Protocol):
    """The hub's side of one transport: publish to the gateway, hear its events."""

    @property
    def name(self) -> str: ...

    async def start(self, sink: HubSink) -> None:
        """Connect and subscribe; return once events will be heard."""
        ...

    def publish(self, topic_suffix: str, payload: bytes, *, retain: bool = False) -> None: ...

    async def stop(self) -> None: ...


class MemoryTransport:
    """The in-memory hub of ``cloud_sync.memory``: no broker, no network."""

    def __init__(self, hub: MemoryHub) -> None:
        self._hub = hub
        self._pump: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return "in-memory hub"

    async def start(self, sink: HubSink) -> None:
        self._pump = asyncio.create_task(self._run(sink))

    def publish(self, topic_suffix: str, payload: bytes, *, retain: bool = False) -> None:
        # The in-memory hub queues everything for its one gateway: retained or not is moot.
        self._hub.publish(topic_suffix, payload)

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None

    async def _run(self, sink: HubSink) -> None:
        hub = self._hub
        seen = 0
        status: JsonDict | None = None
        while True:

            def news(events: list[JsonDict], seen: int = seen, status: object = status) -> bool:
                return len(events) > seen or hub.status is not status

            try:
                await hub.wait_for(news, _MEMORY_WAIT_S)
            except TimeoutError:
                continue
            new = hub.events[seen:]
            seen += len(new)
            if new:
                sink.on_events(list(new))
            if hub.status is not status:
                status = hub.status
                if status is not None:
                    sink.on_status(status)


class MqttTransport:
    """The hub on a real broker: paho-mqtt 2.x, its network thread bridged into the loop."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        line: str,
        *,
        client_id: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._prefix = topic_prefix(site, line)
        self._client_id = client_id or f"linegate-sim-hub-{site}-{line}"
        self._timeout_s = timeout_s
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: HubSink | None = None
        self._subscribed = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._refused: str | None = None
        self.malformed = 0

    @property
    def name(self) -> str:
        return f"MQTT broker {self._host}:{self._port}"

    async def start(self, sink: HubSink) -> None:
        self._loop = asyncio.get_running_loop()
        self._sink = sink
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.on_connect = self._paho_connect
        client.on_subscribe = self._paho_subscribe
        client.on_message = self._paho_message
        client.on_disconnect = self._paho_disconnect
        client.on_connect_fail = self._paho_connect_fail
        self._client = client
        # connect_async: the name lookup and TCP connect happen on paho's thread, not here;
        # paho also reconnects (and on_connect subscribes again) if the broker goes away.
        client.connect_async(self._host, self._port, keepalive=30)
        client.loop_start()
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._subscribed.wait()
        except TimeoutError:
            await self.stop()
            why = self._refused or "no answer"
            raise ConnectionError(
                f"hub: cannot subscribe at {self._host}:{self._port} within "
                f"{self._timeout_s:g} s ({why})"
            ) from None

    def publish(self, topic_suffix: str, payload: bytes, *, retain: bool = False) -> None:
        if self._client is None:
            raise RuntimeError("the hub transport is not started")
        info = self._client.publish(self._prefix + topic_suffix, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning("hub: publish on %s failed: %s", topic_suffix, mqtt.error_string(info.rc))

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._disconnected.clear()
        if client.is_connected():
            client.disconnect()
            # Wait for paho's thread to see its own DISCONNECT, so loop_stop joins at once
            # instead of blocking the event loop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._disconnected.wait()
        client.loop_stop()
        # Closes the socket pair loop_start opened (left to __del__ it may warn).
        client.reinitialise()

    # --- paho's network thread: hop onto the loop, nothing else ---------------------------

    def _hop(self, handler: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(handler, *args)

    def _paho_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._hop(self._set_refused, str(reason_code))
            return
        # Events and the gateway's retained status, both QoS 1; and the master data on
        # the line's topics, to know whether another hub publishes its own.
        client.subscribe(
            [(self._prefix + "out/#", 1), *((self._prefix + t, 1) for t in MASTERDATA_TOPICS)]
        )

    def _paho_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            self._hop(self._set_refused, ", ".join(str(c) for c in reason_codes))
        else:
            self._hop(self._subscribed.set)

    def _paho_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        self._hop(self._on_message, message.topic, bytes(message.payload))

    def _paho_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._hop(self._set_unreachable)

    def _paho_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._hop(self._disconnected.set)

    # --- the loop's thread ----------------------------------------------------------------

    def _set_refused(self, why: str) -> None:
        self._refused = why
        log.warning("hub: the broker refused: %s", why)

    def _set_unreachable(self) -> None:
        # paho retries by itself; only the reason is kept, for the error if it never works.
        self._refused = "cannot connect: is the broker running?"

    def _on_message(self, topic: str, payload: bytes) -> None:
        sink = self._sink
        if sink is None or not topic.startswith(self._prefix):
            return
        suffix = topic[len(self._prefix) :]
        if suffix in MASTERDATA_TOPICS:
            sink.on_masterdata(suffix, payload)
            return
        try:
            doc = json.loads(payload)
        except ValueError:
            self.malformed += 1
            log.error("hub: %s carried %d bytes that are not JSON", suffix, len(payload))
            return
        if suffix == OUT_EVENTS:
            items = doc if isinstance(doc, list) else [doc]
            sink.on_events([e for e in items if isinstance(e, dict)])
        elif suffix == OUT_STATUS and isinstance(doc, dict):
            sink.on_status(doc)


class Source(StrEnum):
    """Who publishes a kind of master data for the line."""

    THIS_HUB = "this hub"
    OTHER_HUB = "another hub"


@dataclass
class HubCounters:
    """What the hub has sent and heard; ``gaps`` must end at 0.

    The order counts are of the orders this hub released; ``other_*`` count the orders it
    did not release (another hub's on the same broker, or an earlier run's on a kept
    database), which are neither its successes nor its failures."""

    released: int = 0
    released_good: int = 0
    released_bad: int = 0
    streamed: int = 0  # of ``released``: those released one by one after the first batch
    accepted: int = 0
    rejected: int = 0
    rejection_codes: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    on_time: int = 0
    cancelled: int = 0
    other_accepted: int = 0
    other_rejected: int = 0
    other_rejection_codes: Counter[str] = field(default_factory=Counter)
    other_completed: int = 0
    other_cancelled: int = 0
    events_received: int = 0  # every envelope heard, duplicates included
    duplicates: int = 0  # envelopes whose seq was heard before (allowed: at-least-once)
    first_seq: int = 1  # the first seq this hub is to hear (1 for a new gateway database)
    max_seq: int = 0
    unique: int = 0
    shortages: int = 0
    replenishments: int = 0
    rework: int = 0
    scrap: int = 0
    malformed: int = 0  # envelopes without a usable seq

    @property
    def gaps(self) -> int:
        """Seqs from ``first_seq`` up to the highest heard that never arrived."""
        return max(0, self.max_seq - self.first_seq + 1 - self.unique)

    @property
    def other_orders(self) -> int:
        """Events heard about orders this hub did not release."""
        return (
            self.other_accepted + self.other_rejected + self.other_completed + self.other_cancelled
        )


class SimulatedHub:
    """The office side of one line, over any :class:`HubTransport`.

    Publishes the catalog and the stock snapshot (retained), waits for the gateway to be
    online, then releases ``orders`` in waves ``wave_interval_s`` of simulated time apart;
    with a ``stream`` and a ``pace_per_h``, it then goes on releasing one order at a time,
    about ``pace_per_h`` an hour of simulated time, until cancelled.
    Every event is checked for its seq (no gap, duplicates counted and dropped); a
    ``material.shortage`` makes the WMS send a new snapshot with more of that material after
    ``replenish_lead_s`` of simulated time.

    With ``defer_masterdata`` another hub's master data wins (a hub that sends its orders
    to the demo's line): what the broker holds retained ``masterdata_grace_s`` after this
    hub subscribed is left in place, and what comes later is taken up. Another hub's
    catalog is then what ``catalog`` holds (``on_catalog`` hears it); another hub's stock
    means its WMS refills, not this one.
    """

    def __init__(
        self,
        transport: HubTransport,
        *,
        catalog: JsonDict,
        stock: JsonDict,
        orders: Sequence[GeneratedOrder],
        clock_now: Callable[[], datetime],
        speed: float = 1.0,
        waves: int = 3,
        wave_interval_s: float = 600.0,
        replenish_lead_s: float = 300.0,
        first_seq: int = 1,
        stream: OrderStream | None = None,
        pace_per_h: float = 0.0,
        seed: int = 0,
        defer_masterdata: bool = False,
        masterdata_grace_s: float = 1.0,
        on_catalog: Callable[[JsonDict], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if pace_per_h < 0:
            raise ValueError("pace_per_h must be 0 or more")
        self.transport = transport
        self.catalog = catalog
        self._own_catalog = catalog
        self.orders = list(orders)
        self.counters = HubCounters(first_seq=first_seq)
        self.done = asyncio.Event()  # every released good order is completed, none to come
        self.ready = asyncio.Event()  # the master data is settled (published or left)
        self.online = asyncio.Event()
        self.gateway_state: str | None = None
        self.catalog_source = Source.THIS_HUB
        self.stock_source = Source.THIS_HUB
        self.on_catalog = on_catalog
        self.expected_rejections: Counter[str] = Counter()
        self.rejected_good: list[str] = []  # good orders the gateway rejected: a bug
        self.accepted_bad: list[str] = []  # bad orders the gateway accepted: a bug
        self.wrong_rejections: list[str] = []  # bad orders rejected without their code
        self._now = clock_now
        self._speed = speed
        self._waves = max(1, waves)
        self._wave_interval_s = wave_interval_s
        self._lead_s = replenish_lead_s
        self._stream = stream if pace_per_h > 0 else None
        self._pace_per_h = pace_per_h
        self._arrivals = random.Random(f"arrivals/{seed}")
        self._defer = defer_masterdata
        self._grace_s = masterdata_grace_s
        self._told_other = False
        self._seen: set[int] = set()
        self._own: set[str] = set()  # every order id this hub released
        self._good: set[str] = set()
        self._bad: dict[str, str] = {}  # a bad order's id -> the code it must provoke
        # Bad orders whose id the gateway cannot read (not JSON): their rejections come
        # without an order id, and as many such rejections are this hub's.
        self._anonymous = 0
        self._completed: set[str] = set()
        self._released_all = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._lot_tracked = _lot_tracking(catalog)
        # The WMS view: what the snapshot held, less what the line reported consumed, plus
        # what was brought in since. Keys are (material, lot or "").
        self._items: dict[tuple[str, str], JsonDict] = {}
        for item in stock["items"]:
            key = (item["material"], item.get("lot") or "")
            if key in self._items:
                self._items[key]["qty"] += item["qty"]
            else:
                self._items[key] = dict(item)
        self._initial = {
            m: sum(float(i["qty"]) for (mat, _), i in self._items.items() if mat == m)
            for m, _ in self._items
        }
        self._consumed: dict[tuple[str, str], float] = {}
        self._pending: dict[str, float] = {}  # material -> qty required, refill scheduled
        self._refills = 0

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled."""
        await self.transport.start(self)
        try:
            if self._defer:
                # A broker hands its retained messages right after the subscription: what
                # another hub left there by now is what the gateway would get.
                await asyncio.sleep(self._grace_s)
            self.publish_masterdata()
            self.ready.set()
            await self.online.wait()
            await self._release_waves()
            await self._release_stream()
            await asyncio.Future()  # keep hearing events until cancelled
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.transport.stop()

    def publish_masterdata(self) -> None:
        """The catalog and the stock, retained; each only while this hub is its source."""
        if self.catalog_source is Source.THIS_HUB:
            self.transport.publish(IN_CATALOG, _dump(self.catalog), retain=True)
        if self.stock_source is Source.THIS_HUB:
            self._publish_stock(self.stock_snapshot())

    def _publish_stock(self, snapshot: JsonDict) -> None:
        payload = _dump({**snapshot, PUBLISHER_FIELD: PUBLISHER})
        self.transport.publish(IN_STOCK, payload, retain=True)

    @property
    def streaming(self) -> bool:
        """Orders keep coming after the first batch, until the hub is cancelled."""
        return self._stream is not None

    async def _release_waves(self) -> None:
        orders = self.orders
        if not orders:
            self._released_all = not self.streaming
            return
        sizes = _wave_sizes(len(orders), self._waves)
        start = 0
        for i, size in enumerate(sizes):
            if i:
                await asyncio.sleep(self._wave_interval_s / self._speed)
            wave = orders[start : start + size]
            start += size
            # The first wave one message per order, later ones as arrays (the contract allows
            # both; one bad order in an array must not reject the others).
            self.release(wave, as_array=i > 0)
            log.info("hub: wave %d of %d: %d orders released", i + 1, len(sizes), len(wave))
        self._released_all = not self.streaming
        self._check_done()

    async def _release_stream(self) -> None:
        stream = self._stream
        if stream is None:
            return
        mean_s = 3600.0 / self._pace_per_h
        while True:
            # Steady but not a metronome: within half the mean either way.
            await asyncio.sleep(self._arrivals.uniform(0.5, 1.5) * mean_s / self._speed)
            self.counters.streamed += 1
            self.release([stream.next(self._now())])

    def release(self, orders: Sequence[GeneratedOrder], *, as_array: bool = False) -> None:
        """Publish orders on ``in/orders`` now."""
        batch: list[JsonDict] = []
        for order in orders:
            self.counters.released += 1
            self._own.add(order.order_id)
            if order.good:
                self.counters.released_good += 1
                self._good.add(order.order_id)
            else:
                self.counters.released_bad += 1
                assert order.expected_error is not None
                self.expected_rejections[order.expected_error] += 1
                if order.doc is None or not isinstance(order.doc.get("order_id"), str):
                    self._anonymous += 1
                else:
                    self._bad[order.order_id] = order.expected_error
            if as_array and order.doc is not None:
                batch.append(order.doc)
            else:
                self.transport.publish(IN_ORDERS, order.payload)
        if batch:
            self.transport.publish(IN_ORDERS, _dump(batch))

    def cancel(self, order_id: str, reason: str) -> None:
        self.transport.publish(IN_CANCEL, _dump({"order_id": order_id, "reason": reason}))

    # -- what the gateway sends --------------------------------------------------------------

    def on_status(self, status: JsonDict) -> None:
        state = status.get("state")
        self.gateway_state = state if isinstance(state, str) else None
        if state == "online":
            self.online.set()
        else:
            self.online.clear()

    def on_events(self, envelopes: list[JsonDict]) -> None:
        c = self.counters
        for env in envelopes:
            c.events_received += 1
            seq = env.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                c.malformed += 1
                continue
            if seq < c.first_seq:
                continue  # an event of an earlier run that this hub did not start with
            if seq in self._seen:
                c.duplicates += 1
                continue
            self._seen.add(seq)
            c.unique += 1
            c.max_seq = max(c.max_seq, seq)
            self._apply(env)
        self._check_done()

    def _apply(self, env: JsonDict) -> None:
        c = self.counters
        kind = env.get("type")
        data = env.get("data") or {}
        order_id = env.get("order_id")
        if not isinstance(data, dict):
            data = {}
        if kind in _ORDER_OUTCOMES:
            self._order_outcome(kind, order_id if isinstance(order_id, str) else None, data)
        elif kind == "defect.recorded":
            if data.get("disposition") == "scrap":
                c.scrap += 1
            elif data.get("disposition") == "rework":
                c.rework += 1
        elif kind == "material.consumed":
            material, lot, qty = data.get("material"), data.get("lot"), data.get("qty")
            if isinstance(material, str) and isinstance(qty, int | float):
                key = (material, lot or "")
                self._consumed[key] = self._consumed.get(key, 0.0) + float(qty)
        elif kind == "material.shortage":
            c.shortages += 1
            material, required = data.get("material"), data.get("required")
            if isinstance(material, str) and isinstance(required, int | float):
                self._shortage(material, float(required))

    def _order_outcome(self, kind: str, order_id: str | None, data: JsonDict) -> None:
        c = self.counters
        if kind == "order.rejected":
            errors = data.get("errors")
            found = {e.get("code") for e in errors or [] if isinstance(e, dict)}
            codes = {code for code in found if isinstance(code, str)}
            if not self._own_rejection(order_id):
                c.other_rejected += 1
                c.other_rejection_codes.update(codes)
                return
            c.rejected += 1
            c.rejection_codes.update(codes)
            if order_id in self._good:
                self.rejected_good.append(order_id)
            elif order_id in self._bad and self._bad[order_id] not in codes:
                self.wrong_rejections.append(order_id)
            return
        own = order_id is not None and order_id in self._own
        if kind == "order.accepted":
            if not own:
                c.other_accepted += 1
                return
            c.accepted += 1
            if order_id in self._bad:
                self.accepted_bad.append(order_id)
        elif kind == "order.completed":
            if not own:
                c.other_completed += 1
                return
            c.completed += 1
            if data.get("on_time") is True:
                c.on_time += 1
            assert order_id is not None
            self._completed.add(order_id)
        elif own:  # order.cancelled
            c.cancelled += 1
        else:
            c.other_cancelled += 1

    def _own_rejection(self, order_id: str | None) -> bool:
        if order_id is not None:
            return order_id in self._own
        if self._anonymous > 0:
            self._anonymous -= 1
            return True
        return False

    def on_masterdata(self, topic_suffix: str, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return  # an empty payload clears a retained message; the gateway refuses no JSON
        if not isinstance(doc, dict) or doc == self._own_catalog:
            return
        if doc.get(PUBLISHER_FIELD) == PUBLISHER:
            return  # a simulated hub's stock: this one's, now or in an earlier run
        if not self._defer:
            if not self._told_other:
                self._told_other = True
                log.info(
                    "hub: another hub publishes %s on this line; this hub keeps its own",
                    topic_suffix,
                )
            return
        if topic_suffix == IN_CATALOG:
            self._adopt_catalog(doc)
        elif self.stock_source is Source.THIS_HUB:
            self.stock_source = Source.OTHER_HUB
            log.info("hub: another hub sends the stock: its WMS refills the line, not this one")

    def _adopt_catalog(self, doc: JsonDict) -> None:
        try:
            lot_tracked = _lot_tracking(doc)
            for key in ("routings", "skus"):
                if not isinstance(doc[key], list):
                    raise TypeError(f"{key} is not a list")
        except (KeyError, TypeError, AttributeError) as exc:
            # The gateway refuses it too (and keeps its catalog): so does this hub.
            log.warning("hub: another hub's catalog is not usable (%r); kept this one", exc)
            return
        self.catalog = doc
        self.catalog_source = Source.OTHER_HUB
        self._lot_tracked = lot_tracked
        # This hub's WMS holds only what the catalog in force knows.
        self._items = {k: v for k, v in self._items.items() if k[0] in lot_tracked}
        log.info("hub: another hub's catalog %s is in force", doc.get("version"))
        if self.ready.is_set() and self.stock_source is Source.THIS_HUB:
            self._publish_stock(self.stock_snapshot())
        if self.on_catalog is not None:
            self.on_catalog(doc)

    def _check_done(self) -> None:
        if self._released_all and self._good <= self._completed:
            self.done.set()

    @property
    def outstanding(self) -> list[str]:
        """Good orders released and not completed yet."""
        return sorted(self._good - self._completed)

    def missing_seqs(self, limit: int = 10) -> list[int]:
        """The first few seqs below the highest heard that never arrived."""
        out: list[int] = []
        for seq in range(self.counters.first_seq, self.counters.max_seq + 1):
            if seq not in self._seen:
                out.append(seq)
                if len(out) >= limit:
                    break
        return out

    @property
    def rejections_as_expected(self) -> bool:
        """Each bad order rejected once, each with the code it was made to provoke."""
        c = self.counters
        return (
            not self.rejected_good
            and not self.wrong_rejections
            and c.rejected == c.released_bad
            and all(c.rejection_codes[code] >= n for code, n in self.expected_rejections.items())
        )

    # -- the WMS -----------------------------------------------------------------------------

    def _shortage(self, material: str, required: float) -> None:
        if self.stock_source is not Source.THIS_HUB:
            return  # another hub's WMS answers it
        if material in self._pending:
            self._pending[material] += required
            return
        self._pending[material] = required
        task = asyncio.create_task(self._refill_later(material))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refill_later(self, material: str) -> None:
        await asyncio.sleep(self._lead_s / self._speed)
        required = self._pending.pop(material, 0.0)
        if self.stock_source is not Source.THIS_HUB:
            return  # another hub took over the stock meanwhile
        # Enough for what was asked, plus a batch so the next order does not wait again.
        batch = math.ceil(required + max(10.0, 0.25 * self._initial.get(material, 0.0)))
        now = self._now()
        if self._lot_tracked.get(material, False):
            self._refills += 1
            lot = f"{material}-R{now:%y%m%d}{self._refills:02d}"
            item: JsonDict = {"material": material, "lot": lot, "qty": batch}
            if any(i.get("expires") for (m, _), i in self._items.items() if m == material):
                item["expires"] = (now + timedelta(days=365)).date().isoformat()
            self._items[(material, lot)] = item
        else:
            key = (material, "")
            entry = self._items.setdefault(key, {"material": material, "qty": 0})
            entry["qty"] = float(entry["qty"]) + batch
        self.counters.replenishments += 1
        self._publish_stock(self.stock_snapshot(now))
        log.info("hub: WMS brought %d more %s to the line", batch, material)

    def stock_snapshot(self, as_of: datetime | None = None) -> JsonDict:
        """What the WMS holds for the line now: the snapshot the gateway should see."""
        when = as_of or self._now()
        items = []
        for key, item in self._items.items():
            qty = max(0.0, float(item["qty"]) - self._consumed.get(key, 0.0))
            out = {**item, "qty": int(qty) if qty.is_integer() else round(qty, 6)}
            if not key[1]:
                out.pop("lot", None)
            items.append(out)
        return {"kind": "stock", "as_of": when.isoformat(), "items": items}


_ORDER_OUTCOMES = ("order.accepted", "order.rejected", "order.completed", "order.cancelled")


def _lot_tracking(catalog: JsonDict) -> dict[str, bool]:
    """Per material of ``catalog``: whether it is lot-tracked."""
    return {m["material"]: bool(m.get("lot_tracked", False)) for m in catalog["materials"]}


def _wave_sizes(count: int, waves: int) -> list[int]:
    """Half the orders first, the rest spread over the later waves."""
    waves = min(waves, count)
    if waves <= 1:
        return [count]
    first = math.ceil(count / 2)
    rest = count - first
    later = [rest // (waves - 1) + (1 if i < rest % (waves - 1) else 0) for i in range(waves - 1)]
    return [first, *[n for n in later if n]]


def _dump(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
