""" "Can we take this promotion?" over HTTP (issue 14): the line lead's page ``GET
/capacity`` and ``POST /api/capacity``, whose body is the forecast (a JSON array of hub
orders) and whose answer is the capacity check's (gateway/planning/capacity.py), with its
summary in the asker's language (``?lang=``).

The check runs in a planning worker of its own (gateway/planning/worker.py), one at a
time: the gateway's loop only passes the forecast's bytes on and waits, so the stations
are answered meanwhile; the worker runs at the lowest CPU priority and, under a CPU quota,
paced to what the gateway leaves of it. The forecast may be up to 4 MiB
(gateway/web/limits.py ``ROUTE_LIMITS``). Policy: a line lead (gateway/access/policy.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from gateway.i18n import Lang, Text, t
from gateway.planning.capacity import (
    CapacityJob,
    NoAnswer,
    SolverFailed,
    check_capacity,
    heads_of,
)
from gateway.planning.capacity_text import overtime_text, summary
from gateway.planning.cpu import CpuRate, quota_cores
from gateway.planning.planner import LinePlanner
from gateway.planning.worker import PlanWorker
from gateway.web.answers import WebRefused
from gateway.web.screens import Screens, lang_of

__all__ = ["add_capacity_routes"]


def _refused(status: int, code: str, message: Text, next_step: Text) -> WebRefused:
    return WebRefused(
        status,
        code,
        message.render(Lang.EN),
        next_step.render(Lang.EN),
        (message.render(Lang.ZH), next_step.render(Lang.ZH)),
    )


def add_capacity_routes(app: FastAPI, screens: Screens, planner: LinePlanner | None) -> None:
    """Register the page and the check on ``app``."""
    core = screens.core
    config = core.config
    worker = PlanWorker()
    own_cpu = CpuRate()

    def budget() -> Callable[[], float] | None:
        # As the line's replans are paced (gateway/planning/planner.py): under a quota,
        # what the gateway leaves of it less a margin for bursts; read at each check.
        quota = quota_cores()
        if quota is None:
            return None
        reserve = config.planner.api_reserve_cores
        return lambda: quota - reserve - own_cpu.sample()

    @app.get("/capacity", include_in_schema=False)
    async def capacity_page(lang: str | None = None) -> HTMLResponse:
        return screens.page("capacity.html", lang_of(lang, config.line.language))

    @app.post("/api/capacity")
    async def capacity(request: Request, lang: str | None = None) -> dict[str, Any]:
        """The line's capacity for the forecast in the body: when the line finishes, the
        orders that miss their cut-off, the bottleneck, material shortfalls, the overtime
        that brings every order in on time."""
        forecast = await request.body()
        if not forecast.strip():
            raise _refused(
                422,
                "BAD_FORECAST",
                t("No forecast was sent."),
                t("Send the forecast's orders as a JSON array in the request's body."),
            )
        if worker.running:
            raise _refused(
                409,
                "CAPACITY_BUSY",
                t("A capacity check is already running."),
                t("Wait for its answer, then ask again."),
            )
        previous = heads_of(planner.replanner.current) if planner is not None else None
        job = CapacityJob(config, core.store.path, core.clock.now(), forecast, previous=previous)
        try:
            answer = await check_capacity(worker, job, budget())
        except SolverFailed as exc:
            raise _refused(
                503,
                "CAPACITY_FAILED",
                t("The capacity check failed: {why}", why=str(exc)),
                t("Try again; with fewer orders if it happens again."),
            ) from None
        if isinstance(answer, NoAnswer):
            raise _refused(
                422,
                "BAD_FORECAST" if answer.forecast else "NO_ANSWER",
                answer.why,
                t("Fix the forecast and send it again.")
                if answer.forecast
                else t("Check a smaller forecast, or fewer days of it."),
            )
        chosen = lang_of(lang, config.line.language)
        return answer.model_dump(mode="json") | {
            "summary": summary(answer, chosen),
            "overtime_text": [overtime_text(o, answer.now, chosen) for o in answer.overtime],
        }
