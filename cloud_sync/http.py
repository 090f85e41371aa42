"""The hub link over HTTP(S), for sites where MQTT is not allowed (hub-protocol.md, "HTTP").

- **Events out.** The backlog drains oldest first in batches, with the live events
  committed since carried in each batch ahead of it: ``POST {base}/v1/gateways/
  {site}/{line}/events`` with a JSON array of envelopes, a bearer token and an
  ``Idempotency-Key`` naming the batch's seq range. The hub answers ``{"acked_through": N}``:
  every event up to N is held there and leaves the outbox; the rest of the batch goes
  again. A batch is retried as it is (the POST is idempotent) on a timeout, a connection
  failure, a 5xx or an unreadable answer, after a capped, jittered backoff; on 429 or 503
  after the hub's ``Retry-After``. Any other 4xx is a refusal that retrying cannot fix:
  the link stops sending events (they stay in the outbox, nothing is lost), reports the
  problem (the gateway raises an alarm) and goes on pulling orders; a restart after the
  fix sends them.
- **Orders in.** ``GET .../orders?after={cursor}`` every ``poll_s``, once the first master
  data went in (orders need the catalog); the orders go to the
  sink (which commits them) and only then is the new cursor stored, so a crash in between
  fetches them again (the gateway ignores an order revision it already has).
- **Master data in.** ``GET .../masterdata`` every ``masterdata_poll_s``; a document is
  applied when it differs from the last one applied of its kind.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from cloud_sync.backoff import Backoff
from cloud_sync.contract import topic_prefix
from cloud_sync.ports import InboundMessage, InboundSink, Outbox, OutboxRecord

__all__ = ["HttpLink", "HttpSettings", "LinkState", "MemoryLinkState"]

log = logging.getLogger(__name__)

_RETRY_AFTER_MAX_S = 600.0


class LinkState(Protocol):
    """Where the link keeps what must survive a restart (the orders cursor)."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class MemoryLinkState:
    """A LinkState in memory: for a link whose cursor need not outlive the process (tests,
    benchmarks); the gateway keeps its own in the store."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


@dataclass(frozen=True)
class HttpSettings:
    base_url: str  # https://hub.example/api: the paths of the contract go below it
    site: str
    line: str
    token: str | None = field(default=None, repr=False)  # never in a log line
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    batch_max: int = 500
    timeout_s: float = 10.0
    poll_s: float = 2.0
    masterdata_poll_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    version: str = "0.1.0"

    def __post_init__(self) -> None:
        topic_prefix(self.site, self.line)  # raises ValueError on a bad segment
        if self.batch_max < 1:
            raise ValueError("batch_max must be >= 1")

    @property
    def gateway_id(self) -> str:
        return f"{self.site}/{self.line}"

    @property
    def root(self) -> str:
        return f"{self.base_url.rstrip('/')}/v1/gateways/{self.site}/{self.line}"


class _Refused(Exception):
    """The hub said no in a way retrying cannot change (a 4xx other than 429)."""


class _Retry(Exception):
    """Try again after ``delay`` (None: the backoff's next delay)."""

    def __init__(self, why: str, delay: float | None = None) -> None:
        super().__init__(why)
        self.delay = delay


class HttpLink:
    """Pushes the outbox and pulls orders and master data; see the module docstring."""

    def __init__(
        self,
        settings: HttpSettings,
        state: LinkState,
        on_problem: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self._settings = settings
        self._state = state
        # on_problem(what, problem): "events" or "orders" refused (problem), or taken
        # again (None); the gateway raises and clears an alarm for each.
        self._on_problem = on_problem or (lambda _what, _problem: None)
        self._published = 0
        self._connected = False
        self.refused: str | None = None  # why the hub refused events, until a restart
        self.retries = 0
        self._masterdata_in = asyncio.Event()

    @property
    def connected(self) -> bool:
        """Whether the last request reached the hub and got an answer."""
        return self._connected

    @property
    def published(self) -> int:
        return self._published

    async def run(self, sink: InboundSink, outbox: Outbox) -> None:
        s = self._settings
        headers = {"User-Agent": f"linegate/{s.version}"}
        if s.token is not None:
            headers["Authorization"] = f"Bearer {s.token}"
        async with (
            httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(s.timeout_s),
                verify=self._tls(),
                cert=(s.cert_file, s.key_file) if s.cert_file and s.key_file else None,
            ) as client,
            asyncio.TaskGroup() as tg,
        ):
            tg.create_task(self._push(client, outbox), name="hub push")
            tg.create_task(self._pull_orders(client, sink), name="hub orders")
            tg.create_task(self._pull_masterdata(client, sink), name="hub masterdata")

    def _tls(self) -> ssl.SSLContext | bool:
        s = self._settings
        if not s.verify:
            return False
        if s.ca_file is None:
            return True
        return ssl.create_default_context(cafile=s.ca_file)

    # -- events out -------------------------------------------------------------------------

    async def _push(self, client: httpx.AsyncClient, outbox: Outbox) -> None:
        """Send the outbox: the backlog oldest first, live events beside it.

        Events committed before the link started are the backlog. While it drains, each
        batch also carries the live events committed since (up to a quarter of the
        batch), so a scan made now reaches the hub within a request, not after the whole
        backlog. The hub holds them ahead of the rest (the contract lets it receive events
        out of order) and its ``acked_through`` covers them once the backlog reaches them:
        only then do they leave the outbox. Once the backlog is out, one stream from the
        highest event held; anything the hub still lacks goes again from there."""
        s = self._settings
        backoff = Backoff(s.backoff_initial_s, s.backoff_max_s)
        live_from = outbox.last_seq
        cursor = 0  # every event up to here is held by the hub
        live_cursor = live_from  # the newest live event sent
        early: set[int] = set()  # live events sent ahead, not yet covered by acked_through
        while True:
            live: list[OutboxRecord] = []
            if cursor < live_from:
                live = outbox.peek(live_cursor, max(1, s.batch_max // 4))
                backlog = outbox.peek(cursor, s.batch_max - len(live))
                records = [r for r in backlog if r.seq <= live_from]
                if not records:
                    cursor = live_from  # the backlog is out (acked before a restart)
                    continue
                records += live
            else:
                records = outbox.peek(cursor, s.batch_max)
                if not records:
                    await outbox.wait_for_new(max(cursor, outbox.last_seq))
                    continue
            body = b"[" + b",".join(r.payload for r in records) + b"]"
            key = f"{s.gateway_id}:{records[0].seq}-{records[-1].seq}"
            if live:
                key += f"+{live[0].seq}-{live[-1].seq}"
            try:
                acked_through = await self._post(client, body, key)
            except _Retry as retry:
                self.retries += 1
                delay = retry.delay if retry.delay is not None else backoff.next()
                log.warning("hub events: %s; again in %.1f s", retry, delay)
                await asyncio.sleep(delay)
                continue
            except _Refused as refused:
                self.refused = str(refused)
                log.error("hub refused events: %s; events stay in the outbox", refused)
                self._on_problem("events", f"the hub refused events: {refused}")
                await asyncio.Event().wait()  # no retry of a refusal: until a restart
            first = records[0].seq
            if acked_through < first:
                # It holds none of them (it lost its store?): the same batch again, later.
                self.retries += 1
                delay = backoff.next()
                log.warning(
                    "hub holds only up to %d of %s; again in %.1f s", acked_through, key, delay
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if live:
                live_cursor = live[-1].seq
                early.update(r.seq for r in live)
            held = sorted(
                {r.seq for r in records if r.seq <= acked_through}
                | {q for q in early if q <= acked_through}
            )
            early.difference_update(held)
            outbox.ack(held)
            self._published += len(held)
            self._on_problem("events", None)
            # What the hub does not hold yet goes again, from the first one it lacks.
            cursor = max(
                cursor,
                min(
                    acked_through,
                    records[-1].seq
                    if not live
                    else max(r.seq for r in records if r.seq <= live_from),
                ),
            )

    async def _post(self, client: httpx.AsyncClient, body: bytes, key: str) -> int:
        try:
            answer = await client.post(
                f"{self._settings.root}/events",
                content=body,
                headers={"Content-Type": "application/json", "Idempotency-Key": key},
            )
            data = _json(answer, self._answered)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            self._connected = False
            raise _Retry(f"{type(exc).__name__}: {str(exc) or 'no answer'}") from None
        acked = data.get("acked_through") if isinstance(data, dict) else None
        if not isinstance(acked, int) or isinstance(acked, bool):
            raise _Retry(f"an answer without acked_through ({answer.text[:80]!r})")
        return acked

    def _answered(self) -> None:
        if not self._connected:
            log.info("hub link up (%s)", self._settings.base_url)
        self._connected = True

    # -- orders and master data in ------------------------------------------------------------

    async def _pull_orders(self, client: httpx.AsyncClient, sink: InboundSink) -> None:
        s = self._settings
        backoff = Backoff(s.backoff_initial_s, s.backoff_max_s)
        # Orders need the catalog: the first master data goes in before the first order
        # (over MQTT the broker's retained documents come first the same way).
        await self._masterdata_in.wait()
        while True:
            cursor = self._state.get("hub_orders_cursor")
            try:
                answer = await client.get(
                    f"{s.root}/orders", params={"after": cursor} if cursor else None
                )
                data = _json(answer, self._answered)
                orders = data.get("orders") if isinstance(data, dict) else None
                new_cursor = data.get("cursor") if isinstance(data, dict) else None
                if not isinstance(orders, list):
                    raise _Retry(f"an orders answer without orders ({answer.text[:80]!r})")
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                self._connected = False
                await asyncio.sleep(backoff.next())
                log.debug("hub orders: %s", exc)
                continue
            except _Retry as retry:
                await asyncio.sleep(retry.delay if retry.delay is not None else backoff.next())
                continue
            except _Refused as refused:
                log.error("hub refused the orders request: %s", refused)
                self._on_problem("orders", f"the hub refused the orders request: {refused}")
                await asyncio.sleep(s.backoff_max_s)
                continue
            backoff.reset()
            self._on_problem("orders", None)
            if orders:
                sink.deliver([InboundMessage("in/orders", json.dumps(orders).encode())])
            if isinstance(new_cursor, str) and new_cursor != cursor:
                self._state.set("hub_orders_cursor", new_cursor)
            if not orders:
                await asyncio.sleep(s.poll_s)

    async def _pull_masterdata(self, client: httpx.AsyncClient, sink: InboundSink) -> None:
        s = self._settings
        applied: dict[str, str] = {}
        while True:
            try:
                answer = await client.get(f"{s.root}/masterdata")
                docs = _json(answer, self._answered)
                if not isinstance(docs, list):
                    raise _Retry("master data is not a JSON array")
            except (httpx.TimeoutException, httpx.TransportError, _Retry, _Refused) as exc:
                log.debug("hub master data: %s", exc)
                await asyncio.sleep(min(s.masterdata_poll_s, s.backoff_max_s))
                continue
            for doc in docs:
                kind = doc.get("kind") if isinstance(doc, dict) else None
                raw = json.dumps(doc, sort_keys=True).encode()
                digest = hashlib.sha256(raw).hexdigest()
                if kind in ("catalog", "stock") and applied.get(kind) != digest:
                    sink.deliver([InboundMessage(f"in/masterdata/{kind}", raw)])
                    applied[kind] = digest
            self._masterdata_in.set()
            await asyncio.sleep(s.masterdata_poll_s)


def _json(answer: httpx.Response, answered: Callable[[], None]) -> Any:
    """The answer's JSON, or _Retry / _Refused by its status."""
    status = answer.status_code
    if status in (429, 503):
        answered()
        raise _Retry(f"HTTP {status}", _retry_after(answer.headers.get("Retry-After")))
    if status >= 500:
        answered()
        raise _Retry(f"HTTP {status}")
    if status >= 400:
        answered()
        raise _Refused(f"HTTP {status}: {answer.text[:200]}")
    try:
        data = answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Retry(f"an unreadable answer ({exc})") from None
    answered()
    return data


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), _RETRY_AFTER_MAX_S)
