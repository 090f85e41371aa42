"""Making a period's report and telling the hub (``report.published``, contract 1.1).

The rendering runs in a child process (gateway/numbers/reports/render.py) under a time
limit: laying out two PDFs is seconds of CPU, which the event loop must not spend while
operators scan. Its files are made in a work folder beside the kept ones, then swapped in
whole, so a page served meanwhile is the old report or the new one, never half of each;
only then is the report's row written, with its event in the same transaction. A report
made again (``linegate report``, or a period closed again) replaces its files and row and
is published again.

Only the gateway appends to the outbox (its ``seq`` counter lives in its memory): a report
made by another process is written with ``pending = 1``, and the gateway's
:meth:`Reports.publish_forever` puts its event in the outbox within seconds (at its next
start, if it is not running), as gateway/access/audit.py does for the CLI's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.clock import iso
from gateway.numbers.analysis import LineShape, bottleneck, drift
from gateway.numbers.closing import Closing
from gateway.numbers.kpis import kpi_doc
from gateway.numbers.model import Elements, Words
from gateway.numbers.periods import Period, previous
from gateway.numbers.reports.data import PeriodInfo, PreviousPeriod, ReportInput
from gateway.numbers.reports.store import ReportRow, list_reports, reports_folder
from gateway.numbers.reports.tables import headline
from gateway.orderbook.context import LineContext

__all__ = ["PUBLISH_INTERVAL_S", "RENDER_TIMEOUT_S", "REPORT_PUBLISHED", "Reports", "event_data"]

logger = logging.getLogger(__name__)

REPORT_PUBLISHED = "report.published"
# A month's report on a Pi takes some seconds; far beyond that something is wrong.
RENDER_TIMEOUT_S = 300.0
# How often the gateway looks for reports another process made.
PUBLISH_INTERVAL_S = 5.0
_RENDER = "gateway.numbers.reports.render"


def event_data(row: ReportRow) -> dict[str, Any]:
    """``report.published``'s data: the contract's fields, and the period's label."""
    return {
        "report_id": row.report_id,
        "kind": row.kind,
        "period_start": row.period_start,
        "period_end": row.period_end,
        "timezone": row.timezone,
        "label": row.label,
        "summary": row.summary,
        # The config knows no public address of the gateway: the path it serves it at.
        "url": f"/reports/{row.report_id}",
        "sha256": row.sha256,
    }


class Reports:
    """Makes reports (closing.ReportMaker) and publishes them.

    ``in_gateway``: this process is the gateway and emits ``report.published`` itself;
    otherwise (``linegate report``) the row waits for the gateway to publish it.
    ``keep_shifts``: shift reports whose period ended longer ago than this are deleted
    when a newer one is made (None: kept).
    """

    def __init__(
        self,
        core: LineContext,
        closing: Closing,
        *,
        in_gateway: bool = True,
        folder: Path | None = None,
        timeout_s: float = RENDER_TIMEOUT_S,
        keep_shifts: timedelta | None = None,
    ) -> None:
        self.core = core
        self.closing = closing
        self.in_gateway = in_gateway
        self.folder = folder or reports_folder(core.store)
        self.timeout_s = timeout_s
        self.keep_shifts = keep_shifts

    # -- closing.ReportMaker ------------------------------------------------------------

    async def publish(self, period: Period, elements: Elements, kpis: dict[str, Any]) -> None:
        await self.make(period, elements, kpis)

    # -- making one ---------------------------------------------------------------------

    async def make(
        self, period: Period, elements: Elements, kpis: dict[str, Any]
    ) -> ReportRow | None:
        """Render, keep and publish one period's report; None when it could not be made
        (logged: the period's numbers are kept all the same)."""
        report = self.input(period, elements, kpis)
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".work-", dir=self.folder))
        try:
            source = work / "input.json"
            await asyncio.to_thread(source.write_bytes, report.canonical())
            out = work / "out"
            if not await self._render(source, out, period.key):
                return None
            digest = await asyncio.to_thread(_sha256, out / "report.json")
            await asyncio.to_thread(_swap, out, self.folder / period.report_id)
            row = ReportRow(
                report_id=period.report_id,
                kind=period.kind.value,
                period_start=iso(period.start),
                period_end=iso(period.end),
                label=period.label,
                timezone=report.period.timezone,
                created_at=report.generated_at,
                sha256=digest,
                summary=headline(report.figures()),
            )
            self._keep(row)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
        logger.info("report %s made in %s", row.report_id, self.folder / row.report_id)
        if self.keep_shifts is not None:
            await self._forget_old_shifts(self.keep_shifts)
        return row

    def input(self, period: Period, elements: Elements, kpis: dict[str, Any]) -> ReportInput:
        """What the report is made from: the period's figures and the previous period's."""
        config = self.core.config
        zone = config.line.timezone
        before = previous(period, config.shifts, config.line.tzinfo)
        kept = self.closing.stored(before) if before is not None else None
        prev = None
        if before is not None and kept is not None:
            prev = PreviousPeriod(
                label=before.label, kpis=kpi_doc(kept, before, zone), elements=kept
            )
        said, changes = self._analysis(elements, kept)
        return ReportInput(
            line_id=config.gateway_id,
            line_name=config.line.name or config.gateway_id,
            language=config.line.language,
            period=PeriodInfo(
                kind=period.kind.value,
                key=period.key,
                label=period.label,
                report_id=period.report_id,
                start=iso(period.start),
                end=iso(period.end),
                timezone=zone,
                shift=period.shift,
            ),
            generated_at=self.core.now_iso(),
            kpis=kpis,
            elements=elements,
            previous=prev,
            bottleneck=said,
            changes=changes,
            currency=elements.currency or config.costs.currency,
            operator_names={op.badge: op.name for op in config.operators},
            station_names={sid: st.name for sid, st in config.stations.items() if st.name},
        )

    def _analysis(self, now: Elements, before: Elements | None) -> tuple[list[Words], list[Words]]:
        """The bottleneck, and what drove each headline KPI's change since the previous
        period (gateway/numbers/analysis), in words."""
        found = bottleneck(now, LineShape.of(self.core))
        said = [found.words] if found is not None else []
        if before is None:
            return said, []
        return said, [c.words for c in drift(now, before) if c.delta is not None]

    async def _render(self, source: Path, out: Path, key: str) -> bool:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            _RENDER,
            str(source),
            str(out),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                _, err = await proc.communicate()
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            logger.error("the %s report took over %.0f s: stopped, no report", key, self.timeout_s)
            return False
        except BaseException:  # cancelled: the child must not outlive its reason
            _kill(proc)
            await proc.wait()
            raise
        tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-5:])
        if proc.returncode != 0:
            logger.error(
                "the %s report could not be rendered (exit %s): %s", key, proc.returncode, tail
            )
            return False
        if tail:  # made, with something to say (no PDF without Pango)
            logger.warning("the %s report: %s", key, tail)
        return True

    def _keep(self, row: ReportRow) -> None:
        """The row, and its event when this is the gateway: one transaction."""
        with self.core.store.transaction():
            self.core.store.conn.execute(
                "INSERT OR REPLACE INTO reports (report_id, kind, period_start, period_end, "
                "label, timezone, created_at, sha256, summary, pending) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.report_id,
                    row.kind,
                    row.period_start,
                    row.period_end,
                    row.label,
                    row.timezone,
                    row.created_at,
                    row.sha256,
                    json.dumps(row.summary),
                    0 if self.in_gateway else 1,
                ),
            )
            if self.in_gateway:
                self.core.emit(REPORT_PUBLISHED, event_data(row))

    async def _forget_old_shifts(self, age: timedelta) -> None:
        before = iso(self.core.clock.now() - age)
        old = [r for r in list_reports(self.core.store, "shift", 100_000) if r.period_end < before]
        if not old:
            return
        with self.core.store.transaction():
            self.core.store.conn.executemany(
                "DELETE FROM reports WHERE report_id = ?", [(r.report_id,) for r in old]
            )
        for r in old:
            await asyncio.to_thread(shutil.rmtree, self.folder / r.report_id, True)

    # -- reports another process made ---------------------------------------------------

    def publish_pending(self) -> int:
        """Put ``report.published`` of every report made by another process in the outbox,
        in the current transaction; returns how many."""
        store = self.core.store
        rows = store.fetch_all(ReportRow, "SELECT * FROM reports WHERE pending = 1")
        for row in rows:
            self.core.emit(REPORT_PUBLISHED, event_data(row))
            store.conn.execute(
                "UPDATE reports SET pending = 0 WHERE report_id = ?", (row.report_id,)
            )
        return len(rows)

    async def publish_forever(self, interval_s: float = PUBLISH_INTERVAL_S) -> None:
        """The gateway's task that publishes the reports ``linegate report`` made (and,
        at its start, clears the work folders a stop in the middle of one left)."""
        await asyncio.to_thread(_sweep, self.folder)
        said: str | None = None
        while True:
            try:
                if self.core.store.exists("SELECT 1 FROM reports WHERE pending = 1"):
                    with self.core.store.transaction():
                        self.publish_pending()
                said = None
            except sqlite3.Error as exc:  # busy or full: the rows wait for the next look
                if str(exc) != said:
                    said = str(exc)
                    logger.warning("reports wait for publication to the hub: %s", exc)
            await asyncio.sleep(interval_s)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _swap(new: Path, target: Path) -> None:
    """``new`` in the place of ``target`` (renames within one folder: each is atomic)."""
    old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _sweep(folder: Path, age_s: float = 3600.0) -> None:
    """Work folders older than ``age_s`` (a younger one may be a ``linegate report``'s)."""
    if not folder.is_dir():
        return
    now = time.time()
    for entry in folder.iterdir():
        if entry.name.startswith((".work-", ".old-")) and now - entry.stat().st_mtime > age_s:
            shutil.rmtree(entry, ignore_errors=True)


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
