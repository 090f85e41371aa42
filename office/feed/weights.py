"""What routing weighs, read in the routing transaction: each line's catalog (its SKUs),
its open orders (routed, not closed in its events) and when it will be done with them by
its own ``order.progress`` forecasts. Odd data (a catalog or an event that does not read)
counts as nothing known, never as a failure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.contract import Catalog
from office.feed.routing import free_at
from office.store import schema

__all__ = ["Board", "SkuCache"]


# Parsed catalogs kept by their text: checking a catalog (tens of KiB) against the wire
# model for every routed order was a third of an order's routing time with 20 lines.
SkuCache = dict[str, frozenset[str] | None]
_CACHE_MAX = 256


async def _catalogs(conn: AsyncConnection, cache: SkuCache) -> dict[str, frozenset[str]]:
    """Each line's makeable SKUs, from its catalog document; a catalog that does not read
    as one makes nothing (the line then takes no routed order)."""
    m = schema.masterdata
    rows = (await conn.execute(select(m.c.gateway_id, m.c.doc).where(m.c.kind == "catalog"))).all()
    found: dict[str, frozenset[str]] = {}
    for row in rows:
        doc = str(row.doc)
        if doc not in cache:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            try:
                catalog = Catalog.model_validate_json(doc)
                cache[doc] = frozenset(sku.sku for sku in catalog.skus)
            except ValidationError:
                cache[doc] = None
        skus = cache[doc]
        if skus is not None:
            found[row.gateway_id] = skus
    return found


# Events after which a line no longer works on an order.
_CLOSING = ("order.completed", "order.cancelled", "order.rejected")


@dataclass
class Board:
    """What routing weighs, read in the routing transaction."""

    catalogs: dict[str, frozenset[str]]
    loads: dict[str, int]
    forecasts: dict[str, datetime]

    @classmethod
    async def read(cls, conn: AsyncConnection, cache: SkuCache | None = None) -> Board:
        open_orders = await _open_orders(conn)
        predicted = await _predicted(conn)
        return cls(
            await _catalogs(conn, {} if cache is None else cache),
            {line: len(orders) for line, orders in open_orders.items()},
            free_at(open_orders, predicted),
        )


def _open_query() -> Any:
    """(gateway_id, order_id) of each order routed to a line and not closed in its events."""
    f, e = schema.feed_orders, schema.events
    closed = exists().where(
        and_(
            e.c.gateway_id == f.c.gateway_id,
            e.c.order_id == f.c.order_id,
            e.c.type.in_(_CLOSING),
        )
    )
    return (
        select(f.c.gateway_id, f.c.order_id).where(f.c.gateway_id.is_not(None), ~closed).distinct()
    )


async def _open_orders(conn: AsyncConnection) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in (await conn.execute(_open_query())).all():
        found.setdefault(row[0], set()).add(row[1])
    return found


async def _predicted(conn: AsyncConnection) -> dict[tuple[str, str], datetime | None]:
    """Each open order's ``predicted_completion`` from its latest ``order.progress``
    (highest seq); None when that says null (unplanned) or does not read as a time."""
    e = schema.events
    opened = _open_query().subquery()
    latest = (
        select(e.c.gateway_id, e.c.order_id, func.max(e.c.seq).label("seq"))
        .join(
            opened,
            and_(e.c.gateway_id == opened.c.gateway_id, e.c.order_id == opened.c.order_id),
        )
        .where(e.c.type == "order.progress")
        .group_by(e.c.gateway_id, e.c.order_id)
        .subquery()
    )
    rows = (
        await conn.execute(
            select(e.c.gateway_id, e.c.order_id, e.c.body).join(
                latest, and_(e.c.gateway_id == latest.c.gateway_id, e.c.seq == latest.c.seq)
            )
        )
    ).all()
    return {(row[0], row[1]): _completion(row[2]) for row in rows}


def _completion(body: str) -> datetime | None:
    try:
        value = json.loads(body)["data"]["predicted_completion"]
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except (ValueError, KeyError, TypeError):
        return None
    # A time without its offset cannot be compared with the others: unknown.
    return moment if moment is not None and moment.tzinfo is not None else None
