"""The readers' end: ``GET /v1/lines`` (each line as the office holds it) and
``GET /metrics`` (Prometheus), for a reader's bearer token (``[[readers]]`` in
office.toml) or a person allowed to (office.access). A line's token does not open them: a
line speaks for itself only, and these tell of every line."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from office.access import Gate, Policy
from office.report.gaps import GapWatch
from office.report.metrics import OfficeMetrics
from office.store import Store, StoreUnavailable

__all__ = ["report_routes"]


def report_routes(
    store: Store, gate: Gate, metrics: OfficeMetrics, gaps: GapWatch | None = None
) -> list[BaseRoute]:
    ends = _Ends(store, gate, metrics, gaps)
    return [
        Route("/v1/lines", ends.lines, methods=["GET"]),
        Route("/metrics", ends.metrics, methods=["GET"]),
    ]


class _Ends:
    def __init__(
        self,
        store: Store,
        gate: Gate,
        metrics: OfficeMetrics,
        gaps: GapWatch | None,
    ) -> None:
        self._store = store
        self._gate = gate
        self._metrics = metrics
        self._gaps = gaps

    async def lines(self, request: Request) -> Response:
        admitted = await self._gate.admit(request, Policy.BOARD)
        if isinstance(admitted, Response):
            return admitted
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
        admitted = await self._gate.admit(request, Policy.METRICS)
        if isinstance(admitted, Response):
            return admitted
        await self._metrics.refresh()
        return Response(generate_latest(self._metrics.registry), media_type=CONTENT_TYPE_LATEST)
