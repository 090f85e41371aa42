"""Taking orders as a shop sent them: one JSON order, or a CSV file's orders, each checked
against the contract and handed to the ledger; what is refused is recorded in
``rejected``. Used by ``POST /v1/orders`` and the watched CSV folder alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cloud_sync.contract import Order
from office.feed.csv_orders import CsvError, read_orders
from office.feed.ledger import Ledger, Outcome, Result
from office.store import RejectKind, Store

__all__ = ["MAX_CSV_ORDERS", "Taker", "reasons"]

# A CSV export is a day's orders, bounded by the body's size too.
MAX_CSV_ORDERS = 5000


def reasons(exc: ValidationError, rows: list[int] | None = None) -> str:
    """Each error where it is: its field, and for a CSV order the row of a line's error."""
    found = []
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(p) for p in loc) or "(order)"
        if rows and len(loc) >= 2 and loc[0] == "lines" and isinstance(loc[1], int):
            if loc[1] < len(rows):
                where = f"row {rows[loc[1]]}: {'.'.join(str(p) for p in loc[2:]) or 'line'}"
        elif rows:
            where = f"rows {', '.join(map(str, rows))}: {where}"
        found.append(f"{where}: {err['msg']}")
    return "; ".join(found)


class Taker:
    def __init__(self, store: Store, ledger: Ledger, now: Callable[[], datetime], via: str) -> None:
        self._store = store
        self._ledger = ledger
        self._now = now
        self._via = via

    async def reject(self, shop: str, reason: str, payload: bytes, kind: RejectKind) -> None:
        await self._store.reject(self._via, None, f"shop {shop}: {reason}", payload, kind=kind)

    async def order(
        self, shop: str, item: Any, named_query: str | None, rows: list[int] | None = None
    ) -> Outcome:
        """One order as sent (its ``line`` field a routing hint); ``rows``: a CSV order's
        row number of each of its lines, for the reasons."""
        payload = json.dumps(item).encode()
        if not isinstance(item, dict):
            reason = "an order must be a JSON object"
            await self.reject(shop, reason, payload, RejectKind.MALFORMED)
            return Outcome(Result.INVALID, reason=reason)
        doc = {k: v for k, v in item.items() if k != "line"}
        order_id = doc.get("order_id") if isinstance(doc.get("order_id"), str) else None
        named = item.get("line", named_query)
        try:
            order = Order.model_validate(doc)
            if named is not None and not isinstance(named, str):
                raise ValueError("line: must be a gateway id, site/line")
        except (ValidationError, ValueError) as exc:
            reason = reasons(exc, rows) if isinstance(exc, ValidationError) else str(exc)
            await self.reject(shop, f"order {order_id}: {reason}", payload, RejectKind.MALFORMED)
            return Outcome(Result.INVALID, order_id=order_id, reason=reason)
        outcome = await self._ledger.take(shop, order, doc, named, self._now())
        if outcome.result is Result.CONFLICT:
            await self.reject(
                shop, f"order {order_id}: {outcome.reason}", payload, RejectKind.CONFLICT
            )
        return outcome

    async def csv(self, shop: str, body: bytes, named: str | None) -> list[dict[str, Any]]:
        """Each order of a CSV file taken on its own: its answer with its ``rows``. Raises
        CsvError (recorded) when the file does not read at all."""
        try:
            orders = read_orders(body)
            if not orders or len(orders) > MAX_CSV_ORDERS:
                raise CsvError(f"the file must hold 1 to {MAX_CSV_ORDERS} orders")
        except CsvError as exc:
            await self.reject(shop, f"CSV: {exc}", body, RejectKind.MALFORMED)
            raise
        answers = []
        for found in orders:
            if found.problems:
                reason = "; ".join(found.problems)
                payload = json.dumps(found.doc, ensure_ascii=False).encode()
                await self.reject(
                    shop, f"order {found.order_id}: {reason}", payload, RejectKind.MALFORMED
                )
                outcome = Outcome(Result.INVALID, order_id=found.order_id, reason=reason)
            else:
                outcome = await self.order(shop, found.doc, named, found.rows)
            answers.append({**outcome.as_json(), "rows": found.rows})
        return answers
