"""The station API: JSON over HTTP for everything an operator does, one path per station.

Every answer carries ``message`` (what happened) and ``next`` (what to do now) in words an
operator understands; a refused action answers 409 with ``code`` and the reason.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.desk.replies import Refused, Reply
from gateway.desk.service import StationService
from gateway.floor.floor import Floor
from gateway.orderbook.alarms import active_alarms
from gateway.orderbook.trace import trace_lot, trace_serial
from gateway.percentiles import percentile
from gateway.planning.planner import LinePlanner


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BadgeBody(_Body):
    badge: str = Field(min_length=1, max_length=64)


class ScanBody(_Body):
    code: str = Field(min_length=1, max_length=256)
    # The AIM symbology identifier, when the terminal's scanner reports one ("]C1" …).
    symbology: str | None = Field(default=None, pattern=r"^\][A-Za-z][0-9A-Za-z]$")


class ReasonBody(_Body):
    reason: str = Field(min_length=1, max_length=200)


class ChecklistBody(_Body):
    item: int | str
    passed: bool


class WeightBody(_Body):
    grams: float = Field(ge=0, le=1_000_000, allow_inf_nan=False)


class ReprintBody(_Body):
    reason: str = Field(min_length=1, max_length=200)
    # Left out: the label printed last at this station.
    label_id: str | None = Field(default=None, min_length=1, max_length=64)


class FailBody(_Body):
    reason: str = Field(min_length=1, max_length=200)
    disposition: str


def _reply(reply: Reply) -> dict[str, Any]:
    return {"ok": reply.ok, "message": reply.message, "next": reply.next, **reply.data}


def create_app(
    service: StationService,
    health: dict[str, Any],
    floor: Floor | None = None,
    planner: LinePlanner | None = None,
) -> FastAPI:
    """The FastAPI application; ``health`` is a live dict the gateway keeps current."""
    durations: deque[float] = deque(maxlen=2000)  # ms of the last operator actions
    app = FastAPI(
        title="linegate station API", docs_url="/api/docs", openapi_url="/api/openapi.json"
    )

    @app.middleware("http")
    async def timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # How long the gateway took to answer (commit included): the number a line lead
        # needs when operators say "the scanner is slow".
        t0 = time.perf_counter()
        response = await call_next(request)
        if request.method == "POST":
            durations.append((time.perf_counter() - t0) * 1000)
        return response

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        return JSONResponse(
            status_code=409,
            content={"ok": False, "code": exc.code, "message": exc.message, "next": exc.next},
        )

    @app.exception_handler(sqlite3.OperationalError)
    async def store_failed(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # Nothing of the action was saved (its transaction rolled back whole).
        full = "full" in str(exc)
        return JSONResponse(
            status_code=503,
            content={
                "ok": False,
                "code": "DISK_FULL" if full else "STORE_UNAVAILABLE",
                "message": "The gateway could not save this: its disk is full."
                if full
                else f"The gateway could not save this: {exc}.",
                "next": "Nothing was recorded. Call the line lead, then do it again.",
            },
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse(
            status_code=422,
            content={
                "ok": False,
                "code": "BAD_REQUEST",
                "message": problems,
                "next": "Fix the request and send it again.",
            },
        )

    def station(station_id: str) -> str:
        if station_id not in service.core.config.stations:
            raise HTTPException(404, f"no station {station_id} on this line")
        return station_id

    @app.get("/api/health")
    async def get_health() -> dict[str, Any]:
        answer_ms: dict[str, float] = {}
        if durations:
            answer_ms = {
                "p50": round(percentile(durations, 50), 2),
                "p99": round(percentile(durations, 99), 2),
                "n": len(durations),
            }
        return {
            **health,
            "outbox_pending": service.core.outbox.pending_count(),
            "action_ms": answer_ms,
        }

    def station_view(station_id: str) -> dict[str, Any]:
        shown = service.view(station_id)
        if floor is not None:
            shown.update(floor.station_view(station_id))
        return shown

    @app.get("/api/stations")
    async def stations() -> list[dict[str, Any]]:
        return [station_view(s) for s in service.core.config.stations]

    @app.get("/api/stations/{station_id}")
    async def view(station_id: str) -> dict[str, Any]:
        return station_view(station(station_id))

    @app.get("/api/devices")
    async def devices() -> list[dict[str, Any]]:
        return floor.devices.snapshot() if floor is not None else []

    @app.post("/api/stations/{station_id}/reprint")
    async def reprint_label(station_id: str, body: ReprintBody) -> dict[str, Any]:
        return _reply(service.reprint(station(station_id), body.reason, body.label_id))

    @app.post("/api/stations/{station_id}/login")
    async def login(station_id: str, body: BadgeBody) -> dict[str, Any]:
        return _reply(service.login(station(station_id), body.badge))

    @app.post("/api/stations/{station_id}/logout")
    async def logout(station_id: str) -> dict[str, Any]:
        return _reply(service.logout(station(station_id)))

    @app.post("/api/stations/{station_id}/scan")
    async def scan(station_id: str, body: ScanBody) -> dict[str, Any]:
        return _reply(service.scan(station(station_id), body.code, body.symbology))

    @app.post("/api/stations/{station_id}/next")
    async def next_task(station_id: str) -> dict[str, Any]:
        return _reply(service.next_task(station(station_id)))

    @app.post("/api/stations/{station_id}/start")
    async def start(station_id: str) -> dict[str, Any]:
        return _reply(service.start(station(station_id)))

    @app.post("/api/stations/{station_id}/pause")
    async def pause(station_id: str, body: ReasonBody) -> dict[str, Any]:
        return _reply(service.pause(station(station_id), body.reason))

    @app.post("/api/stations/{station_id}/resume")
    async def resume(station_id: str) -> dict[str, Any]:
        return _reply(service.resume(station(station_id)))

    @app.post("/api/stations/{station_id}/checklist")
    async def checklist(station_id: str, body: ChecklistBody) -> dict[str, Any]:
        return _reply(service.checklist(station(station_id), body.item, body.passed))

    @app.post("/api/stations/{station_id}/weight")
    async def weight(station_id: str, body: WeightBody) -> dict[str, Any]:
        return _reply(service.weight(station(station_id), body.grams))

    @app.post("/api/stations/{station_id}/complete")
    async def complete(station_id: str) -> dict[str, Any]:
        return _reply(service.complete(station(station_id)))

    @app.post("/api/stations/{station_id}/fail")
    async def fail(station_id: str, body: FailBody) -> dict[str, Any]:
        return _reply(service.fail(station(station_id), body.reason, body.disposition))

    @app.get("/api/alarms")
    async def alarms() -> list[dict[str, str]]:
        return active_alarms(service.core)

    @app.get("/api/plan")
    async def plan(per_station: int = 20) -> dict[str, Any]:
        """The kanban's plan: each station's next tasks, orders predicted late and why,
        orders waiting for material; and how the plan is kept (replans, failures)."""
        if planner is None:
            return {"enabled": False, "source": "rule (the planner is off)", "plan": None}
        return planner.snapshot(max(1, min(per_station, 500)))

    @app.get("/api/plan/orders/{order_id}")
    async def plan_order(order_id: str) -> dict[str, Any]:
        found = planner.forecast(order_id) if planner is not None else None
        if found is None:
            raise HTTPException(404, f"the current plan does not know order {order_id}")
        return found

    @app.post("/api/plan/replan")
    async def replan() -> dict[str, Any]:
        """Ask for a replan now (a line lead after changing something on the floor)."""
        if planner is None:
            raise HTTPException(409, "the planner is off on this line ([planner] enabled)")
        planner.request("asked")
        return {"ok": True, "message": "Replan requested.", "next": "GET /api/plan shows it."}

    @app.get("/api/trace/unit/{serial}")
    async def trace_unit(serial: str) -> dict[str, Any]:
        result = trace_serial(service.core.store, serial)
        if result is None:
            raise HTTPException(404, f"no unit {serial}")
        return result

    @app.get("/api/trace/lot/{lot}")
    async def trace_lot_(lot: str) -> dict[str, Any]:
        return trace_lot(service.core.store, lot)

    return app
