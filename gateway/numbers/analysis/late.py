"""Why an order was late, from its own history in the store.

The causes looked for, each with an amount of time so that the largest come first:

- *material*: the order waited for material (``order_stages``: from reaching
  ``waiting_material`` to its next stage), naming the materials of its BOM whose shortage
  alarm was up meanwhile;
- *scrap*: a unit was scrapped and remade (from the defect to the replacement's last
  operation); *rework*: a unit failed and was done again (from the defect to the task's
  next completion);
- *queue*: its work waited before a station, from ready (the unit's previous attempt
  ended, or it was made; for packing, its last unit done) to taken, outside the material
  waits; parallel waits before the same station count once;
- *hold*: a station it was in was held, faulted or paused while its task was in hand
  (``station_states`` with a fault or hold state overlapping the task, by reason);
- *slow*: its completed attempts took longer than their standard times, holds aside;
- *accepted late*: accepted with less time to its ship-by than its work takes at standard
  times (its longest unit's operations one after another, then packing: the least it could
  take on an idle line; changeovers not counted, so the claim is certain when made);
- and, not a cause but a fact a reader wants next to them, that it was *still open* at the
  period's end.

Queues, holds and slowness under a minute are not named. Every query is by the order (its
id, its units' serials, its tasks' stations around its tasks' times): the cost is the
order's own history, whatever the size of the store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Self

from gateway.clock import iso
from gateway.i18n import Text, listing, t
from gateway.numbers.analysis.saying import duration, words
from gateway.numbers.elements import HARD_FAULTS, SOFT_FAULTS
from gateway.numbers.model import LateOrder, Words
from gateway.numbers.periods import Window, merge
from gateway.orderbook.context import LineContext
from gateway.orderbook.progress import Stage
from gateway.orderbook.tasks import PACK
from gateway.planner.scenarios import PACK_PER_EXTRA_UNIT_S
from gateway.store.documents import SkuSnapshot
from gateway.store.rows import (
    AlarmRow,
    AttemptRow,
    DefectRow,
    Disposition,
    OrderRow,
    Outcome,
    TaskRow,
    TaskStatus,
    UnitRow,
    UnitStatus,
    WorkOrderRow,
)

__all__ = ["MAX_REASONS", "Cause", "CauseKind", "causes", "why_late"]

MAX_REASONS = 3
MIN_S = 60.0  # queues, holds and slowness shorter than this are not named
_FAULTS = HARD_FAULTS | SOFT_FAULTS


class CauseKind(StrEnum):
    MATERIAL = "material"
    SCRAP = "scrap"
    REWORK = "rework"
    QUEUE = "queue"
    HOLD = "hold"
    SLOW = "slow"
    ACCEPTED_LATE = "accepted_late"
    OPEN = "open"  # still open at the period's end (not a cause: said after them)


@dataclass(frozen=True, slots=True)
class Cause:
    kind: CauseKind
    seconds: float  # how much it weighed: the largest first
    subject: str | None  # the station, material or serial it is about
    text: Text


def why_late(core: LineContext, late: LateOrder, *, until: datetime | None = None) -> list[Words]:
    """At most :data:`MAX_REASONS` sentences, the largest cause first; ``until`` is the
    period's end (default: now): history after it is not looked at."""
    return [words(c.text) for c in causes(core, late, until=until)]


def causes(core: LineContext, late: LateOrder, *, until: datetime | None = None) -> list[Cause]:
    """:func:`why_late`'s causes, typed: the largest first, at most :data:`MAX_REASONS`;
    *still open* after them when there is room; when nothing is on record, one sentence
    saying so."""
    end = until or core.clock.now()
    h = _History.read(core, late.order_id, end)
    if h is None:
        return []
    found = [
        *h.material(core),
        *h.defects(),
        *h.queues(core),
        *h.holds_and_slowness(core),
        *h.accepted_late(core),
    ]
    found.sort(key=lambda c: (-c.seconds, c.kind.value, c.subject or ""))
    out = found[:MAX_REASONS]
    done = _t(late.completed_at) if late.completed_at else None
    if done is None or done > end:
        if len(out) < MAX_REASONS:
            past = (end - h.ship_by).total_seconds()
            text = (
                t("still open at the period's end, {late} past its ship-by", late=duration(past))
                if past > 0
                else t("still open at the period's end")
            )
            out.append(Cause(CauseKind.OPEN, max(0.0, past), None, text))
    elif not out:
        text = t(
            "late by {late}; no wait, hold or defect on record",
            late=duration((done - h.ship_by).total_seconds()),
        )
        out.append(Cause(CauseKind.OPEN, 0.0, None, text))
    return out


# -- the order's history -----------------------------------------------------------------


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _s(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def _total(windows: list[Window]) -> float:
    return sum(_s(a, b) for a, b in merge(windows))


def _minus(windows: list[Window], holes: list[Window]) -> list[Window]:
    out = []
    for s, e in windows:
        pieces = [(s, e)]
        for hs, he in holes:
            nxt: list[Window] = []
            for ps, pe in pieces:
                if he <= ps or hs >= pe:
                    nxt.append((ps, pe))
                    continue
                if ps < hs:
                    nxt.append((ps, hs))
                if he < pe:
                    nxt.append((he, pe))
            pieces = nxt
        out.extend(pieces)
    return out


def _overlap(a: Window, b: Window) -> Window | None:
    s, e = max(a[0], b[0]), min(a[1], b[1])
    return (s, e) if e > s else None


@dataclass(frozen=True, slots=True)
class _StageAt:
    stage: str
    at: datetime

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        return cls(str(r["stage"]), _t(str(r["at"])))


@dataclass(frozen=True, slots=True)
class _State:
    station: str
    state: str
    reason: str | None
    since: datetime
    until: datetime | None

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        return cls(
            str(r["station"]),
            str(r["state"]),
            None if r["reason"] is None else str(r["reason"]),
            _t(str(r["since"])),
            None if r["until"] is None else _t(str(r["until"])),
        )


@dataclass(frozen=True, slots=True)
class _InHand:
    """A task at a station: taken → ended (or the period's end), started when it was."""

    station: str
    taken: datetime
    started: datetime | None
    ended: datetime
    completed: bool
    standard_s: float | None


@dataclass(slots=True)
class _History:
    order: OrderRow
    end: datetime
    ship_by: datetime
    stages: list[_StageAt]
    attempts: list[AttemptRow]  # taken before the period's end
    later: list[AttemptRow]  # taken since: their work was still waiting at the end
    units: list[UnitRow]
    tasks: list[TaskRow]
    work_orders: list[WorkOrderRow]
    defect_rows: list[DefectRow]

    @classmethod
    def read(cls, core: LineContext, order_id: str, end: datetime) -> _History | None:
        store = core.store
        order = store.fetch_one(OrderRow, "SELECT * FROM orders WHERE order_id = ?", (order_id,))
        if order is None:
            return None
        units = store.fetch_all(UnitRow, "SELECT * FROM units WHERE order_id = ?", (order_id,))
        serials = [u.serial for u in units]
        # By serial: the defects table has no index by order.
        defects = store.fetch_all(
            DefectRow,
            f"SELECT * FROM defects WHERE serial IN ({','.join('?' * len(serials))}) ORDER BY id",
            serials,
        )
        attempts = store.fetch_all(
            AttemptRow, "SELECT * FROM attempts WHERE order_id = ? ORDER BY id", (order_id,)
        )
        taken = {a.id: _t(a.dispatched_at or a.started_at or a.ended_at) < end for a in attempts}
        return cls(
            order,
            end,
            _t(order.ship_by),
            store.fetch_all(
                _StageAt,
                "SELECT stage, at FROM order_stages WHERE order_id = ? ORDER BY id",
                (order_id,),
            ),
            [a for a in attempts if taken[a.id]],
            [a for a in attempts if not taken[a.id]],
            units,
            store.fetch_all(TaskRow, "SELECT * FROM tasks WHERE order_id = ?", (order_id,)),
            store.fetch_all(
                WorkOrderRow, "SELECT * FROM work_orders WHERE order_id = ?", (order_id,)
            ),
            defects,
        )

    # -- material ------------------------------------------------------------------

    def waits(self) -> list[Window]:
        out = []
        for i, st in enumerate(self.stages):
            if st.stage != Stage.WAITING_MATERIAL or st.at >= self.end:
                continue
            nxt = self.stages[i + 1].at if i + 1 < len(self.stages) else self.end
            out.append((st.at, min(nxt, self.end)))
        return merge(out)

    def material(self, core: LineContext) -> list[Cause]:
        waits = self.waits()
        total = _total(waits)
        if total <= 0:
            return []
        names = self._short_materials(core, waits)
        text = (
            t(
                "waited {duration} for material {materials}",
                duration=duration(total),
                materials=listing(names),
            )
            if names
            else t("waited {duration} for material", duration=duration(total))
        )
        return [Cause(CauseKind.MATERIAL, total, ", ".join(names) or None, text)]

    def _short_materials(self, core: LineContext, waits: list[Window]) -> list[str]:
        """The order's materials whose shortage alarm was up while it waited; failing that
        (the alarm was raised again since, and its row shows only the last time), those
        whose shortage alarm was raised after the wait began."""
        materials = sorted(
            {
                line.material
                for wo in self.work_orders
                for line in SkuSnapshot.model_validate_json(wo.sku_doc).bom
            }
        )
        if not materials:
            return []
        marks = ",".join("?" * len(materials))
        alarms = core.store.fetch_all(
            AlarmRow,
            f"SELECT * FROM alarms WHERE alarm_id IN ({marks}) AND kind = 'material_shortage'",
            [f"shortage:{m}" for m in materials],
        )
        during, later = set(), set()
        first = waits[0][0]
        for a in alarms:
            up = (_t(a.raised_at), _t(a.cleared_at) if a.cleared_at else self.end)
            if any(_overlap(up, w) for w in waits):
                during.add(a.source)
            elif up[0] >= first:
                later.add(a.source)
        return sorted(during or later)

    # -- defects ---------------------------------------------------------------------

    def defects(self) -> list[Cause]:
        found = [
            d
            for d in self.defect_rows
            if d.disposition in (Disposition.SCRAP, Disposition.REWORK) and _t(d.ts) < self.end
        ]
        replacements = {u.replaces: u for u in self.units if u.replaces}
        out = []
        for d in found:
            at = _t(d.ts)
            station = d.station or "?"
            if d.disposition is Disposition.SCRAP:
                new = replacements.get(d.serial) if d.serial else None
                if new is None:
                    text = t(
                        "unit {serial} scrapped at {station} ({reason})",
                        serial=d.serial or "?",
                        station=station,
                        reason=d.reason,
                    )
                    out.append(Cause(CauseKind.SCRAP, 0.0, d.serial, text))
                    continue
                done = _t(new.completed_at) if new.completed_at else self.end
                took = _s(at, min(done, self.end))
                text = t(
                    "unit {serial} scrapped at {station} ({reason}) and remade: {duration}",
                    serial=d.serial or "?",
                    station=station,
                    reason=d.reason,
                    duration=duration(took),
                )
                out.append(Cause(CauseKind.SCRAP, took, d.serial, text))
            else:
                again = [
                    _t(a.ended_at)
                    for a in self.attempts
                    if a.task_id == d.task_id
                    and a.outcome is Outcome.COMPLETED
                    and _t(a.ended_at) >= at
                ]
                took = _s(at, min([*again, self.end]))
                text = t(
                    "unit {serial} failed at {station} ({reason}) and was reworked: {duration}",
                    serial=d.serial or "?",
                    station=station,
                    reason=d.reason,
                    duration=duration(took),
                )
                out.append(Cause(CauseKind.REWORK, took, d.serial, text))
        return out

    # -- queues ----------------------------------------------------------------------

    def _ready(self, serial: str | None, before_id: int | None, taken: datetime) -> datetime | None:
        """When work was ready for a task: for a unit's, its previous attempt's end or the
        unit's making; for packing, the last of its units done by then."""
        if serial is None:
            done = [
                _t(u.completed_at)
                for u in self.units
                if u.status is UnitStatus.DONE and u.completed_at and _t(u.completed_at) <= taken
            ]
            return max(done) if done else None
        before = [
            _t(a.ended_at)
            for a in (*self.attempts, *self.later)
            if a.serial == serial
            and (before_id is None or a.id < before_id)
            and _t(a.ended_at) <= taken
        ]
        if before:
            return max(before)
        made = next((u.created_at for u in self.units if u.serial == serial), None)
        return _t(made) if made else None

    def queues(self, core: LineContext) -> list[Cause]:
        by_place: dict[str, list[Window]] = {}
        for a in (*self.attempts, *self.later):
            taken = a.dispatched_at or a.started_at
            if a.station is None or taken is None:
                continue
            ready = self._ready(a.serial, a.id, _t(taken))
            until = min(_t(taken), self.end)
            if ready is not None and ready < until:
                by_place.setdefault(a.station, []).append((ready, until))
        for task in self.tasks:
            if task.status is TaskStatus.READY:
                place, taken_at = _stations_of(core, task.capability), self.end
            elif task.status.in_work and (task.dispatched_at or task.started_at):
                place = task.station or _stations_of(core, task.capability)
                taken_at = min(_t(task.dispatched_at or task.started_at or ""), self.end)
            else:
                continue
            ready = self._ready(task.serial, None, taken_at)
            if ready is not None and ready < taken_at:
                by_place.setdefault(place, []).append((ready, taken_at))
        waits = self.waits()
        out = []
        for place, windows in by_place.items():
            total = _total(_minus(merge(windows), waits))
            if total >= MIN_S:
                text = t(
                    "queued {duration} before {station}", duration=duration(total), station=place
                )
                out.append(Cause(CauseKind.QUEUE, total, place, text))
        return out

    # -- holds and slowness -------------------------------------------------------------

    def in_hand(self) -> list[_InHand]:
        out = []
        for a in self.attempts:
            taken = a.dispatched_at or a.started_at
            if a.station is None or taken is None:
                continue
            out.append(
                _InHand(
                    a.station,
                    _t(taken),
                    _t(a.started_at) if a.started_at else None,
                    min(_t(a.ended_at), self.end),
                    a.outcome is Outcome.COMPLETED and _t(a.ended_at) <= self.end,
                    a.standard_s,
                )
            )
        for task in self.tasks:
            taken = task.dispatched_at or task.started_at
            if task.status.in_work and task.station and taken and _t(taken) < self.end:
                started = _t(task.started_at) if task.started_at else None
                out.append(_InHand(task.station, _t(taken), started, self.end, False, None))
        return out

    def holds_and_slowness(self, core: LineContext) -> list[Cause]:
        hands = self.in_hand()
        if not hands:
            return []
        spans: dict[str, list[Window]] = {}
        for h in hands:
            spans.setdefault(h.station, []).append((h.taken, h.ended))
        states = _states(core, spans)
        held: dict[tuple[str, str], list[Window]] = {}
        worked: dict[str, float] = {}
        standard: dict[str, float] = {}
        for h in hands:
            mine = [s for s in states if s.station == h.station]
            held_in_run: list[Window] = []
            for s in mine:
                span = _overlap((s.since, s.until or self.end), (h.taken, h.ended))
                if span is None:
                    continue
                reason = s.reason or s.state.lower()
                held.setdefault((h.station, reason), []).append(span)
                if h.started is not None:
                    run = _overlap(span, (h.started, h.ended))
                    if run is not None:
                        held_in_run.append(run)
            if h.completed and h.started is not None and h.standard_s is not None:
                worked[h.station] = (
                    worked.get(h.station, 0.0) + _s(h.started, h.ended) - _total(held_in_run)
                )
                standard[h.station] = standard.get(h.station, 0.0) + h.standard_s
        out = []
        for (station, reason), windows in held.items():
            total = _total(windows)
            if total >= MIN_S:
                text = t(
                    "held {duration} at {station}: {reason}",
                    duration=duration(total),
                    station=station,
                    reason=reason,
                )
                out.append(Cause(CauseKind.HOLD, total, station, text))
        for station, actual in worked.items():
            over = actual - standard[station]
            if over >= MIN_S:
                text = t(
                    "work at {station} took {actual} against {standard} standard",
                    station=station,
                    actual=duration(actual),
                    standard=duration(standard[station]),
                )
                out.append(Cause(CauseKind.SLOW, over, station, text))
        return out

    # -- accepted too late ----------------------------------------------------------------

    def accepted_late(self, core: LineContext) -> list[Cause]:
        chain, pack = 0.0, 0.0
        for wo in self.work_orders:
            ops = core.catalog.operations(wo.operations)
            chain = max(chain, sum(float(op.run_s) for op in ops if op.capability != PACK))
            pack = max([pack, *(float(op.run_s) for op in ops if op.capability == PACK)])
        if pack:
            pack += PACK_PER_EXTRA_UNIT_S * max(0, self.order.units - 1)
        needed = chain + pack
        accepted = _t(self.order.accepted_at)
        left = _s(accepted, self.ship_by)
        if needed <= left or needed <= 0:
            return []
        if left <= 0:
            text = t(
                "accepted {late} after its ship-by, with {work} of work",
                late=duration(-left),
                work=duration(needed),
            )
        else:
            text = t(
                "accepted with {left} to its ship-by for {work} of work",
                left=duration(left),
                work=duration(needed),
            )
        return [Cause(CauseKind.ACCEPTED_LATE, needed - left, None, text)]


def _stations_of(core: LineContext, capability: str) -> str:
    """A queue not taken yet is before every station that can take it: "dtg-1/dtg-2"."""
    found = [
        sid for sid, cfg in sorted(core.config.stations.items()) if capability in cfg.capabilities
    ]
    return "/".join(found) or capability


def _states(core: LineContext, windows: dict[str, list[Window]]) -> list[_State]:
    """The fault and hold intervals overlapping each station's windows, by the index on
    (station, since): a station's intervals follow one another, so those are the ones begun
    within a window and the last one begun before it."""
    cols = "station, state, reason, since, until"
    faults = sorted(_FAULTS)
    marks = ",".join("?" * len(faults))
    rows: list[_State] = []
    for station, spans in sorted(windows.items()):
        for lo, hi in merge(spans):
            rows += core.store.fetch_all(
                _State,
                f"SELECT {cols} FROM station_states WHERE station = ? AND since >= ? "
                f"AND since < ? AND state IN ({marks})",
                (station, iso(lo), iso(hi), *faults),
            )
            before = core.store.fetch_all(
                _State,
                f"SELECT {cols} FROM station_states WHERE station = ? AND since < ? "
                "ORDER BY since DESC LIMIT 1",
                (station, iso(lo)),
            )
            rows += [r for r in before if r.state in _FAULTS and (r.until is None or r.until > lo)]
    return rows
