"""The site board: ``GET /board`` (a page for line leads and supervisors, refreshing itself)
and ``GET /v1/board`` (the same figures as JSON), policy BOARD.

The page refreshes by fetching its own table again (``/board?part=lines``, rendered here
in the reader's language) every few seconds: a few lines of plain script, no build step.
Nothing here waits on a line: the lines' /metrics are scraped in the background
(board_scrape) and only read from memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from office.access import Gate, Policy, Principal
from office.answer.board_read import BoardLine, local_day, read_lines
from office.answer.board_scrape import LineHealth, MetricsScraper
from office.store import Store, StoreUnavailable
from office.web import Pages

__all__ = ["REFRESH_S", "Board", "board_routes"]

REFRESH_S = 10  # how often the page fetches its table again


class Board:
    def __init__(
        self,
        store: Store,
        configured: Sequence[str],
        scraper: MetricsScraper,
        zone: ZoneInfo,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._configured = tuple(configured)
        self._scraper = scraper
        self._zone = zone
        self._now = now

    async def lines(self) -> tuple[datetime, list[BoardLine]]:
        now = self._now()
        report = await self._store.lines_report()
        health: dict[str, LineHealth | None] = {
            gid: self._scraper.health(gid) for gid in self._scraper.gateway_ids
        }
        async with self._store.read() as conn:
            lines = await read_lines(conn, report, self._configured, now, self._zone, health)
        return now, lines

    def document(self, now: datetime, lines: list[BoardLine]) -> dict[str, Any]:
        start, _ = local_day(now, self._zone)
        return {
            "at": now.isoformat(),
            "timezone": self._zone.key,
            "today": start.date().isoformat(),
            "lines": [_line_doc(line, now) for line in lines],
        }


def _line_doc(line: BoardLine, now: datetime) -> dict[str, Any]:
    h = line.health
    metrics: dict[str, Any] | None = None
    if line.metrics_configured:
        metrics = {
            "available": h is not None and h.failing_since is None and h.scraped_at is not None,
            "scraped_at": h.scraped_at.isoformat() if h and h.scraped_at else None,
            "unavailable_since": h.failing_since.isoformat() if h and h.failing_since else None,
            "error": h.error if h else None,
            "outbox_events": h.outbox_events if h else None,
            "outbox_oldest_age_s": h.outbox_oldest_age_s if h else None,
            "link_up": h.link_up if h else None,
            "plan_age_s": h.plan_age_s if h else None,
            "plan_in_use": h.plan_in_use if h else None,
            "devices": dict(h.devices) if h else {},
            "devices_not_ready": _not_ready(h),
        }
    return {
        "gateway_id": line.gateway_id,
        "state": line.state.value,
        "state_since": line.state_since,
        "link": {
            "held_through": line.held_through,
            "highest_seq": line.highest_seq,
            "gaps": [{"first": a, "last": b} for a, b in line.gaps],
            "last_seen": line.last_seen,
            "last_seen_age_s": _age(line.last_seen, now),
        },
        "throughput_last_hour": {"units": line.units_last_hour, "orders": line.orders_last_hour},
        "otd_today": {
            "on_time": line.otd_today.on_time,
            "completed": line.otd_today.completed,
            "ratio": line.otd_today.ratio,
        },
        "alarms": {
            "open": line.alarms_open,
            "highest_severity": line.highest_severity,
            "oldest": asdict(line.oldest_alarm) if line.oldest_alarm else None,
        },
        "wip": line.wip,
        "kpi": {"period": line.kpi_period, "oee": line.kpi_oee} if line.kpi_period else None,
        "metrics": metrics,
    }


def _not_ready(h: LineHealth | None) -> int | None:
    if h is None or h.scraped_at is None:
        return None
    return sum(1 for state in h.devices.values() if state != "ready")


def _age(at: str | None, now: datetime) -> float | None:
    if at is None:
        return None
    try:
        return max(0.0, round((now - datetime.fromisoformat(at)).total_seconds(), 1))
    except ValueError:
        return None


def board_routes(
    board: Board, gate: Gate, pages: Pages, refresh_s: float = REFRESH_S
) -> list[BaseRoute]:
    async def as_json(request: Request) -> Response:
        who = await gate.admit(request, Policy.BOARD)
        if not isinstance(who, Principal):
            return who
        try:
            now, lines = await board.lines()
        except StoreUnavailable:
            return _unavailable()
        return JSONResponse(board.document(now, lines))

    async def page(request: Request) -> Response:
        who = await gate.admit(request, Policy.BOARD)
        if not isinstance(who, Principal):
            return who
        try:
            now, lines = await board.lines()
        except StoreUnavailable:
            return _unavailable()
        doc = board.document(now, lines)
        part = request.query_params.get("part") == "lines"
        template = "board_lines.html" if part else "board.html"
        return pages.render(request, who, template, {"board": doc, "refresh_s": refresh_s})

    return [
        Route("/v1/board", as_json, methods=["GET"]),
        Route("/board", page, methods=["GET"]),
    ]


def _unavailable() -> Response:
    return JSONResponse(
        {"error": "the office's store is unavailable; try again"},
        status_code=503,
        headers={"Retry-After": "1"},
    )
