"""Customer service's order lookup over HTTP: ``GET /api/orders?q=…`` finds orders by id,
a unit's serial or the customer's reference; ``GET /api/orders/{order_id}`` tells all about
one (gateway/orderbook/lookup.py). Read-only; any account or token may (policy BOARD).

Registered on the app itself, not through an included router: the gate judges a request
by the template of the route it matches, which an included router's routes do not name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query

from gateway.orderbook.context import LineContext
from gateway.orderbook.lookup import OrderDetail, OrderMatch, find_orders, order_detail
from gateway.planning.planner import LinePlanner
from gateway.web.answers import WebRefused

__all__ = ["add_order_routes"]


def add_order_routes(app: FastAPI, core: LineContext, planner: LinePlanner | None) -> None:
    """Register the lookup's two routes on ``app``."""

    @app.get("/api/orders")
    async def orders(
        q: Annotated[str, Query(min_length=1, max_length=128)],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> list[OrderMatch]:
        """Orders whose id or a unit's serial is ``q``, or whose customer reference,
        destination name or channel starts with it (any case)."""
        return find_orders(core, q, limit)

    @app.get("/api/orders/{order_id}")
    async def order(order_id: str) -> OrderDetail:
        """The order's stage, units and their steps and lots, forecast, parcel, history."""
        found = order_detail(core, planner, order_id)
        if found is None:
            raise WebRefused(
                404,
                "UNKNOWN_ORDER",
                f"This line has no order {order_id}.",
                "Search by the order id, a unit's serial or the customer's reference: "
                "GET /api/orders?q=…",
                zh=(
                    f"本线没有订单 {order_id}。",
                    "请按订单号、产品序列号或客户参考号搜索：GET /api/orders?q=…",
                ),
            )
        return found
