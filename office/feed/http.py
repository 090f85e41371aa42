"""``POST /v1/orders``: a shop sends one order (a JSON object) or several (a JSON array),
with its bearer token (``[[shops]]`` in office.toml; a shop speaks for no line).

Each order is answered on its own, in the order sent: taken (its line named), already
taken, a conflict, invalid (the schema's reasons) or unroutable (why no line can make it).
The answer's status is the order's (one object) or the worst of them (an array): 200 all
taken, 409 a conflict, 422 an invalid or unroutable order; the good ones are taken either
way. Conflicts and invalid orders are recorded in ``rejected``; an unroutable order is kept
in the feed's table. A body that is not JSON, or neither an object nor an array: 400.

The line: the order's ``line`` field or the ``line`` query parameter (a gateway id,
``site/line``), else the office picks one (office/feed/routing.py).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cloud_sync.contract import Cancel, Order
from office.feed.ledger import Ledger, Outcome, Result
from office.store import RejectKind, Store, StoreUnavailable

__all__ = ["feed_routes"]

# Orders in one request: a shop's batch, not a bulk import.
MAX_ORDERS = 500
_VIA = "shop"


def feed_routes(
    store: Store,
    ledger: Ledger,
    shops: Mapping[str, str],
    now: Callable[[], datetime],
    max_body_bytes: int = 4 << 20,
) -> list[BaseRoute]:
    """The shops' end; ``shops`` maps each bearer token to its shop's name."""
    end = _OrdersEnd(store, ledger, dict(shops), now, max_body_bytes)
    return [
        Route("/v1/orders", end.post, methods=["POST"]),
        Route("/v1/orders/{order_id}/cancel", end.cancel, methods=["POST"]),
    ]


def _error(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers or None)


def _unavailable() -> JSONResponse:
    return _error(503, "the office's store is unavailable; try again", **{"Retry-After": "1"})


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(order)'}: {err['msg']}" for err in exc.errors()
    )


class _OrdersEnd:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        shops: dict[str, str],
        now: Callable[[], datetime],
        max_body_bytes: int,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._shops = shops
        self._now = now
        self._max = max_body_bytes

    def _shop(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for known, name in self._shops.items():
            # compare_digest for each: how long a refusal takes tells nothing of a token.
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                found = name
        return found

    async def post(self, request: Request) -> Response:
        shop = self._shop(request)
        try:
            if shop is None:
                await self._store.reject(
                    _VIA, None, "a missing or unknown shop token", b"", kind=RejectKind.AUTH
                )
                return _error(
                    401, "a missing or unknown bearer token", **{"WWW-Authenticate": "Bearer"}
                )
            body = await self._body(request)
            if body is None:
                reason = f"body over {self._max} bytes"
                await self._reject(shop, reason, b"", RejectKind.OVERSIZED)
                return _error(413, reason)
            try:
                parsed = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                await self._reject(shop, f"not JSON: {exc}", body, RejectKind.MALFORMED)
                return _error(400, f"not JSON: {exc}")
            single = isinstance(parsed, dict)
            items = [parsed] if single else parsed
            if not isinstance(items, list) or not items or len(items) > MAX_ORDERS:
                reason = f"the body must be an order or an array of 1 to {MAX_ORDERS} orders"
                await self._reject(shop, reason, body, RejectKind.MALFORMED)
                return _error(400, reason)
            named = request.query_params.get("line")
            outcomes = [await self._one(shop, item, named) for item in items]
        except StoreUnavailable:
            return _unavailable()
        except ClientDisconnect:
            return _error(400, "the client went away")
        status = max(o.result.status for o in outcomes)
        if single:
            return JSONResponse(outcomes[0].as_json(), status_code=status)
        return JSONResponse({"orders": [o.as_json() for o in outcomes]}, status_code=status)

    async def cancel(self, request: Request) -> Response:
        """``{"reason": "..."}``: ``in/cancel`` to the line that has the order. MQTT only:
        the contract's HTTP orders feed has no cancel form."""
        shop = self._shop(request)
        order_id = request.path_params["order_id"]
        try:
            if shop is None:
                await self._store.reject(
                    _VIA, None, "a missing or unknown shop token", b"", kind=RejectKind.AUTH
                )
                return _error(
                    401, "a missing or unknown bearer token", **{"WWW-Authenticate": "Bearer"}
                )
            body = await self._body(request)
            try:
                parsed = json.loads(body or b"{}") if body is not None else None
                if not isinstance(parsed, dict):
                    raise ValueError('the body must be {"reason": "..."}')
                cancel = Cancel.model_validate({**parsed, "order_id": order_id})
            except (ValueError, UnicodeDecodeError) as exc:
                reason = _reasons(exc) if isinstance(exc, ValidationError) else str(exc)
                await self._reject(
                    shop, f"cancel of {order_id}: {reason}", body or b"", RejectKind.MALFORMED
                )
                return _error(400, reason)
            if not self._ledger.publish:
                return _error(
                    422,
                    "this office has no broker ([mqtt]): a cancel travels over MQTT only "
                    "(the contract's HTTP orders feed has no cancel form)",
                )
            line = await self._ledger.cancel(cancel.order_id, cancel.reason, self._now())
        except StoreUnavailable:
            return _unavailable()
        except ClientDisconnect:
            return _error(400, "the client went away")
        if line is None:
            return _error(404, f"no line has order {order_id}")
        return JSONResponse({"result": "cancel sent", "order_id": order_id, "line": line})

    async def _body(self, request: Request) -> bytes | None:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max:  # a chunked body, or a lying Content-Length
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _reject(self, shop: str, reason: str, payload: bytes, kind: RejectKind) -> None:
        await self._store.reject(_VIA, None, f"shop {shop}: {reason}", payload, kind=kind)

    async def _one(self, shop: str, item: Any, named_query: str | None) -> Outcome:
        payload = json.dumps(item).encode()
        if not isinstance(item, dict):
            reason = "an order must be a JSON object"
            await self._reject(shop, reason, payload, RejectKind.MALFORMED)
            return Outcome(Result.INVALID, reason=reason)
        doc = {k: v for k, v in item.items() if k != "line"}
        order_id = doc.get("order_id") if isinstance(doc.get("order_id"), str) else None
        named = item.get("line", named_query)
        try:
            order = Order.model_validate(doc)
            if named is not None and not isinstance(named, str):
                raise ValueError("line: must be a gateway id, site/line")
        except (ValidationError, ValueError) as exc:
            reason = _reasons(exc) if isinstance(exc, ValidationError) else str(exc)
            await self._reject(shop, f"order {order_id}: {reason}", payload, RejectKind.MALFORMED)
            return Outcome(Result.INVALID, order_id=order_id, reason=reason)
        outcome = await self._ledger.take(shop, order, doc, named, self._now())
        if outcome.result is Result.CONFLICT:
            await self._reject(
                shop, f"order {order_id}: {outcome.reason}", payload, RejectKind.CONFLICT
            )
        return outcome
