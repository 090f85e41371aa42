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

from cloud_sync.contract import Cancel
from office.access import Gate, Policy
from office.bodies import read_bounded
from office.feed.csv_orders import CsvError
from office.feed.ledger import Ledger, Outcome, Result
from office.feed.masterdata import MasterdataInvalid, check_masterdata
from office.feed.taking import Taker, reasons
from office.store import RejectKind, Store, StoreUnavailable

__all__ = ["feed_routes", "unroutable_routes"]

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
        Route("/v1/masterdata/{kind}", end.masterdata, methods=["PUT"]),
    ]


def unroutable_routes(ledger: Ledger, gate: Gate) -> list[BaseRoute]:
    """``GET /v1/orders/unroutable``: the orders no line can make yet, with why (for a
    reader's token or a person allowed to look orders up). Before ``/v1/orders/{...}``."""

    async def unroutable(request: Request) -> Response:
        admitted = await gate.admit(request, Policy.LOOKUP)
        if isinstance(admitted, Response):
            return admitted
        try:
            waiting = await ledger.unroutable()
        except StoreUnavailable:
            return _unavailable()
        return JSONResponse({"orders": [w.as_json() for w in waiting]})

    return [Route("/v1/orders/unroutable", unroutable, methods=["GET"])]


def _error(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers or None)


def _unavailable() -> JSONResponse:
    return _error(503, "the office's store is unavailable; try again", **{"Retry-After": "1"})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


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
        self._taker = Taker(store, ledger, now, _VIA)

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
            if _media_type(request) == "text/csv":
                return await self._csv(shop, body, request.query_params.get("line"))
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
                reason = reasons(exc) if isinstance(exc, ValidationError) else str(exc)
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

    async def _csv(self, shop: str, body: bytes, named: str | None) -> Response:
        """A CSV export: each order taken as a JSON one is, answered as an array is."""
        try:
            answers = await self._taker.csv(shop, body, named)
        except CsvError as exc:
            return _error(400, f"CSV: {exc}")
        worst = max(Result(a["result"]).status for a in answers)
        return JSONResponse({"orders": answers}, status_code=worst)

    async def masterdata(self, request: Request) -> Response:
        """``PUT /v1/masterdata/catalog`` (``?line=site/line`` for one line, else every
        line) and ``PUT /v1/masterdata/stock?line=site/line``: the shop's ERP/PIM."""
        kind = request.path_params["kind"]
        shop = self._shop(request)
        try:
            if shop is None:
                await self._store.reject(
                    _VIA, None, "a missing or unknown shop token", b"", kind=RejectKind.AUTH
                )
                return _error(
                    401, "a missing or unknown bearer token", **{"WWW-Authenticate": "Bearer"}
                )
            if kind not in ("catalog", "stock"):
                return _error(404, "master data is catalog or stock")
            named = request.query_params.get("line")
            if named is None and kind == "stock":
                return _error(422, "stock is a line's: name it with ?line=site/line")
            if named is not None and named not in self._ledger.lines:
                return _error(422, f"no line {named} at this office")
            body = await self._body(request)
            if body is None:
                reason = f"body over {self._max} bytes"
                await self._reject(shop, reason, b"", RejectKind.OVERSIZED)
                return _error(413, reason)
            try:
                doc = json.loads(body)
                check_masterdata(doc, kind)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                await self._reject(shop, f"{kind}: not JSON: {exc}", body, RejectKind.MALFORMED)
                return _error(400, f"not JSON: {exc}")
            except MasterdataInvalid as exc:
                await self._reject(shop, f"{kind}: {exc}", body, RejectKind.MALFORMED)
                return JSONResponse(
                    {"error": f"not a {kind} document", "reasons": exc.reasons},
                    status_code=422,
                )
            lines = [named] if named is not None else list(self._ledger.lines)
            changed, moved = await self._ledger.put_masterdata(doc, lines, self._now())
        except StoreUnavailable:
            return _unavailable()
        except ClientDisconnect:
            return _error(400, "the client went away")
        return JSONResponse(
            {
                "kind": kind,
                "lines": [
                    {"line": line, "result": "published" if new else "unchanged"}
                    for line, new in changed.items()
                ],
                "rerouted": [o.as_json() for o in moved],
            }
        )

    async def _body(self, request: Request) -> bytes | None:
        return await read_bounded(request, self._max)

    async def _reject(self, shop: str, reason: str, payload: bytes, kind: RejectKind) -> None:
        await self._taker.reject(shop, reason, payload, kind)

    async def _one(self, shop: str, item: Any, named_query: str | None) -> Outcome:
        return await self._taker.order(shop, item, named_query)
