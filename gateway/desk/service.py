"""Everything an operator does at a station, as one service behind the station API.

Each action runs in one durable transaction: the answer the operator gets describes what
is committed, and its ``next`` is what the station's screen says right after it (read
then, from the same rules). A refused action raises :class:`Refused` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.config.line import StationConfig
from gateway.desk import badges, defects, operating, overrides, reprints, scanning, screen, text
from gateway.desk.replies import Done, Refused, Reply
from gateway.desk.session import Sequencer, Session
from gateway.orderbook import tasks
from gateway.orderbook.context import LineContext
from gateway.store.rows import TaskRow

__all__ = ["Sequencer", "StationService"]


class StationService:
    """Operator actions for every station of the line."""

    def __init__(self, core: LineContext) -> None:
        self.core = core
        # Set by the composition root when the planner runs; None: the dispatch rule.
        self.sequencer: Sequencer | None = None

    # -- lookups ----------------------------------------------------------------------

    def station(self, station_id: str) -> StationConfig:
        cfg = self.core.config.stations.get(station_id)
        if cfg is None:
            raise KeyError(station_id)
        return cfg

    def session(self, station_id: str) -> Session:
        """The station's session for one action (see :class:`Session`)."""
        return Session(self.core, self.station(station_id), self.sequencer)

    def operator(self, station_id: str) -> str:
        """The operator signed in at the station; refused when nobody is."""
        return self.session(station_id).operator()

    def current(self, station_id: str) -> TaskRow | None:
        return self.session(station_id).current()

    def queue(self, station_id: str, limit: int = 10) -> list[TaskRow]:
        return self.session(station_id).queue(limit)

    def view(self, station_id: str) -> dict[str, Any]:
        """What the station screen shows."""
        return screen.view(self.session(station_id))

    # -- actions ----------------------------------------------------------------------

    def _act(self, station_id: str, action: Callable[[Session], Done]) -> Reply:
        s = self.session(station_id)
        try:
            done = action(s)
        except Refused as exc:
            # Inside a caller's transaction, this would roll back with it: the caller
            # notes the refusal after its rollback (gateway/web/acting.py).
            if not self.core.store.in_transaction:
                self.note_refused(station_id, exc)
            raise
        after = self.session(station_id)  # read again: the action changed it
        return Reply(done.message, screen.next_text(after), ok=done.ok, data=done.data)

    def login(self, station_id: str, badge: str) -> Reply:
        return self._act(station_id, lambda s: badges.login(s, badge))

    def logout(self, station_id: str) -> Reply:
        return self._act(station_id, badges.logout)

    def scan(self, station_id: str, raw: str, symbology: str | None = None) -> Reply:
        """One entry for everything a scanner delivers (see :mod:`gateway.desk.scanning`).
        ``symbology`` is the AIM identifier a scanner driver reports ("]C1", "]d2" …)."""
        return self._act(station_id, lambda s: scanning.scan(s, raw, symbology))

    def next_task(self, station_id: str) -> Reply:
        """Take the head of this station's queue."""
        return self._act(station_id, operating.next_task)

    def start(self, station_id: str) -> Reply:
        return self._act(station_id, operating.start)

    def pause(self, station_id: str, reason: str) -> Reply:
        # Cleaned here, for every caller: "" (nothing visible) is refused REASON_REQUIRED.
        reason = text.clean(reason)
        return self._act(station_id, lambda s: operating.pause(s, reason))

    def resume(self, station_id: str) -> Reply:
        return self._act(station_id, operating.resume)

    def checklist(self, station_id: str, item: int | str, passed: bool) -> Reply:
        return self._act(station_id, lambda s: operating.checklist(s, item, passed))

    def weight(self, station_id: str, grams: float) -> Reply:
        return self._act(station_id, lambda s: operating.weight(s, grams))

    def complete(self, station_id: str) -> Reply:
        return self._act(station_id, operating.complete)

    def fail(self, station_id: str, reason: str, disposition: str) -> Reply:
        """A defect: rework repeats the operation, scrap plans a replacement unit, use as is
        completes with the defect on record (see :mod:`gateway.desk.defects`)."""
        reason = text.clean(reason)
        return self._act(station_id, lambda s: defects.fail(s, reason, disposition))

    def reprint(self, station_id: str, reason: str, label_id: str | None = None) -> Reply:
        """Print a label again (the last one printed here by default); the reason is kept."""
        reason = text.clean(reason)
        return self._act(station_id, lambda s: reprints.reprint(s, reason, label_id))

    def override(
        self,
        station_id: str,
        check: str,
        reason: str,
        by: str,
        containers: Sequence[tuple[str, int]] | None = None,
        as_bom: bool = False,
    ) -> Reply:
        """A line lead accepts the station's failed ``check`` (``weight``) with a reason;
        ``by`` names them on the quality record; or decides the parcel's ``containers``
        or to pack it ``as_bom`` (``parcel``) (see :mod:`gateway.desk.overrides`)."""
        reason = text.clean(reason)
        what = overrides.Overridable(check)
        return self._act(
            station_id,
            lambda s: overrides.override(s, what, reason, by, containers, as_bom),
        )

    def note_refused(self, station_id: str, exc: Refused) -> None:
        """Keep a refusal (the action itself changed nothing): a wrong or missing item
        stopped at a pack station is an error caught at pack (gateway/numbers)."""
        s = self.session(station_id)
        current = s.current()
        cfg = self.core.config.stations.get(station_id)
        at_pack = (current is not None and current.is_pack) or (
            current is None and cfg is not None and "pack" in cfg.capabilities
        )
        with self.core.store.transaction():
            self.core.store.conn.execute(
                "INSERT INTO refusals (ts, station, operator, code, order_id, at_pack) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.core.now_iso(),
                    station_id,
                    s.badge,
                    exc.code,
                    current.order_id if current is not None else None,
                    int(at_pack),
                ),
            )

    # -- holds the gateway puts on a task (a machine fault) ------------------------------

    def pause_task(self, task: TaskRow, reason: str) -> None:
        """Hold a running task for a reason that is not the operator's (a machine fault)."""
        with self.core.store.transaction():
            tasks.pause(self.core, task, reason)

    def resume_task(self, task: TaskRow, note: str) -> None:
        """Lift a hold the gateway put on a task (the machine fault is cleared)."""
        with self.core.store.transaction():
            tasks.resume(self.core, task, None, note)
