"""Closing the periods: when a shift, day, week or month ends on the gateway's clock, its
elements are computed, kept (``rollups``), reported (``kpi.snapshot``) and handed to the
report maker; when one begins, what the plan then in force expects of it is noted
(``period_plans``: output against plan).

The work runs on the event loop in small parts with a yield between them (a quarter
of an hour of history at a time, a few queries per part), so an operator's scan never waits behind a
month's numbers. A day is computed from its hours; a week and a month are the sum of their
days' kept elements (the same figures as the days' reports, and cheap). A period closed is
closed once: the rollup and its snapshot are one transaction, with the mark of how far
closing got, so a restart neither repeats nor skips one; reports missing for a kept rollup
(the gateway stopped in between) are made at the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from gateway.clock import iso
from gateway.numbers.elements import compute_parts
from gateway.numbers.kpis import kpi_doc
from gateway.numbers.model import Elements, LateOrder, Words
from gateway.numbers.periods import (
    Period,
    PeriodKind,
    closed_between,
    parse_period,
    started_between,
)
from gateway.orderbook.context import LineContext

__all__ = ["Closing", "PlanOutlook", "ReportMaker", "WhyLate"]

logger = logging.getLogger(__name__)

_MARK = "numbers_closed_through"
_PRUNED = "numbers_raw_since"  # gateway/numbers/retention.py: raw rows kept from here on
# Raw history is read a quarter of an hour at a time: on a promotion day that is a few
# hundred attempts, a few milliseconds between two yields.
_SLICE = timedelta(minutes=15)
# After a long stop, periods that ended further back than this are not closed any more
# (their raw rows are still there: a report can be made for one on request).
CATCH_UP = timedelta(days=35)

# What the current plan completes in [start, end): (units, orders, source); None: no plan.
PlanOutlook = Callable[[datetime, datetime], tuple[int, int, str] | None]
# Why an order was late, from its history up to the period's end.
WhyLate = Callable[[LineContext, LateOrder, datetime], list[Words]]


class ReportMaker(Protocol):
    async def publish(self, period: Period, elements: Elements, kpis: dict[str, Any]) -> None:
        """Make the period's report and tell the hub (``report.published``)."""


class Closing:
    def __init__(
        self,
        core: LineContext,
        *,
        why_late: WhyLate | None = None,
        plan_outlook: PlanOutlook | None = None,
        reports: ReportMaker | None = None,
    ) -> None:
        self.core = core
        self.why_late = why_late
        self.plan_outlook = plan_outlook
        self.reports = reports
        self.interval_s = core.config.policies.kpi_interval_s
        self._tz = core.config.line.tzinfo
        self._shifts = core.config.shifts
        self._stepped: datetime | None = None  # the last step's instant

    # -- the loop ---------------------------------------------------------------------

    async def run(self, poll_s: float = 1.0) -> None:
        """Close each period as its end passes on the gateway's clock. Polled rather than
        slept until the boundary: the clock may be scaled (the demo) or jump (NTP)."""
        await self._reports_owed()
        while True:
            try:
                await self.step(self.core.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                # The numbers must never take the line down; the next poll tries again.
                logger.exception("closing the periods failed; retrying")
            await asyncio.sleep(poll_s)

    async def step(self, now: datetime) -> list[Period]:
        """Note the plan for periods begun and close periods ended since the last step.
        The mark of how far closing got moves with each period closed (to its end), not
        with the clock."""
        store = self.core.store
        mark = store.get_setting(_MARK)
        if mark is None:
            # A new gateway: numbers start now, not with periods from before it ran.
            with store.transaction():
                store.set_setting(_MARK, iso(now))
            return []
        last = max(datetime.fromisoformat(mark), now - CATCH_UP)
        if now <= last:
            return []
        # Periods begun since the last step (in memory: a step that closes nothing writes
        # nothing, or an idle line would commit every second and wear the SD card).
        seen = max(last, self._stepped) if self._stepped is not None else last
        for p in started_between(self._shifts, self._tz, seen, now):
            self._note_plan(p)
        self._stepped = now
        closed = closed_between(self._shifts, self._tz, last, now, self.interval_s)
        for p in closed:
            await self.close(p)
        return closed

    def _note_plan(self, period: Period) -> None:
        outlook = self.plan_outlook(period.start, period.end) if self.plan_outlook else None
        if outlook is None:
            return
        units, orders, source = outlook
        with self.core.store.transaction():
            self.core.store.conn.execute(
                "INSERT OR IGNORE INTO period_plans (kind, period_start, period_end, units, "
                "orders, source, made_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    period.kind.value,
                    iso(period.start),
                    iso(period.end),
                    units,
                    orders,
                    source,
                    self.core.now_iso(),
                ),
            )

    # -- one period -------------------------------------------------------------------

    async def close(self, period: Period) -> Elements:
        """Compute, keep and report one period (once: a period kept already is reported
        from what was kept)."""
        store = self.core.store
        kept = self.stored(period)
        el = kept if kept is not None else await self.elements(period)
        if kept is None and self.why_late is not None:
            for late in el.late:
                late.why = self.why_late(self.core, late, period.end)
                await asyncio.sleep(0)
        doc = kpi_doc(el, period, self.core.config.line.timezone)
        with store.transaction():
            if kept is None:
                store.conn.execute(
                    "INSERT OR REPLACE INTO rollups (kind, period_start, period_end, label, "
                    "doc, computed_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        period.kind.value,
                        el.start,
                        el.end,
                        period.label,
                        el.model_dump_json(),
                        self.core.now_iso(),
                    ),
                )
                self.core.emit("kpi.snapshot", doc)
            mark = store.get_setting(_MARK)
            if mark is None or datetime.fromisoformat(mark) < period.end:
                store.set_setting(_MARK, iso(period.end))
        if period.kind is not PeriodKind.INTERVAL and self.reports is not None:
            try:
                await self.reports.publish(period, el, doc)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the %s report could not be made", period.key)
        return el

    def stored(self, period: Period) -> Elements | None:
        text = self.core.store.texts(
            "SELECT doc FROM rollups WHERE kind = ? AND period_start = ? AND period_end = ?",
            (period.kind.value, iso(period.start), iso(period.end)),
        )
        return Elements.model_validate_json(text[0]) if text else None

    def raw_since(self) -> datetime | None:
        """Raw rows are kept from this instant on (None: never pruned)."""
        text = self.core.store.get_setting(_PRUNED)
        return datetime.fromisoformat(text) if text else None

    async def elements(self, period: Period, *, raw: bool = False) -> Elements:
        """The elements of a period: a week or month from its days' kept elements when all
        are kept (``raw``: from the raw rows, even so), anything else from the raw rows, a
        quarter of an hour at a time; a period whose raw rows were pruned from kept
        elements only."""
        if period.kind in (PeriodKind.WEEK, PeriodKind.MONTH) and not raw:
            days = self._days_kept(period)
            if days is not None:
                return days
        since = self.raw_since()
        if since is not None and period.start < since:
            kept = self.stored(period) or self._days_kept(period)
            if kept is None:
                raise LookupError(
                    f"{period.key}: its raw history was pruned and its numbers were not kept"
                )
            return kept
        el: Elements | None = None
        at = period.start
        while at < period.end:
            nxt = min(at + _SLICE, period.end)
            part: Elements | None = None
            for step in compute_parts(self.core, at, nxt):
                part = step
                await asyncio.sleep(0)
            assert part is not None
            if el is None:
                el = part
            else:
                el.absorb(part)
            at = nxt
        assert el is not None
        plan = self.core.store.conn.execute(
            "SELECT units, orders, source FROM period_plans WHERE kind = ? AND period_start = ?",
            (period.kind.value, iso(period.start)),
        ).fetchone()
        if plan is not None:
            el.planned_units, el.planned_orders, el.plan_source = (
                int(plan[0]),
                int(plan[1]),
                str(plan[2]),
            )
        else:
            el.planned_units = el.planned_orders = el.plan_source = None
        return el

    def _days_kept(self, period: Period) -> Elements | None:
        days = []
        at = period.start
        while at < period.end:
            day = parse_period(f"day:{at.astimezone(self._tz).date().isoformat()}", [], self._tz)
            kept = self.stored(day)
            if kept is None:
                return None
            days.append(kept)
            at = day.end
        return Elements.total(days) if days else None

    async def regenerate(self, period: Period, *, raw: bool = True) -> Elements:
        """A past period's elements again, from the stored history (the report maker's
        "make it again"); the late orders' reasons are worked out again too."""
        el = await self.elements(period, raw=raw)
        if self.why_late is not None:
            for late in el.late:
                if not late.why:
                    late.why = self.why_late(self.core, late, period.end)
        return el

    async def _reports_owed(self) -> None:
        """Reports of kept periods the gateway stopped before making."""
        if self.reports is None:
            return
        rows = self.core.store.conn.execute(
            "SELECT r.kind, r.label FROM rollups r WHERE r.kind != 'interval' AND NOT EXISTS "
            "(SELECT 1 FROM reports p WHERE p.kind = r.kind AND p.period_start = r.period_start)"
        ).fetchall()
        for kind, label in rows:
            key = {"shift": "shift", "daily": "day", "weekly": "week", "monthly": "month"}[kind]
            period = parse_period(f"{key}:{str(label).replace(' ', ':')}", self._shifts, self._tz)
            el = self.stored(period)
            if el is not None:
                try:
                    await self.reports.publish(
                        period, el, kpi_doc(el, period, self.core.config.line.timezone)
                    )
                except Exception:
                    logger.exception("the %s report could not be made", period.key)
