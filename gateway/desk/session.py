"""One station during one operator action: its config, who is signed in, its current task,
its queue, and handing it a task.

Every helper of the desk receives a :class:`Session` (never the whole service): the
session row is read once per action and kept in step with what the action writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.config.line import StationConfig
from gateway.desk.labels import print_traveller
from gateway.desk.replies import Refused
from gateway.i18n import t
from gateway.orderbook import tasks
from gateway.orderbook.context import LineContext
from gateway.store.rows import SessionRow, TaskRow


class Sequencer(Protocol):
    """What orders a station's queue when the line is planned (gateway/planning)."""

    def queue(self, station_id: str, capabilities: Sequence[str], limit: int) -> list[TaskRow]: ...


class Session:
    """A station's session for the length of one action."""

    def __init__(
        self, core: LineContext, config: StationConfig, sequencer: Sequencer | None
    ) -> None:
        self.core = core
        self.config = config
        self.station_id = config.id
        self._sequencer = sequencer
        self._row: SessionRow | None = None
        self._read = False

    def sibling(self, station_id: str) -> Session:
        """The session of another station of the line (an operator signs in elsewhere)."""
        return Session(self.core, self.core.config.stations[station_id], self._sequencer)

    # -- who is here -------------------------------------------------------------------

    def row(self) -> SessionRow | None:
        if not self._read:
            self._row = self.core.store.fetch_one(
                SessionRow, "SELECT * FROM sessions WHERE station = ?", (self.station_id,)
            )
            self._read = True
        return self._row

    @property
    def badge(self) -> str | None:
        """The badge of the operator signed in, if any."""
        row = self.row()
        return row.operator if row is not None else None

    def operator(self) -> str:
        """The operator signed in; refused when nobody is."""
        badge = self.badge
        if badge is None:
            raise Refused(
                "NOT_LOGGED_IN",
                t("No operator is logged in at this station."),
                t("Scan your badge to log in."),
            )
        return badge

    def operator_name(self) -> str | None:
        badge = self.badge
        if badge is None:
            return None
        return next((o.name for o in self.core.config.operators if o.badge == badge), badge)

    def sign_in(self, badge: str) -> None:
        now = self.core.now_iso()
        self._close_attendance(now)
        self.core.store.conn.execute(
            "INSERT INTO sessions (station, operator, login_at) VALUES (?, ?, ?) "
            "ON CONFLICT(station) DO UPDATE SET operator = excluded.operator, "
            "login_at = excluded.login_at",
            (self.station_id, badge, now),
        )
        self.core.store.conn.execute(
            "INSERT INTO attendance (operator, station, since) VALUES (?, ?, ?)",
            (badge, self.station_id, now),
        )
        self._read = False

    def sign_out(self) -> None:
        self._close_attendance(self.core.now_iso())
        self.core.store.conn.execute(
            "UPDATE sessions SET operator = NULL, login_at = NULL WHERE station = ?",
            (self.station_id,),
        )
        self._read = False

    def _close_attendance(self, now: str) -> None:
        """End the time signed in of whoever was here (operator efficiency's APAT)."""
        self.core.store.conn.execute(
            "UPDATE attendance SET until = ? WHERE station = ? AND until IS NULL",
            (now, self.station_id),
        )

    # -- its task ------------------------------------------------------------------------

    def current(self) -> TaskRow | None:
        """The station's current task (read fresh: actions change it)."""
        row = self.row()
        if row is None or row.task_id is None:
            return None
        return tasks.find(self.core, row.task_id)

    def require_current(self) -> TaskRow:
        task = self.current()
        if task is None:
            raise Refused(
                "NO_TASK",
                t("There is no task at this station."),
                t("Press Next for the next task, or scan a unit's traveller."),
            )
        return task

    def set_current(self, task_id: int | None) -> None:
        self.core.store.conn.execute(
            "INSERT INTO sessions (station, task_id) VALUES (?, ?) "
            "ON CONFLICT(station) DO UPDATE SET task_id = excluded.task_id",
            (self.station_id, task_id),
        )
        self._read = False

    def queue(self, limit: int = 10) -> list[TaskRow]:
        """Ready tasks this station can do: in the plan's order when the line is planned,
        else by the dispatch rule (ship-by, then priority)."""
        caps = self.config.capabilities
        if self._sequencer is not None:
            return self._sequencer.queue(self.station_id, caps, limit)
        return tasks.ready_for(self.core, caps, limit)

    def dispatch(self, task: TaskRow) -> TaskRow:
        """Hand ``task`` to the station: it becomes its current task (its traveller is
        printed at a unit's first operation)."""
        task = tasks.dispatch(self.core, task, self.config, self.operator())
        self.set_current(task.task_id)
        if task.op_index == 0 and task.serial is not None:
            print_traveller(self.core, task.serial, self.station_id)
        return task

    def undispatch(self, task: TaskRow) -> None:
        tasks.undispatch(self.core, task)
