"""KPIs of a period (ISO 22400 names), from the elements the store keeps.

Every ratio travels with its numerator and denominator, so the office rolls periods and
lines up by summing those, never by averaging percentages. OTD counts the orders whose
ship-by fell in the period and were not cancelled (an order still open past its ship-by
is late); FPY counts the units finished in the period that never failed an operation;
lead time runs from acceptance to the confirming scan of the parcel.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.clock import iso
from gateway.orderbook.context import LineContext
from gateway.percentiles import percentile
from gateway.store.db import Store
from gateway.store.rows import AttemptRow, Disposition, OrderRow, Outcome


def _ratio(numerator: int, denominator: int) -> dict[str, Any]:
    return {
        "numerator": numerator,
        "denominator": denominator,
        "ratio": round(numerator / denominator, 4) if denominator else None,
    }


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def otd_counts(store: Store, s: str, e: str) -> tuple[int, int]:
    """On-time delivery of [s, e): (orders done by their ship-by, orders whose ship-by fell
    in the period and were not cancelled). One still open past its ship-by is late."""
    not_cancelled = "AND status != 'cancelled'"
    due = store.count(
        f"SELECT count(*) FROM orders WHERE ship_by >= ? AND ship_by < ? {not_cancelled}", (s, e)
    )
    on_time = store.count(
        "SELECT count(*) FROM orders WHERE ship_by >= ? AND ship_by < ? "
        f"AND completed_at IS NOT NULL AND completed_at <= ship_by {not_cancelled}",
        (s, e),
    )
    return on_time, due


def fpy_counts(store: Store, s: str, e: str) -> tuple[int, int]:
    """First pass yield of [s, e): (units finished in it that never failed an operation,
    units finished in it)."""
    units = store.count(
        "SELECT count(*) FROM units WHERE completed_at >= ? AND completed_at < ?", (s, e)
    )
    first_pass = store.count(
        "SELECT count(*) FROM units u WHERE u.completed_at >= ? AND u.completed_at < ? "
        "AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.serial = u.serial "
        "AND a.outcome = ?)",
        (s, e, Outcome.FAILED),
    )
    return first_pass, units


def period_kpis(core: LineContext, start: datetime, end: datetime) -> dict[str, Any]:
    """The ``kpi.snapshot`` data for [start, end)."""
    s, e = iso(start), iso(end)
    store = core.store
    on_time, due = otd_counts(store, s, e)
    done = store.fetch_all(
        OrderRow, "SELECT * FROM orders WHERE completed_at >= ? AND completed_at < ?", (s, e)
    )
    lead = [_seconds(r.accepted_at, r.completed_at) for r in done if r.completed_at is not None]
    first_pass, units = fpy_counts(store, s, e)
    scrapped = store.count(
        "SELECT count(*) FROM defects WHERE disposition = ? AND ts >= ? AND ts < ?",
        (Disposition.SCRAP, s, e),
    )
    stations: dict[str, dict[str, Any]] = {}
    for a in store.fetch_all(
        AttemptRow,
        "SELECT * FROM attempts WHERE ended_at >= ? AND ended_at < ? AND station IS NOT NULL",
        (s, e),
    ):
        assert a.station is not None
        st = stations.setdefault(
            a.station, {"tasks_completed": 0, "tasks_failed": 0, "busy_s": 0.0}
        )
        st["tasks_completed" if a.outcome is Outcome.COMPLETED else "tasks_failed"] += 1
        if a.started_at:
            st["busy_s"] += _seconds(a.started_at, a.ended_at)
    for st in stations.values():
        n = st["tasks_completed"] + st["tasks_failed"]
        st["busy_s"] = round(st["busy_s"], 1)
        st["mean_cycle_s"] = round(st["busy_s"] / n, 1) if n else None
    checks = store.count("SELECT count(*) FROM quality WHERE ts >= ? AND ts < ?", (s, e))
    passed = store.count("SELECT count(*) FROM quality WHERE ts >= ? AND ts < ? AND passed", (s, e))
    return {
        "period_start": s,
        "period_end": e,
        "line": {
            "orders_completed": len(done),
            "otd": _ratio(on_time, due),
            "units_completed": units,
            "fpy": _ratio(first_pass, units),
            "units_scrapped": scrapped,
            "quality_checks": _ratio(passed, checks),
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
