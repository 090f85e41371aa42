"""Retention: the raw history is pruned, the numbers are kept.

Once a day (and at start), rows older than ``[retention] raw_days`` are deleted — the
orders packed or cancelled before then with everything of theirs (units, work orders,
tasks, attempts, lots consumed, checks, defects, labels, print jobs, stages, costs), and
the line's own records (station states, attendance, refusals, rejected messages, cleared
alarms) — but never past:

- an event the hub has not acknowledged (the oldest one still in the outbox): the hub
  receives everything before anything is forgotten;
- a period not closed yet: every shift and day before the cut has its elements kept
  (``rollups``; a day the gateway never closed, e.g. before this version, is rolled up
  here first), so a report for a pruned period regenerates from them with the same
  figures (gateway/numbers/closing.py reads the kept elements before the cut).

The cut is a local midnight, and moves forward only. Deleting runs in batches, each its
own short transaction with the event loop free between them. The file does not grow back:
SQLite reuses the freed pages; a database created with ``auto_vacuum=INCREMENTAL``
(gateway/store/db.py) also hands them back to the file system a few hundred pages at a
time (``PRAGMA incremental_vacuum``), never with a VACUUM that would rewrite the whole file
on the SD card.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.clock import iso
from gateway.numbers.closing import Closing
from gateway.numbers.periods import PeriodKind, closed_between, parse_period
from gateway.orderbook.context import LineContext

__all__ = ["Pruned", "Retention"]

logger = logging.getLogger(__name__)

_RAW_SINCE = "numbers_raw_since"
_MARK = "numbers_closed_through"
_BATCH = 200  # orders per transaction
_RECLAIM_PAGES = 256

# Everything of an order, by its id (order last: the others name it).
_ORDER_TABLES = (
    "print_jobs",  # by label, below
    "labels",
    "consumption",
    "quality",
    "defects",
    "attempts",
    "reservations",
    "tasks",
    "units",
    "work_orders",
    "order_progress",
    "order_stages",
    "order_costs",
    "orders",
)


@dataclass
class Pruned:
    """What one pass deleted."""

    cut: str | None = None
    orders: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    rolled_up: list[str] = field(default_factory=list)
    pages_reclaimed: int = 0

    def count(self, table: str, n: int) -> None:
        if n:
            self.rows[table] = self.rows.get(table, 0) + n


class Retention:
    def __init__(self, core: LineContext, closing: Closing) -> None:
        self.core = core
        self.closing = closing
        self.settings = core.config.retention

    async def run(self, every_s: float = 3600.0) -> None:
        while True:
            try:
                pruned = await self.prune(self.core.clock.now())
                if pruned.orders or pruned.rows:
                    logger.info(
                        "retention: history before %s pruned (%d orders, %s)",
                        pruned.cut,
                        pruned.orders,
                        pruned.rows,
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("retention failed; retrying later")
            await asyncio.sleep(every_s)

    def cut_for(self, now: datetime) -> datetime | None:
        """Where the raw history may be cut now (a local midnight), or None."""
        store = self.core.store
        tz = self.core.config.line.tzinfo
        cut = now - timedelta(days=self.settings.raw_days)
        mark = store.get_setting(_MARK)
        if mark is None:
            return None  # no period closed yet: nothing is kept to regenerate from
        cut = min(cut, datetime.fromisoformat(mark))
        first = self.core.outbox.peek(0, 1)
        if first:
            cut = min(cut, datetime.fromisoformat(json.loads(first[0].payload)["ts"]))
        local = cut.astimezone(tz)
        midnight = parse_period(f"day:{local.date().isoformat()}", [], tz).start
        since = store.get_setting(_RAW_SINCE)
        if since is not None and midnight <= datetime.fromisoformat(since):
            return None
        return midnight

    async def prune(self, now: datetime) -> Pruned:
        out = Pruned()
        cut = self.cut_for(now)
        if cut is None:
            await self._reclaim(out)
            return out
        await self._keep_numbers_before(cut, out)
        c = iso(cut)
        out.cut = c
        store = self.core.store
        while True:
            ids = store.texts(
                "SELECT order_id FROM orders WHERE (completed_at IS NOT NULL AND completed_at < ?)"
                " OR (status = 'cancelled' AND accepted_at < ? AND ship_by < ?) LIMIT ?",
                (c, c, c, _BATCH),
            )
            if not ids:
                break
            marks = ",".join("?" * len(ids))
            with store.transaction() as conn:
                for table in _ORDER_TABLES:
                    if table == "print_jobs":
                        sql = (
                            "DELETE FROM print_jobs WHERE label_id IN (SELECT label_id FROM "
                            f"labels WHERE order_id IN ({marks}))"
                        )
                    else:
                        sql = f"DELETE FROM {table} WHERE order_id IN ({marks})"
                    out.count(table, conn.execute(sql, ids).rowcount)
            out.orders += len(ids)
            await asyncio.sleep(0)
        interval_cut = iso(now - timedelta(days=self.settings.interval_days))
        with store.transaction() as conn:
            for table, sql, params in (
                ("station_states", "DELETE FROM station_states WHERE until < ?", (c,)),
                ("attendance", "DELETE FROM attendance WHERE until < ?", (c,)),
                ("refusals", "DELETE FROM refusals WHERE ts < ?", (c,)),
                ("rejections", "DELETE FROM rejections WHERE ts < ?", (c,)),
                ("consumption", "DELETE FROM consumption WHERE ts < ? AND order_id IS NULL", (c,)),
                ("alarms", "DELETE FROM alarms WHERE cleared_at < ?", (c,)),
                ("period_plans", "DELETE FROM period_plans WHERE period_end < ?", (c,)),
                (
                    "rollups",
                    "DELETE FROM rollups WHERE kind = ? AND period_end < ?",
                    (PeriodKind.INTERVAL.value, interval_cut),
                ),
            ):
                out.count(table, conn.execute(sql, params).rowcount)
            store.set_setting(_RAW_SINCE, c)
        await self._reclaim(out)
        return out

    async def _keep_numbers_before(self, cut: datetime, out: Pruned) -> None:
        """Roll up every shift and day before the cut that has raw rows and no kept
        elements (history from before the numbers began), without reporting them again."""
        store = self.core.store
        oldest = store.texts("SELECT min(accepted_at) FROM orders WHERE accepted_at IS NOT NULL")
        since = store.get_setting(_RAW_SINCE)
        begin_text = since or (oldest[0] if oldest and oldest[0] != "None" else None)
        if begin_text is None:
            return
        begin = datetime.fromisoformat(begin_text) - timedelta(days=1)
        config = self.core.config
        for period in closed_between(config.shifts, config.line.tzinfo, begin, cut):
            if period.kind not in (PeriodKind.SHIFT, PeriodKind.DAY):
                continue
            if self.closing.stored(period) is not None:
                continue
            el = await self.closing.elements(period, raw=True)
            with store.transaction():
                store.conn.execute(
                    "INSERT OR IGNORE INTO rollups (kind, period_start, period_end, label, "
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
            out.rolled_up.append(period.key)

    async def _reclaim(self, out: Pruned) -> None:
        """Hand freed pages back to the file system, a few at a time (INCREMENTAL only)."""
        conn = self.core.store.conn
        if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
            return
        while int(conn.execute("PRAGMA freelist_count").fetchone()[0]) > 0:
            before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            with self.core.store.transaction():
                conn.execute(f"PRAGMA incremental_vacuum({_RECLAIM_PAGES})")
            after = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            out.pages_reclaimed += before - after
            if after >= before:
                break
            await asyncio.sleep(0)
