"""The readers' end: ``GET /v1/lines`` (each line as the office holds it) and
``GET /metrics`` (Prometheus), for a reader's bearer token (``[[readers]]`` in
office.toml). A line's token does not open them: a line speaks for itself only, and these
tell of every line."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from office.report.gaps import GapWatch
from office.report.metrics import OfficeMetrics
from office.store import RejectKind, Store, StoreUnavailable

__all__ = ["report_routes"]


def report_routes(
    store: Store, readers: Mapping[str, str], metrics: OfficeMetrics, gaps: GapWatch | None = None
) -> list[BaseRoute]:
    """``readers`` maps each reader's bearer token to its name."""
    ends = _Ends(store, dict(readers), metrics, gaps)
    return [
        Route("/v1/lines", ends.lines, methods=["GET"]),
        Route("/metrics", ends.metrics, methods=["GET"]),
    ]


class _Ends:
    def __init__(
        self,
        store: Store,
        readers: dict[str, str],
        metrics: OfficeMetrics,
        gaps: GapWatch | None,
    ) -> None:
        self._store = store
        self._readers = readers
        self._metrics = metrics
        self._gaps = gaps

    async def _refused(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = False
        if scheme.lower() == "bearer" and token:
            for known in self._readers:
                # compare_digest for each: how long a refusal takes tells nothing of a token.
                found |= hmac.compare_digest(known.encode(), token.strip().encode())
        if found:
            return None
        reason = "a missing or unknown reader token"
        try:
            payload = f"{request.method} {request.url.path}".encode()
            await self._store.reject("http", None, reason, payload, kind=RejectKind.AUTH)
        except StoreUnavailable:
            pass  # still refused; the store being down is what /metrics reports
        return JSONResponse(
            {"error": reason}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    async def lines(self, request: Request) -> Response:
        refusal = await self._refused(request)
        if refusal is not None:
            return refusal
        try:
            report = await self._store.lines_report()
        except StoreUnavailable:
            return JSONResponse(
                {"error": "the office's store is unavailable; try again"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        lines = []
        for line in report:
            open_gaps = (
                {(g.first, g.last): g for g in self._gaps.open_gaps(line.gateway_id)}
                if self._gaps
                else {}
            )
            gaps = []
            for first, last in line.gaps:
                seen = open_gaps.get((first, last))
                gaps.append(
                    {
                        "first": first,
                        "last": last,
                        "open_since": seen.since.isoformat() if seen else None,
                        "reported": seen.reported if seen else False,
                    }
                )
            lines.append(
                {
                    "gateway_id": line.gateway_id,
                    "held_through": line.held_through,
                    "highest_seq": line.highest_seq,
                    "gaps": gaps,
                    "last_seen": line.last_seen,
                    "status": line.status,
                }
            )
        return JSONResponse({"lines": lines})

    async def metrics(self, request: Request) -> Response:
        refusal = await self._refused(request)
        if refusal is not None:
            return refusal
        await self._metrics.refresh()
        return Response(generate_latest(self._metrics.registry), media_type=CONTENT_TYPE_LATEST)
