"""The site board's figures per line, read from the views (board_views) and the store's
``lines`` table, and from the metrics scraper's memory.

Definitions (what the tests check by hand):
- throughput last hour: units and orders completed in the current UTC minute and the 59
  before it (board_minutes, by each event's ``ts``);
- OTD today: of the orders completed since local midnight (the site's time zone) whose
  ship-by is known, the share completed at or before it (Σ on time / Σ completed);
- WIP: orders accepted, neither completed nor cancelled;
- alarms: open ones (last raise newer than last clear), the highest severity, the oldest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from office.answer.board_scrape import LineHealth
from office.answer.board_views import LATEST, minute_of, utc_text
from office.store import LineReport, schema

__all__ = [
    "AlarmRow",
    "BoardLine",
    "LineState",
    "Otd",
    "local_day",
    "read_lines",
    "severity_rank",
]

_SEVERITIES = ("warning", "major", "critical")  # the gateway's, lowest first


def severity_rank(severity: str | None) -> int:
    """Unknown severities rank lowest (still shown)."""
    return _SEVERITIES.index(severity) + 1 if severity in _SEVERITIES else 0


class LineState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # never said (no retained status yet)


@dataclass(frozen=True)
class AlarmRow:
    alarm_id: str
    severity: str | None
    kind: str | None
    source: str | None
    message: str | None
    since: str | None


@dataclass(frozen=True)
class Otd:
    on_time: int
    completed: int

    @property
    def ratio(self) -> float | None:
        return round(self.on_time / self.completed, 4) if self.completed else None


@dataclass(frozen=True)
class BoardLine:
    gateway_id: str
    state: LineState
    state_since: str | None
    held_through: int
    highest_seq: int
    gaps: list[tuple[int, int]]
    last_seen: str | None
    units_last_hour: int
    orders_last_hour: int
    otd_today: Otd
    alarms_open: int
    highest_severity: str | None
    oldest_alarm: AlarmRow | None
    wip: int
    kpi_period: str | None  # the latest kpi.snapshot's period, e.g. "daily 2026-11-10"
    kpi_oee: float | None
    health: LineHealth | None  # None: no metrics_url for this line
    metrics_configured: bool


def local_day(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[midnight, next midnight) of ``now``'s local day, as aware datetimes."""
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


async def read_lines(
    conn: AsyncConnection,
    report: Iterable[LineReport],
    configured: Iterable[str],
    now: datetime,
    zone: ZoneInfo,
    health: dict[str, LineHealth | None],
) -> list[BoardLine]:
    """Every line heard from or configured, in gateway_id order."""
    known = {line.gateway_id: line for line in report}
    ids = sorted(set(known) | set(configured))
    hour_from = minute_of(now - timedelta(minutes=59))
    hour_to = minute_of(now)
    start, end = local_day(now, zone)
    m, o, a, k = schema.board_minutes, schema.board_orders, schema.board_alarms, schema.board_kpis
    made = {
        r.gateway_id: (int(r.units or 0), int(r.orders or 0))
        for r in await conn.execute(
            select(
                m.c.gateway_id,
                func.sum(m.c.units).label("units"),
                func.sum(m.c.orders).label("orders"),
            )
            .where(m.c.minute >= hour_from, m.c.minute <= hour_to)
            .group_by(m.c.gateway_id)
        )
    }
    today = and_(o.c.completed_at >= utc_text(start), o.c.completed_at < utc_text(end))
    otd: dict[str, Otd] = {}
    for r in await conn.execute(
        select(o.c.gateway_id, o.c.completed_at, o.c.ship_by).where(today, o.c.ship_by.is_not(None))
    ):
        before = otd.get(r.gateway_id, Otd(0, 0))
        otd[r.gateway_id] = Otd(
            before.on_time + (1 if r.completed_at <= r.ship_by else 0), before.completed + 1
        )
    wip = {
        r.gateway_id: int(r.n)
        for r in await conn.execute(
            select(o.c.gateway_id, func.count().label("n"))
            .where(
                o.c.accepted_at.is_not(None),
                o.c.completed_at.is_(None),
                o.c.cancelled_at.is_(None),
            )
            .group_by(o.c.gateway_id)
        )
    }
    open_alarms: dict[str, list[AlarmRow]] = {}
    for r in await conn.execute(
        select(a)
        .where(
            a.c.raised_seq.is_not(None),
            or_(a.c.cleared_seq.is_(None), a.c.cleared_seq < a.c.raised_seq),
        )
        .order_by(a.c.gateway_id, a.c.since, a.c.alarm_id)
    ):
        open_alarms.setdefault(r.gateway_id, []).append(
            AlarmRow(r.alarm_id, r.severity, r.kind, r.source, r.message, r.since)
        )
    latest = {
        r.gateway_id: json.loads(r.doc)
        for r in await conn.execute(select(k.c.gateway_id, k.c.doc).where(k.c.kind == LATEST))
    }
    lines = []
    for gid in ids:
        line = known.get(gid)
        alarms = open_alarms.get(gid, [])
        state, since = _state(line.status if line else None)
        units, orders = made.get(gid, (0, 0))
        kpi = latest.get(gid)
        lines.append(
            BoardLine(
                gateway_id=gid,
                state=state,
                state_since=since,
                held_through=line.held_through if line else 0,
                highest_seq=line.highest_seq if line else 0,
                gaps=list(line.gaps) if line else [],
                last_seen=line.last_seen if line else None,
                units_last_hour=units,
                orders_last_hour=orders,
                otd_today=otd.get(gid, Otd(0, 0)),
                alarms_open=len(alarms),
                highest_severity=max((x.severity for x in alarms), key=severity_rank, default=None),
                oldest_alarm=alarms[0] if alarms else None,
                wip=wip.get(gid, 0),
                kpi_period=_period_name(kpi),
                kpi_oee=_oee(kpi),
                health=health.get(gid),
                metrics_configured=gid in health,
            )
        )
    return lines


def _state(status: dict[str, Any] | None) -> tuple[LineState, str | None]:
    if not status:
        return LineState.UNKNOWN, None
    state = status.get("state")
    ts = status.get("ts")
    since = ts if isinstance(ts, str) else None
    if state == "online":
        return LineState.ONLINE, since
    if state == "offline":
        return LineState.OFFLINE, since
    return LineState.UNKNOWN, since


def _period_name(kpi: dict[str, Any] | None) -> str | None:
    if kpi is None:
        return None
    period = kpi.get("period")
    if isinstance(period, dict) and isinstance(period.get("key"), str):
        return str(period["key"])
    start = kpi.get("period_start")
    return str(start) if start is not None else None


def _oee(kpi: dict[str, Any] | None) -> float | None:
    line = kpi.get("line") if kpi else None
    value = line.get("oee") if isinstance(line, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
