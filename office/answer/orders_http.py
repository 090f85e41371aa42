"""Customer service's lookup over HTTP: JSON for programs and server-rendered pages for
people, one policy (LOOKUP), one reading of the order view.

- ``GET /v1/orders?q=...``: orders whose id starts with ``q`` or whose customer reference
  is (or starts with) ``q``, across lines, newest first, at most ``SEARCH_LIMIT``.
- ``GET /v1/orders/{order_id}``: the order on every line that has it; 404 when none does.
- ``GET /orders`` (a search box and results) and ``GET /orders/{order_id}`` (the order).

``POST /v1/orders`` (the shops' feed, office/feed/http.py) shares the path: a Starlette
route matches method and path, so the two never take each other's requests.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from office.access import Gate, Policy, Principal
from office.answer.orders_read import SEARCH_LIMIT, Found, Hit, Stage, Status, find, search
from office.i18n import t
from office.store import Store, StoreUnavailable
from office.web import Pages

__all__ = ["EVENT_WORDS", "STAGE_WORDS", "STATUS_WORDS", "order_routes"]

MAX_QUERY = 200  # longer than any order id or platform reference

STAGE_WORDS: dict[Stage, str] = {
    Stage.WAITING_MATERIAL: t("Waiting for material"),
    Stage.QUEUED: t("Queued"),
    Stage.IN_PROCESS: t("In production"),
    Stage.PACKING: t("Packing"),
    Stage.COMPLETED: t("Completed"),
    Stage.CANCELLED: t("Cancelled"),
}
STATUS_WORDS: dict[Status, str] = {
    Status.SENT: t("Sent to the line"),
    Status.ACCEPTED: t("Accepted"),
    Status.REJECTED: t("Rejected by the line"),
    Status.CANCELLED: t("Cancelled"),
    Status.COMPLETED: t("Completed"),
}

# The timeline in words (customer service reads these, not the contract's types); a type
# not named here is shown as it came.
EVENT_WORDS: dict[str, str] = {
    "order.accepted": t("Accepted by the line"),
    "order.rejected": t("Rejected by the line"),
    "order.cancelled": t("Cancelled"),
    "order.progress": t("Progress reported"),
    "order.completed": t("Packed and complete"),
    "order.costed": t("Cost worked out"),
    "workorder.created": t("Work order created"),
    "task.dispatched": t("Task given to a station"),
    "task.started": t("Task started"),
    "task.completed": t("Task done"),
    "task.failed": t("Task failed"),
    "quality.checked": t("Quality check"),
    "defect.recorded": t("Defect recorded"),
    "material.consumed": t("Material used"),
    "material.shortage": t("Material short"),
    "material.requested": t("Material requested from the warehouse"),
    "label.printed": t("Label printed"),
    "unit.completed": t("Unit finished"),
}


def order_routes(store: Store, gate: Gate, pages: Pages, timezone: str) -> list[BaseRoute]:
    """``timezone``: the site's (``[site] timezone``), in which the pages show times."""
    end = _Lookup(store, gate, pages, ZoneInfo(timezone))
    return [
        Route("/v1/orders", end.search_json, methods=["GET"]),
        Route("/v1/orders/{order_id}", end.one_json, methods=["GET"]),
        Route("/orders", end.search_page, methods=["GET"]),
        Route("/orders/{order_id}", end.one_page, methods=["GET"]),
    ]


def _unavailable() -> JSONResponse:
    return JSONResponse(
        {"error": "the office's store is unavailable; try again"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


class _Lookup:
    def __init__(self, store: Store, gate: Gate, pages: Pages, zone: ZoneInfo) -> None:
        self._store = store
        self._gate = gate
        self._pages = pages
        self._zone = zone
        self._found = TypeAdapter(Found)
        self._hits = TypeAdapter(list[Hit])

    async def _search(self, q: str) -> list[Hit]:
        async with self._store.read() as conn:
            return await search(conn, q[:MAX_QUERY])

    async def _find(self, order_id: str) -> Found | None:
        async with self._store.read() as conn:
            return await find(conn, order_id[:MAX_QUERY])

    # -- JSON ---------------------------------------------------------------------------

    async def search_json(self, request: Request) -> Response:
        admitted = await self._gate.admit(request, Policy.LOOKUP)
        if isinstance(admitted, Response):
            return admitted
        q = request.query_params.get("q", "").strip()
        if not q:
            return JSONResponse(
                {"error": "q: an order id (or its start) or a customer reference"},
                status_code=400,
            )
        try:
            hits = await self._search(q)
        except StoreUnavailable:
            return _unavailable()
        return JSONResponse(
            {
                "q": q,
                "limit": SEARCH_LIMIT,
                "more": len(hits) >= SEARCH_LIMIT,
                "orders": self._hits.dump_python(hits, mode="json"),
            }
        )

    async def one_json(self, request: Request) -> Response:
        admitted = await self._gate.admit(request, Policy.LOOKUP)
        if isinstance(admitted, Response):
            return admitted
        order_id = request.path_params["order_id"]
        try:
            found = await self._find(order_id)
        except StoreUnavailable:
            return _unavailable()
        if found is None:
            return JSONResponse(
                {
                    "error": f"no line has reported order {order_id}",
                    "hint": "GET /v1/orders?q=... finds an order by the start of its id or "
                    "by the customer's reference",
                },
                status_code=404,
            )
        return JSONResponse(self._found.dump_python(found, mode="json"))

    # -- pages --------------------------------------------------------------------------

    def _local(self, moment: datetime | None) -> str:
        return moment.astimezone(self._zone).strftime("%Y-%m-%d %H:%M") if moment else ""

    def _render(
        self,
        request: Request,
        principal: Principal,
        template: str,
        context: dict[str, object],
        status: int = 200,
    ) -> Response:
        words = {
            "stage_words": {s.value: w for s, w in STAGE_WORDS.items()},
            "status_words": {s.value: w for s, w in STATUS_WORDS.items()},
            "event_words": EVENT_WORDS,
            "local": self._local,
            "timezone": self._zone.key,
        }
        return self._pages.render(request, principal, template, {**words, **context}, status)

    async def search_page(self, request: Request) -> Response:
        admitted = await self._gate.admit(request, Policy.LOOKUP)
        if isinstance(admitted, Response):
            return admitted
        q = request.query_params.get("q", "").strip()[:MAX_QUERY]
        try:
            hits = await self._search(q) if q else []
        except StoreUnavailable:
            return self._render(request, admitted, "orders.html", {"q": q, "hits": [],
                                "unavailable": True, "limit": SEARCH_LIMIT}, 503)  # fmt: skip
        context: dict[str, object] = {
            "q": q,
            "hits": hits,
            "unavailable": False,
            "limit": SEARCH_LIMIT,
        }
        return self._render(request, admitted, "orders.html", context)

    async def one_page(self, request: Request) -> Response:
        admitted = await self._gate.admit(request, Policy.LOOKUP)
        if isinstance(admitted, Response):
            return admitted
        order_id = request.path_params["order_id"]
        try:
            found = await self._find(order_id)
        except StoreUnavailable:
            found, status = None, 503
        else:
            status = 200 if found is not None else 404
        context: dict[str, object] = {"order_id": order_id, "found": found, "status": status}
        return self._render(request, admitted, "order.html", context, status)
