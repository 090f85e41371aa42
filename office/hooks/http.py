"""The webhooks' HTTP ends.

``GET /v1/hooks/failed`` (Policy.METRICS: a reader's token): what the office gave up
sending (a 4xx, or the attempts spent) and the orders no line answered in time.
``POST /v1/wms/stock?line=site/line`` (Policy.WMS: a WMS's token): the WMS's stock
snapshot for one line (the contract's stock document, ``kind: stock``), kept per line and
published to it retained; malformed: 422 with the reasons, recorded in ``rejected``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from office.access import Gate, Policy, client_of
from office.bodies import read_bounded
from office.feed.masterdata import MasterdataInvalid, check_masterdata, publish_masterdata
from office.hooks import outbox
from office.hooks.unanswered import unanswered
from office.store import RejectKind, Store, StoreUnavailable

__all__ = ["hook_routes"]

_VIA = "wms"


def hook_routes(
    store: Store,
    gate: Gate,
    lines: Sequence[str],
    now: Callable[[], datetime],
    publish: bool,
    max_body_bytes: int = 4 << 20,
) -> list[BaseRoute]:
    """``publish``: the office has a broker: the stock is also queued, retained, for the
    line's topic (without one, the line pulls it over HTTP)."""
    ends = _Ends(store, gate, frozenset(lines), now, publish, max_body_bytes)
    return [
        Route("/v1/hooks/failed", ends.failed, methods=["GET"]),
        Route("/v1/wms/stock", ends.stock, methods=["POST"]),
    ]


def _unavailable() -> JSONResponse:
    return JSONResponse(
        {"error": "the office's store is unavailable; try again"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


class _Ends:
    def __init__(
        self,
        store: Store,
        gate: Gate,
        lines: frozenset[str],
        now: Callable[[], datetime],
        publish: bool,
        max_body_bytes: int,
    ) -> None:
        self._store = store
        self._gate = gate
        self._lines = lines
        self._now = now
        self._publish = publish
        self._max = max_body_bytes

    async def failed(self, request: Request) -> Response:
        admitted = await self._gate.admit(request, Policy.METRICS)
        if isinstance(admitted, Response):
            return admitted
        raw = request.query_params.get("limit", "200")
        limit = min(int(raw), 1000) if raw.isdigit() and int(raw) > 0 else 200
        try:
            async with self._store.transaction() as conn:
                given_up = await outbox.failed(conn, limit)
                late = await unanswered(conn, limit)
        except StoreUnavailable:
            return _unavailable()
        return JSONResponse(
            {"failed": [asdict(f) for f in given_up], "unanswered": [asdict(u) for u in late]}
        )

    async def stock(self, request: Request) -> Response:
        admitted = await self._gate.admit(request, Policy.WMS)
        if isinstance(admitted, Response):
            return admitted
        line = request.query_params.get("line", "")
        try:
            body = await self._body(request)
            if body is None:
                reason = f"body over {self._max} bytes"
                await self._reject(admitted.name, line, reason, b"", RejectKind.OVERSIZED)
                return JSONResponse({"error": reason}, status_code=413)
            reasons, doc = self._check(line, body)
            if doc is None:
                await self._reject(admitted.name, line, "; ".join(reasons), body)
                return JSONResponse({"error": "not a stock snapshot", "reasons": reasons}, 422)
            async with self._store.transaction() as conn:
                changed = await publish_masterdata(
                    conn, line, doc, self._now(), queue=self._publish
                )
                await self._gate.record(
                    conn, admitted, "wms.stock", f"{line} as_of {doc['as_of']}", client_of(request)
                )
        except StoreUnavailable:
            return _unavailable()
        except ClientDisconnect:
            return JSONResponse({"error": "the client went away"}, status_code=400)
        result = "published" if changed else "unchanged"
        return JSONResponse({"result": result, "line": line, "items": len(doc["items"])})

    def _check(self, line: str, body: bytes) -> tuple[list[str], dict[str, Any] | None]:
        reasons = []
        if line not in self._lines:
            reasons.append(
                f"line: {line or '(none)'} is not a line of this office (?line=site/line)"
            )
        try:
            doc = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return [*reasons, f"not JSON: {exc}"], None
        if not isinstance(doc, dict):
            return [*reasons, "the body must be a JSON object (kind: stock)"], None
        try:
            check_masterdata(doc, "stock")
        except MasterdataInvalid as exc:
            reasons += exc.reasons
        return reasons, (doc if not reasons else None)

    async def _body(self, request: Request) -> bytes | None:
        return await read_bounded(request, self._max)

    async def _reject(
        self,
        wms: str,
        line: str,
        reason: str,
        payload: bytes,
        kind: RejectKind = RejectKind.MALFORMED,
    ) -> None:
        claimed = line if line in self._lines else None
        await self._store.reject(_VIA, claimed, f"WMS {wms} stock: {reason}", payload, kind=kind)
