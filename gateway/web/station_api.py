"""The station API: JSON over HTTP for everything an operator does, one path per station.

Every answer carries ``message`` (what happened) and ``next`` (what to do now) in words an
operator understands; a refused action answers 409 with ``code`` and the reason. Every other
refusal (an unknown path or station, a body that is not JSON, too big or too slow) has the
same shape, ``{ok: false, code, message, next}``, with its own HTTP status.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.access.audit import AuditAction
from gateway.config.line import PinAction
from gateway.desk.barcodes import ScanKind, classify
from gateway.desk.overrides import Overridable
from gateway.desk.replies import Refused
from gateway.desk.service import StationService
from gateway.floor.floor import Floor
from gateway.floor.media import MediaCache
from gateway.orderbook.alarms import acknowledge, active_alarms
from gateway.orderbook.trace import (
    lot_known_in,
    trace_lot,
    trace_serial,
    unknown_lot,
    unknown_unit,
)
from gateway.percentiles import percentile
from gateway.planning.planner import LinePlanner
from gateway.store.rows import AuditOutcome, Disposition
from gateway.web.access_routes import SignIns, add_access_routes
from gateway.web.acting import Acting
from gateway.web.answers import WebRefused, refusal
from gateway.web.board import BoardData
from gateway.web.capacity_routes import add_capacity_routes
from gateway.web.gate import Gate, Gatekeeper, actor_of
from gateway.web.limits import BodyGuard
from gateway.web.live import Changes
from gateway.web.media_routes import add_media_routes
from gateway.web.metrics_routes import ActionTimes, add_metrics_routes
from gateway.web.order_routes import add_order_routes
from gateway.web.report_routes import add_report_routes
from gateway.web.screens import Screens, add_screen_routes


class _Body(BaseModel):
    # Strict: JSON's true is not the number 1 (a 1 g weighing, checklist item 1) and "yes"
    # is not true. An integer is still a float (a scale may send 5 for 5 g).
    model_config = ConfigDict(extra="forbid", strict=True)


class BadgeBody(_Body):
    badge: str = Field(min_length=1, max_length=64)


class ScanBody(_Body):
    code: str = Field(min_length=1, max_length=256)
    # The AIM symbology identifier, when the terminal's scanner reports one ("]C1" …).
    symbology: str | None = Field(default=None, pattern=r"^\][A-Za-z][0-9A-Za-z]$")


class ReasonBody(_Body):
    reason: str = Field(min_length=1, max_length=200)


class ChecklistBody(_Body):
    item: int | Annotated[str, Field(min_length=1, max_length=200)]
    passed: bool


class WeightBody(_Body):
    grams: float = Field(ge=0, le=1_000_000, allow_inf_nan=False)


class ReprintBody(_Body):
    reason: str = Field(min_length=1, max_length=200)
    # Left out: the label printed last at this station.
    label_id: str | None = Field(default=None, min_length=1, max_length=64)


class ContainerQty(_Body):
    material: str = Field(min_length=1, max_length=64)
    qty: int = Field(ge=1, le=50)


class OverrideBody(_Body):
    # Not strict: the body is parsed JSON, where an enum can only be its value's text.
    check: Overridable = Field(strict=False)
    reason: str = Field(min_length=1, max_length=200)
    # check "parcel": the containers a line lead chose, or as_bom (pack as the BOM says).
    containers: list[ContainerQty] | None = Field(default=None, min_length=1, max_length=20)
    as_bom: bool = False


class FailBody(_Body):
    reason: str = Field(min_length=1, max_length=200)
    disposition: str = Field(max_length=32)


# What the framework refuses by itself (an unknown path, a method a path does not take, a
# body that cannot be parsed), in the API's words: its code and what to do instead.
_HTTP_REFUSALS = {
    400: (
        "BAD_REQUEST",
        "Send the action's fields as a JSON object (Content-Type: application/json).",
    ),
    404: ("NOT_FOUND", "Check the address against the station API's paths (README)."),
    405: ("METHOD_NOT_ALLOWED", "Check the method against the station API's paths (README)."),
    413: ("BODY_TOO_LARGE", "Send the action's fields only, as JSON."),
    422: ("BAD_REQUEST", "Fix the request and send it again."),
}
# Where the docs are served, they are the better pointer.
_DOCS_REFUSALS = {
    404: ("NOT_FOUND", "Check the address: GET /api/docs lists the station API's paths."),
    405: ("METHOD_NOT_ALLOWED", "Check the method: GET /api/docs lists what each path takes."),
}


def create_app(
    service: StationService,
    health: dict[str, Any],
    floor: Floor | None = None,
    planner: LinePlanner | None = None,
    *,
    gate: Gate,
    sign_ins: SignIns,
    docs: bool = False,
    changes: Changes | None = None,
    media: MediaCache | None = None,
    actions: ActionTimes | None = None,
    metrics: CollectorRegistry | None = None,
) -> FastAPI:
    """The FastAPI application; ``health`` is a live dict the gateway keeps current.
    ``gate`` decides who may use each route (gateway/web/gate.py); ``sign_ins`` throttles
    sign-ins and PINs. ``docs`` ([http] api_docs) serves /api/docs, /redoc and
    /api/openapi.json; without it they are unknown paths, like any other (404).
    ``actions`` keeps the actions' answer times (the gateway's metrics read them);
    ``metrics`` is served at /metrics (gateway/app/metrics.py)."""
    # The operator actions' answer times: /api/health's percentiles, /metrics' histogram.
    actions = actions or ActionTimes()
    durations = actions.recent_ms  # ms of the last operator actions
    app = FastAPI(
        title="linegate station API",
        docs_url="/api/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/api/openapi.json" if docs else None,
    )
    refusals = _HTTP_REFUSALS | (_DOCS_REFUSALS if docs else {})
    core = service.core
    store = core.store
    # Innermost of the middleware: a request reaches a route only through the gate. Its
    # own cost (a credential's lookup) is inside `timed`, which counts what terminals wait.
    app.add_middleware(Gatekeeper, gate=gate, routes=app.router.routes)

    @app.middleware("http")
    async def timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # How long the gateway took to answer (commit included): the number a line lead
        # needs when operators say "the scanner is slow". Only actions carried out (2xx)
        # or refused by the desk (409) count: a request refused before it reached the desk
        # (a bad body, an unknown path) says nothing about the line, and a flood of them
        # must not turn the number into the attacker's.
        t0 = time.perf_counter()
        response = await call_next(request)
        if request.method == "POST" and (
            200 <= response.status_code < 300 or getattr(request.state, "desk_refused", False)
        ):
            actions.add(time.perf_counter() - t0)
        return response

    # Added after `timed`, so it wraps it: a body is bounded and read before anything
    # else sees the request, and its upload time is not the gateway's answer time.
    app.add_middleware(BodyGuard)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        request.state.desk_refused = True  # for `timed`: the desk answered this one
        content = refusal(exc.code, exc.message_text, exc.next_text)
        return JSONResponse(status_code=409, content=content)

    @app.exception_handler(WebRefused)
    async def web_refused(_: Request, exc: WebRefused) -> JSONResponse:
        content = refusal(exc.code, exc.message, exc.next)
        if exc.zh is not None:
            content |= {"message_zh": exc.zh[0], "next_zh": exc.zh[1]}
        return JSONResponse(content, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_refused(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The router's own 404 and 405, FastAPI's 400 for a body it cannot parse, and any
        # HTTPException a route raises: their detail is the message.
        code, next_step = refusals.get(exc.status_code, (f"HTTP_{exc.status_code}", ""))
        message = str(exc.detail)
        # The framework's own details say little; a route's own detail is kept as it is.
        if message == "Not Found":
            message = f"The station API has no {request.url.path}."
        elif message == "Method Not Allowed":
            message = f"{request.url.path} does not take {request.method}."
        elif message == "There was an error parsing the body":
            message = "The request's body could not be read as JSON."
        return JSONResponse(
            refusal(code, message, next_step or "Fix the request and send it again."),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def failed(_: Request, exc: Exception) -> JSONResponse:
        # A bug: uvicorn logs it (Starlette raises it again after this answer).
        return JSONResponse(
            status_code=500,
            content=refusal(
                "INTERNAL_ERROR",
                f"The gateway failed on this request ({type(exc).__name__}).",
                "Look at the station's screen to see what was recorded; tell the line lead.",
            ),
        )

    @app.exception_handler(sqlite3.OperationalError)
    async def store_failed(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # Nothing of the action was saved (its transaction rolled back whole).
        full = "full" in str(exc)
        return JSONResponse(
            status_code=503,
            content=refusal(
                "DISK_FULL" if full else "STORE_UNAVAILABLE",
                "The gateway could not save this: its disk is full."
                if full
                else f"The gateway could not save this: {exc}.",
                "Nothing was recorded. Call the line lead, then do it again.",
            ),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_problems(exc.errors()))
        return JSONResponse(
            status_code=422,
            content=refusal("BAD_REQUEST", problems, "Fix the request and send it again."),
        )

    acting = Acting(service, sign_ins)
    act, by_lead, caller, trail = acting.act, acting.by_lead, acting.caller, acting.trail
    station = acting.station

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
    async def reprint_label(station_id: str, body: ReprintBody, request: Request) -> Any:
        return await act(
            request,
            station_id,
            lambda s: s.reprint(station_id, body.reason, body.label_id),
            privileged=AuditAction.REPRINT,
            detail=body.reason,
        )

    @app.post("/api/stations/{station_id}/override")
    async def override(station_id: str, body: OverrideBody, request: Request) -> Any:
        by = actor_of(caller(request).principal) or "?"
        chosen = None if body.containers is None else [(c.material, c.qty) for c in body.containers]
        what = "as the BOM says; " if body.as_bom else ""
        what += "".join(f"{m} ×{q}; " for m, q in chosen or ())
        return await act(
            request,
            station_id,
            lambda s: s.override(station_id, body.check, body.reason, by, chosen, body.as_bom),
            privileged=AuditAction.OVERRIDE,
            detail=f"{body.check}: {what}{body.reason}",
        )

    @app.post("/api/stations/{station_id}/login")
    async def login(station_id: str, body: BadgeBody, request: Request) -> Any:
        return await act(
            request,
            station_id,
            lambda s: s.login(station_id, body.badge),
            pin=PinAction.LOGIN,
            badge=body.badge,
            signs=True,
        )

    @app.post("/api/stations/{station_id}/logout")
    async def logout(station_id: str, request: Request) -> Any:
        return await act(
            request, station_id, lambda s: s.logout(station_id), pin=PinAction.LOGOUT, signs=True
        )

    @app.post("/api/stations/{station_id}/scan")
    async def scan(station_id: str, body: ScanBody, request: Request) -> Any:
        # A badge scanned is a sign-in (gateway/desk/scanning.py), known as one by the
        # desk's own rule: the PIN and the trail treat it as one.
        read = classify(body.code, body.symbology)
        badge = read.code if read.kind is ScanKind.BADGE else None
        return await act(
            request,
            station_id,
            lambda s: s.scan(station_id, body.code, body.symbology),
            pin=PinAction.LOGIN if badge is not None else None,
            badge=badge,
            signs=badge is not None,
        )

    @app.post("/api/stations/{station_id}/next")
    async def next_task(station_id: str, request: Request) -> Any:
        return await act(request, station_id, lambda s: s.next_task(station_id))

    @app.post("/api/stations/{station_id}/start")
    async def start(station_id: str, request: Request) -> Any:
        return await act(request, station_id, lambda s: s.start(station_id))

    @app.post("/api/stations/{station_id}/pause")
    async def pause(station_id: str, body: ReasonBody, request: Request) -> Any:
        return await act(
            request,
            station_id,
            lambda s: s.pause(station_id, body.reason),
            pin=PinAction.PAUSE,
            privileged=by_lead(request, AuditAction.STATION_PAUSE),
            detail=body.reason,
        )

    @app.post("/api/stations/{station_id}/resume")
    async def resume(station_id: str, request: Request) -> Any:
        return await act(
            request,
            station_id,
            lambda s: s.resume(station_id),
            pin=PinAction.RESUME,
            privileged=by_lead(request, AuditAction.STATION_RESUME),
        )

    @app.post("/api/stations/{station_id}/checklist")
    async def checklist(station_id: str, body: ChecklistBody, request: Request) -> Any:
        return await act(
            request, station_id, lambda s: s.checklist(station_id, body.item, body.passed)
        )

    @app.post("/api/stations/{station_id}/weight")
    async def weight(station_id: str, body: WeightBody, request: Request) -> Any:
        return await act(request, station_id, lambda s: s.weight(station_id, body.grams))

    @app.post("/api/stations/{station_id}/complete")
    async def complete(station_id: str, request: Request) -> Any:
        return await act(
            request, station_id, lambda s: s.complete(station_id), pin=PinAction.COMPLETE
        )

    @app.post("/api/stations/{station_id}/fail")
    async def fail(station_id: str, body: FailBody, request: Request) -> Any:
        use_as_is = body.disposition == Disposition.USE_AS_IS.value
        return await act(
            request,
            station_id,
            lambda s: s.fail(station_id, body.reason, body.disposition),
            pin=PinAction.FAIL,
            privileged=AuditAction.USE_AS_IS if use_as_is else None,
            detail=body.reason,
        )

    @app.get("/api/alarms")
    async def alarms() -> list[dict[str, Any]]:
        return active_alarms(service.core)

    @app.post("/api/alarms/{alarm_id}/ack")
    async def ack_alarm(alarm_id: str, request: Request) -> dict[str, Any]:
        """A line lead takes an alarm: the board shows who is on it."""
        by = actor_of(caller(request).principal) or "?"
        with store.transaction():
            alarm = acknowledge(core, alarm_id, by)
            if alarm is not None:
                trail(
                    request, action=AuditAction.ALARM_ACK, outcome=AuditOutcome.OK, target=alarm_id
                )
        if alarm is None:
            raise WebRefused(
                404,
                "UNKNOWN_ALARM",
                f"No alarm {alarm_id} is raised.",
                "GET /api/alarms lists the raised alarms.",
                (f"没有正在报警的 {alarm_id}。", "GET /api/alarms 列出当前报警。"),
            )
        return {
            "ok": True,
            "message": f"Alarm {alarm_id} acknowledged by {alarm.acked_by}.",
            "next": "It stays on the board until its cause is cleared.",
            "acked_at": alarm.acked_at,
            "acked_by": alarm.acked_by,
        }

    @app.post("/api/devices/{station_id}/{device}/reconnect")
    async def reconnect(station_id: str, device: str, request: Request) -> dict[str, Any]:
        """Maintenance: try a device again now instead of after its back-off."""
        name = f"{station_id}/{device}"
        supervisor = None if floor is None else floor.devices.supervisors.get(name)
        if supervisor is None:
            raise WebRefused(
                404,
                "UNKNOWN_DEVICE",
                f"There is no device {name} on this line.",
                "GET /api/devices lists them.",
                (f"本线没有设备 {name}。", "GET /api/devices 列出所有设备。"),
            )
        retried = supervisor.retry_now()
        with store.transaction():
            trail(
                request,
                action=AuditAction.DEVICE_ACTION,
                outcome=AuditOutcome.OK,
                target=name,
                station=station_id,
                detail="reconnect" if retried else "reconnect: already ready",
            )
        if not retried:
            return {
                "ok": True,
                "message": f"{name} is ready: nothing to reconnect.",
                "next": "",
                "state": supervisor.state.value,
            }
        return {
            "ok": True,
            "message": f"{name}: connecting again now.",
            "next": "GET /api/devices shows whether it came back.",
            "state": supervisor.state.value,
        }

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
            raise WebRefused(
                404,
                "UNKNOWN_ORDER",
                f"The current plan does not know order {order_id}.",
                "GET /api/plan shows the orders it plans.",
            )
        return found

    @app.post("/api/plan/replan")
    async def replan(request: Request) -> dict[str, Any]:
        """Ask for a replan now (a line lead after changing something on the floor)."""
        if planner is None:
            raise WebRefused(
                409,
                "PLANNER_OFF",
                "The planner is off on this line ([planner] enabled).",
                "Nothing to replan: the stations' queues follow the dispatch rule.",
            )
        planner.request("asked")
        with store.transaction():
            trail(request, action=AuditAction.REPLAN, outcome=AuditOutcome.OK)
        return {"ok": True, "message": "Replan requested.", "next": "GET /api/plan shows it."}

    @app.get("/api/trace/unit/{serial}")
    async def trace_unit(serial: str) -> dict[str, Any]:
        result = trace_serial(service.core.store, serial)
        if result is None:
            raise HTTPException(404, unknown_unit(service.core.store, serial, "on this line"))
        return result

    @app.get("/api/trace/lot/{lot}")
    async def trace_lot_(lot: str) -> dict[str, Any]:
        store = service.core.store
        # A blank lot would match every consumption of a material without lots (lot "").
        if not lot.strip():
            raise HTTPException(422, "a lot cannot be empty or blank")
        # Unknown is not "not consumed": in a recall, only a lot the line knows is cleared.
        if not lot_known_in(store, lot):
            raise HTTPException(404, unknown_lot(store, lot, "on this line"))
        return trace_lot(store, lot)

    add_access_routes(app, gate, sign_ins)
    # The screens, and the streams that keep them live from the committed events.
    changes = changes or Changes()
    core.outbox.listeners.append(changes.committed)
    if floor is not None:
        floor.on_said = changes.touch
        floor.devices.state_listeners.append(changes.touch)
    # A dozen bars a station: the next hours of a TV's Gantt, and a push kept small.
    board = BoardData(service, floor, planner, gantt_per_station=12)
    screens = Screens(service, floor, planner, board, changes)
    add_screen_routes(app, screens)
    if media is not None:
        add_media_routes(app, media)
    add_order_routes(app, core, planner)
    add_report_routes(app, screens)
    add_capacity_routes(app, screens, planner)
    # Always routed (an empty registry says nothing): the policy table names every route.
    add_metrics_routes(app, metrics or CollectorRegistry())
    return app


def _problems(errors: Sequence[Any]) -> list[str]:
    """The problems of a request's body as the API says them: one per field (the bodies
    are flat; a field of two types, the checklist's item, has a problem for each type)."""
    by_field: dict[str, list[str]] = {}
    for error in errors:
        if error["type"] == "json_invalid":
            ctx, at = error["ctx"]["error"], error["loc"][1]
            return [f"The body is not valid JSON ({ctx}, at character {at})."]
        if isinstance(error.get("input"), bytes):
            # FastAPI hands over the raw bytes of a body whose Content-Type is not JSON.
            return ["The body was not read as JSON: its Content-Type is not application/json."]
        field = str(error["loc"][1]) if len(error["loc"]) > 1 else "body"
        by_field.setdefault(field, []).append(error["msg"])
    return [f"{field}: {' or '.join(dict.fromkeys(msgs))}" for field, msgs in by_field.items()]
