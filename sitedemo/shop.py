"""The simulated shop: it gives the office each line's catalog and sends it orders, one
``POST /v1/orders`` each, with its shop token; the office picks the line.

Orders are placed on the lines' clock (the demo's lines run ×speed from a shift's start):
``ShopClock`` follows it from the time a line's status carried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from simulators.orders import GeneratedOrder, OrderStream, generate_orders

__all__ = ["Sent", "ShopClock", "SimulatedShop"]

JsonDoc = dict[str, Any]


@dataclass
class ShopClock:
    """The lines' clock: ``anchor`` (a line's time) at ``at`` (monotonic), running ×speed."""

    anchor: datetime
    speed: float
    at: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        return self.anchor + timedelta(seconds=(time.monotonic() - self.at) * self.speed)


class OfficeClock:
    """The office's clock in the demo: real time until the lines are up, then the lines'
    (a line's time when anchored, running ×speed), so that "the last hour", "today" and
    "unanswered for 10 minutes" on the office's pages mean the lines' hours."""

    def __init__(self, speed: float) -> None:
        self._speed = speed
        self._anchor: ShopClock | None = None

    def anchor(self, line_time: datetime) -> None:
        self._anchor = ShopClock(line_time, self._speed)

    def __call__(self) -> datetime:
        return self._anchor.now() if self._anchor is not None else datetime.now(UTC)


@dataclass(frozen=True)
class Sent:
    """One order and what the office answered."""

    order_id: str
    status: int
    result: str  # "taken", "already taken", "invalid", ...
    line: str | None
    reason: str | None


class SimulatedShop:
    def __init__(
        self,
        client: httpx.AsyncClient,
        office_url: str,
        token: str,
        catalog: JsonDoc,
        stock: JsonDoc,
        seed: int,
    ) -> None:
        self._client = client
        self._url = office_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self.catalog = catalog
        self._stock = stock
        self._seed = seed
        self._stream: OrderStream | None = None
        self._numbered = 0
        self.sent: list[Sent] = []

    async def put_catalog(self, gateway_id: str) -> None:
        """The line's catalog to the office: kept for routing, published retained to the
        line."""
        response = await self._client.put(
            f"{self._url}/v1/masterdata/catalog",
            params={"line": gateway_id},
            json=self.catalog,
            headers=self._headers,
        )
        response.raise_for_status()

    def first_batch(self, count: int, now: datetime) -> list[GeneratedOrder]:
        """``count`` good orders placed at ``now`` (the shop's share of bad ones is the
        office's and the lines' business, not this demo's verdict)."""
        orders = generate_orders(
            self.catalog, self._stock, count=count, now=now, seed=self._seed, bad_rate=0.0
        )
        self._numbered = count
        return orders

    def next_order(self, now: datetime) -> GeneratedOrder:
        if self._stream is None:
            self._stream = OrderStream(
                self.catalog,
                self._stock,
                now=now,
                seed=self._seed,
                bad_rate=0.0,
                first_number=self._numbered + 1,
            )
        return self._stream.next(now)

    async def send(self, order: GeneratedOrder) -> Sent:
        response = await self._client.post(
            f"{self._url}/v1/orders", content=order.payload, headers=self._headers
        )
        answer = _json(response)
        sent = Sent(
            order_id=order.order_id,
            status=response.status_code,
            result=str(answer.get("result", answer.get("error", "?"))),
            line=_text(answer.get("line")),
            reason=_text(answer.get("reason", answer.get("error"))),
        )
        self.sent.append(sent)
        return sent


def _json(response: httpx.Response) -> JsonDoc:
    try:
        doc = response.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
