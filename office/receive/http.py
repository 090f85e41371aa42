"""The contract's HTTP transport, the office's end (hub-protocol.md, "HTTP").

``POST /v1/gateways/{site}/{line}/events``: a JSON array of envelopes with the line's
bearer token; the answer is ``{"acked_through": N}``, N the line's held_through (every seq
up to N is stored). Idempotent: a batch sent again is counted as duplicates.

What is refused is also recorded in the store's ``rejected`` table: a missing or unknown
token (401), another line's token (403), a body over the bound (413), a body that is not
JSON or not envelopes (400). An envelope that is invalid or claims another gateway is
refused alone: the rest of the batch is stored, and the answer is 422 naming the refused
seqs, so the gateway's link stops and raises its alarm instead of resending that envelope
for ever (it stays in the gateway's outbox: nothing is lost). The store down: 503 with
Retry-After, nothing acknowledged.

``GET .../orders?after=CURSOR`` and ``GET .../masterdata`` serve what the store holds.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cloud_sync.contract import SEGMENT
from office.bodies import read_bounded
from office.receive.intake import sort_payload
from office.store import RejectKind, Store, StoreUnavailable

__all__ = ["http_app"]

log = logging.getLogger(__name__)

_ROOT = "/v1/gateways/{site}/{line}"


class _TooLarge(Exception):
    pass


def http_app(
    store: Store,
    tokens: Mapping[str, str],
    max_body_bytes: int = 4 << 20,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The office's HTTP end; ``tokens`` maps each bearer token to the one line it speaks for;
    ``extra_routes`` are served beside (the readers' end, office/report/http.py)."""
    ends = _Ends(store, dict(tokens), max_body_bytes)
    return Starlette(
        routes=[
            Route(f"{_ROOT}/events", ends.events, methods=["POST"]),
            Route(f"{_ROOT}/orders", ends.orders, methods=["GET"]),
            Route(f"{_ROOT}/masterdata", ends.masterdata, methods=["GET"]),
            *extra_routes,
        ]
    )


def _error(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers or None)


def _unavailable(exc: StoreUnavailable) -> JSONResponse:
    log.warning("store unavailable: %s", exc)
    return _error(503, "the office's store is unavailable; try again", **{"Retry-After": "1"})


class _Ends:
    def __init__(self, store: Store, tokens: dict[str, str], max_body_bytes: int) -> None:
        self._store = store
        self._tokens = tokens
        self._max = max_body_bytes

    def _token_line(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for known, gateway_id in self._tokens.items():
            # compare_digest for each: how long a refusal takes tells nothing of a token.
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                found = gateway_id
        return found

    async def _authorise(self, request: Request) -> tuple[str, Response | None]:
        """The path's gateway_id, and a refusal when the token does not speak for it."""
        site, line = request.path_params["site"], request.path_params["line"]
        gateway_id = f"{site}/{line}"
        if not (SEGMENT.match(site) and SEGMENT.match(line)):
            return gateway_id, _error(404, "no such line")
        speaks_for = self._token_line(request)
        if speaks_for == gateway_id:
            return gateway_id, None
        if speaks_for is None:
            status, reason = 401, "a missing or unknown bearer token"
        else:
            status, reason = 403, f"the token of {speaks_for} used for {gateway_id}"
        try:
            await self._store.reject(
                "http",
                gateway_id,
                reason,
                f"{request.method} {request.url.path}".encode(),
                kind=RejectKind.AUTH,
            )
        except StoreUnavailable as exc:
            return gateway_id, _unavailable(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return gateway_id, _error(status, reason, **headers)

    async def _body(self, request: Request) -> bytes:
        body = await read_bounded(request, self._max)
        if body is None:
            raise _TooLarge
        return body

    async def events(self, request: Request) -> Response:
        gateway_id, refusal = await self._authorise(request)
        if refusal is not None:
            return refusal
        try:
            body = await self._body(request)
        except _TooLarge:
            reason = f"body over {self._max} bytes"
            return await self._refuse(413, gateway_id, reason, b"", RejectKind.OVERSIZED)
        except ClientDisconnect:
            return _error(400, "the client went away")
        sorted_ = sort_payload(body, gateway_id, self._max)
        if sorted_.malformed:
            [refused] = sorted_.refused
            return await self._refuse(400, gateway_id, refused.reason, body, refused.kind)
        try:
            for refused in sorted_.refused:
                await self._store.reject(
                    "http",
                    refused.claimed_gateway_id,
                    refused.reason,
                    refused.payload,
                    kind=refused.kind,
                )
            conflicting: tuple[tuple[int, str], ...] = ()
            if sorted_.accepted:
                added = await self._store.add_events(gateway_id, sorted_.accepted, "http")
                held, conflicting = added.held_through, added.conflicting
            else:
                line = await self._store.line(gateway_id)
                held = line.held_through if line is not None else 0
        except StoreUnavailable as exc:
            return _unavailable(exc)
        if sorted_.refused or conflicting:
            # A conflict is refused like an invalid envelope: the gateway's link stops and
            # raises its alarm, and its event stays in its outbox (the office keeps its own).
            refused_list = [{"seq": r.seq, "reason": r.reason} for r in sorted_.refused]
            refused_list += [{"seq": seq, "reason": reason} for seq, reason in conflicting]
            return JSONResponse({"acked_through": held, "refused": refused_list}, status_code=422)
        return JSONResponse({"acked_through": held})

    async def _refuse(
        self, status: int, gateway_id: str, reason: str, body: bytes, kind: RejectKind
    ) -> Response:
        try:
            await self._store.reject("http", gateway_id, reason, body, kind=kind)
        except StoreUnavailable as exc:
            return _unavailable(exc)
        return _error(status, reason)

    async def orders(self, request: Request) -> Response:
        gateway_id, refusal = await self._authorise(request)
        if refusal is not None:
            return refusal
        after_text = request.query_params.get("after") or "0"
        if not after_text.isdigit():
            return _error(400, "after must be a cursor this office gave out (digits)")
        try:
            orders, cursor = await self._store.orders_after(gateway_id, int(after_text))
        except StoreUnavailable as exc:
            return _unavailable(exc)
        return JSONResponse({"orders": orders, "cursor": str(cursor)})

    async def masterdata(self, request: Request) -> Response:
        gateway_id, refusal = await self._authorise(request)
        if refusal is not None:
            return refusal
        try:
            docs = await self._store.masterdata(gateway_id)
        except StoreUnavailable as exc:
            return _unavailable(exc)
        return JSONResponse(docs)
