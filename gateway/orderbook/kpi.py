"""KPIs of a period (ISO 22400 names), from the elements the store keeps.

Every ratio travels with its numerator and denominator, so the office rolls periods and
lines up by summing those, never by averaging percentages. Definitions follow
docs/architecture.md: OTD counts the orders whose ship-by fell in the period (an order
still open past its ship-by is late); FPY counts the units finished in the period that
never failed an operation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.clock import iso
from gateway.orderbook.context import LineContext
from gateway.percentiles import percentile


def _ratio(numerator: int, denominator: int) -> dict[str, Any]:
    return {
        "numerator": numerator,
        "denominator": denominator,
        "ratio": round(numerator / denominator, 4) if denominator else None,
    }


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def period_kpis(core: LineContext, start: datetime, end: datetime) -> dict[str, Any]:
    """The ``kpi.snapshot`` data for [start, end)."""
    s, e = iso(start), iso(end)
    one = core.store.one
    due = one(
        "SELECT count(*) AS due, sum(completed_at IS NOT NULL AND completed_at <= ship_by) "
        "AS on_time FROM orders WHERE ship_by >= ? AND ship_by < ? AND status != 'cancelled'",
        (s, e),
    )
    done = core.store.all(
        "SELECT accepted_at, completed_at FROM orders WHERE completed_at >= ? AND completed_at < ?",
        (s, e),
    )
    lead = [_seconds(r["accepted_at"], r["completed_at"]) for r in done]
    units = one(
        "SELECT count(*) AS n, sum(NOT EXISTS (SELECT 1 FROM attempts a WHERE "
        "a.serial = u.serial AND a.outcome = 'failed')) AS first_pass FROM units u "
        "WHERE u.completed_at >= ? AND u.completed_at < ?",
        (s, e),
    )
    scrapped = one(
        "SELECT count(*) FROM defects WHERE disposition = 'scrap' AND ts >= ? AND ts < ?",
        (s, e),
    )
    stations: dict[str, dict[str, Any]] = {}
    for r in core.store.all(
        "SELECT station, outcome, started_at, ended_at FROM attempts "
        "WHERE ended_at >= ? AND ended_at < ? AND station IS NOT NULL",
        (s, e),
    ):
        st = stations.setdefault(
            r["station"], {"tasks_completed": 0, "tasks_failed": 0, "busy_s": 0.0}
        )
        st["tasks_completed" if r["outcome"] == "completed" else "tasks_failed"] += 1
        if r["started_at"]:
            st["busy_s"] += _seconds(r["started_at"], r["ended_at"])
    for st in stations.values():
        n = st["tasks_completed"] + st["tasks_failed"]
        st["busy_s"] = round(st["busy_s"], 1)
        st["mean_cycle_s"] = round(st["busy_s"] / n, 1) if n else None
    checks = one(
        "SELECT count(*) AS n, sum(passed) AS passed FROM quality WHERE ts >= ? AND ts < ?",
        (s, e),
    )
    assert due is not None and units is not None and scrapped is not None
    assert checks is not None
    return {
        "period_start": s,
        "period_end": e,
        "line": {
            "orders_completed": len(done),
            "otd": _ratio(int(due["on_time"] or 0), int(due["due"])),
            "units_completed": int(units["n"]),
            "fpy": _ratio(int(units["first_pass"] or 0), int(units["n"])),
            "units_scrapped": int(scrapped[0]),
            "quality_checks": _ratio(int(checks["passed"] or 0), int(checks["n"])),
            "lead_time_p50_s": round(percentile(lead, 50), 1) if lead else None,
            "lead_time_p90_s": round(percentile(lead, 90), 1) if lead else None,
        },
        "stations": dict(sorted(stations.items())),
    }


def period_of(now: datetime, interval_s: int) -> tuple[datetime, datetime]:
    """The last whole period before ``now``, aligned to multiples of the interval."""
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    n = int((now - epoch).total_seconds() // interval_s)
    end = epoch + timedelta(seconds=n * interval_s)
    return end - timedelta(seconds=interval_s), end


def emit_snapshot(core: LineContext, start: datetime, end: datetime) -> None:
    with core.store.transaction():
        core.emit("kpi.snapshot", period_kpis(core, start, end))
        core.store.set_setting("kpi_last_end", iso(end))
