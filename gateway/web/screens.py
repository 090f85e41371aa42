"""The screens people use, served by the gateway itself: the station terminal, the line
board and the order lookup.

A page is a shell (HTML in the reader's language, the line's names) that needs no
credential: it holds no data. The data comes from the JSON routes, behind the gate, and
live from the event streams (gateway/web/live.py). Every asset is the gateway's own
(gateway/web/static, its vendored libraries with their licences): the floor may have no
internet, and the Content-Security-Policy keeps a page from reaching beyond the gateway.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from gateway.config.line import Language
from gateway.desk.service import StationService
from gateway.desk.steps import awaiting_weight
from gateway.floor.floor import Floor
from gateway.i18n import Lang, install
from gateway.orderbook.alarms import active_alarms
from gateway.orderbook.lookup import order_detail
from gateway.orderbook.station_state import state_of
from gateway.planning.planner import LinePlanner
from gateway.web.answers import WebRefused
from gateway.web.board import Board, BoardData
from gateway.web.live import Changes, as_json, stream

# No script, style, picture or connection from anywhere but the gateway. Alpine.js
# evaluates its attribute expressions with Function(): 'unsafe-eval' is its price.
_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; media-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_ASSET_DIR = "static"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _assets() -> dict[str, Asset]:
    """Every file under gateway/web/static, read once when the screens are built."""
    found: dict[str, Asset] = {}
    root = resources.files("gateway.web").joinpath(_ASSET_DIR)

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, f"{name}/")
                continue
            body = entry.read_bytes()
            media_type = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            if media_type.startswith("text/") or media_type.endswith("javascript"):
                media_type += "; charset=utf-8"
            found[name] = Asset(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    walk(root, "")
    return found


def lang_of(value: str | None, default: Language) -> Lang:
    """The page's language: asked for (``?lang=``), else the line's."""
    for lang in Lang:
        if value is not None and value.lower() in (lang.value.lower(), lang.value[:2]):
            return lang
    return Lang(default)


class Screens:
    """The pages, their assets and the snapshots their streams push."""

    def __init__(
        self,
        service: StationService,
        floor: Floor | None,
        planner: LinePlanner | None,
        board: BoardData,
        changes: Changes,
    ) -> None:
        self.service = service
        self.floor = floor
        self.planner = planner
        self.board = board
        self.changes = changes
        self.core = service.core
        self.assets = _assets()
        self._envs: dict[Lang, jinja2.Environment] = {}
        self._board_json: tuple[Board, str] | None = None

    def env(self, lang: Lang) -> jinja2.Environment:
        found = self._envs.get(lang)
        if found is None:
            found = jinja2.Environment(
                loader=jinja2.PackageLoader("gateway.web", "templates"),
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
                undefined=jinja2.StrictUndefined,
            )
            install(found, lang)
            found.globals["asset"] = self.asset_url
            self._envs[lang] = found
        return found

    def asset_url(self, name: str) -> str:
        # The content's hash in the address: a browser keeps an asset until it changes.
        return f"/static/{name}?v={self.assets[name].etag.strip(chr(34))[:12]}"

    def page(self, template: str, lang: Lang, **context: Any) -> HTMLResponse:
        config = self.core.config
        strings = self.env(lang).get_template("strings.html").module
        html = (
            self.env(lang)
            .get_template(template)
            .render(
                lang=lang.value,
                other_lang=(Lang.EN if lang is Lang.ZH else Lang.ZH).value,
                line_name=config.line.name or config.gateway_id,
                gateway_id=config.gateway_id,
                strings=Markup(_script_json(getattr(strings, "strings", {}))),
                **context,
            )
        )
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    async def board_json(self) -> tuple[str, int]:
        """The shared board as JSON, serialised once for every board that shows it."""
        board = await self.board.latest()
        if self._board_json is None or self._board_json[0] is not board:
            self._board_json = (board, as_json(board.model_dump(mode="json")))
        return self._board_json[1], board.seq

    def station_ids(self) -> list[str]:
        return list(self.core.config.stations)

    def operator_lang(self, badge: str | None) -> Lang:
        config = self.core.config
        for op in config.operators:
            if op.badge == badge and op.language is not None:
                return Lang(op.language)
        return Lang(config.line.language)

    async def station_snapshot(self, station_id: str) -> dict[str, Any]:
        """What the terminal shows: the desk's view, the floor's devices and their last
        word, the machine's state, the live scale, the station's alarms."""
        view = self.service.view(station_id)
        if self.floor is not None:
            view.update(self.floor.station_view(station_id))
        view["language"] = self.operator_lang(view.get("operator")).value
        view["machine_state"] = state_of(self.core, station_id) or None
        view["scale"] = self._scale(station_id)
        view["alarms"] = [
            a
            for a in active_alarms(self.core)
            if a["source"] == station_id or str(a["source"]).startswith(f"{station_id}/")
        ]
        view["seq"] = self.core.outbox.last_seq
        return view

    def _scale(self, station_id: str) -> dict[str, Any] | None:
        if self.floor is None:
            return None
        devices = self.floor.devices.stations.get(station_id)
        scale = devices.scale if devices is not None else None
        if scale is None:
            return None
        reading = scale.latest
        if reading is None or not self.floor.devices.ready(scale):
            return {"online": False}
        return {"online": True, "grams": round(reading.grams, 1), "stable": reading.stable}

    def scale_poll(self, station_id: str) -> float | None:
        """How often the terminal's stream looks at the scale, which reads without an
        event: four times a second while the task waits for a weight, else never (a
        device's state and its words wake the stream themselves)."""
        if self.floor is None:
            return None
        devices = self.floor.devices.stations.get(station_id)
        if (
            devices is not None
            and devices.scale is not None
            and awaiting_weight(self.core, self.service.current(station_id))
        ):
            return 0.25
        return None


def _script_json(data: Any) -> str:
    # Inside <script type="application/json">: "</" would end the element.
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def add_screen_routes(app: FastAPI, screens: Screens) -> None:
    """The pages, their assets, the board's data and the live streams."""
    config = screens.core.config

    def known(station_id: str) -> str:
        if station_id not in config.stations:
            raise WebRefused(
                404,
                "UNKNOWN_STATION",
                f"There is no station {station_id} on this line.",
                "Check the address: the board lists the stations.",
                (f"本线没有工位 {station_id}。", "请检查地址：看板上列出了所有工位。"),
            )
        return station_id

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/board", status_code=303)

    @app.get("/board", include_in_schema=False)
    async def board_page(request: Request, lang: str | None = None) -> HTMLResponse:
        chosen = lang_of(lang, config.line.language)
        return screens.page(
            "board.html",
            chosen,
            stations=screens.station_ids(),
            kiosk="kiosk" in request.query_params,
        )

    @app.get("/orders", include_in_schema=False)
    async def orders_page(lang: str | None = None) -> HTMLResponse:
        return screens.page("orders.html", lang_of(lang, config.line.language))

    @app.get("/station/{station_id}", include_in_schema=False)
    async def station_page(station_id: str, lang: str | None = None) -> HTMLResponse:
        known(station_id)
        if lang is None:
            chosen = screens.operator_lang(screens.service.session(station_id).badge)
        else:
            chosen = lang_of(lang, config.line.language)
        return screens.page(
            "station.html",
            chosen,
            station_id=station_id,
            station_name=config.stations[station_id].name,
        )

    @app.get("/static/{name:path}", include_in_schema=False)
    async def asset(name: str, request: Request) -> Response:
        found = screens.assets.get(name)
        if found is None:
            raise WebRefused(
                404, "NOT_FOUND", f"The gateway has no file {name}.", "Reload the page."
            )
        headers = {
            "ETag": found.etag,
            "Cache-Control": "public, max-age=31536000, immutable"
            if "v" in request.query_params
            else "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    @app.get("/api/board")
    async def board() -> Response:
        body, _ = await screens.board_json()
        return Response(body, media_type="application/json")

    @app.get("/api/board/live")
    async def board_live(request: Request) -> Response:
        return stream(request, screens.changes, "board", screens.board_json, own_gap_s=0.25)

    @app.get("/api/orders/{order_id}/live")
    async def order_live(order_id: str, request: Request) -> Response:
        """The lookup's order, pushed again when the line changes it (at most once a
        second: customer service reads, it does not act)."""

        async def snapshot() -> tuple[str, int]:
            seq = screens.core.outbox.last_seq
            found = order_detail(screens.core, screens.planner, order_id)
            doc = {} if found is None else found.model_dump(mode="json")
            return as_json(doc | {"found": found is not None, "seq": seq}), seq

        return stream(request, screens.changes, "order", snapshot, own_gap_s=1.0)

    @app.get("/api/stations/{station_id}/live")
    async def station_live(station_id: str, request: Request) -> Response:
        known(station_id)

        async def snapshot() -> tuple[str, int]:
            view = await screens.station_snapshot(station_id)
            return as_json(view), int(view["seq"])

        return stream(
            request,
            screens.changes,
            "station",
            snapshot,
            station=station_id,
            poll_s=lambda: screens.scale_poll(station_id),
            # Another station's change may move this one's queue: shown within 2 s.
            other_gap_s=2.0,
        )
