"""The store's rows as typed values: one frozen dataclass per table, built in one place.

The logic reads attributes of these, never ``row["..."]``: each ``from_row`` is the only
place a column is looked up by name and given its type. Rows are read whole (``SELECT *``)
so a row class always describes the table; the few queries that join or aggregate have
a small class of their own at the end of this module. Statuses are enums whose values
are the texts stored.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from pydantic import JsonValue

from cloud_sync.contract import Order
from gateway.store.documents import (
    MEASURED,
    PERSONALIZATION,
    REJECTION_ERRORS,
    USED_LOTS,
    Personalization,
    Progress,
    RejectionError,
    SkuSnapshot,
    UsedLot,
)

Row = sqlite3.Row


class TaskStatus(StrEnum):
    BLOCKED = "blocked"  # waiting for its unit's previous operation, or for material
    READY = "ready"  # in the queues
    DISPATCHED = "dispatched"  # a station's current task, not started
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"
    SCRAPPED = "scrapped"

    @property
    def in_work(self) -> bool:
        """Handed to a station and not finished."""
        return self in _IN_WORK

    @property
    def finished(self) -> bool:
        """Never comes back to a queue."""
        return self in _FINISHED


_IN_WORK = frozenset({TaskStatus.DISPATCHED, TaskStatus.RUNNING, TaskStatus.PAUSED})
_FINISHED = frozenset({TaskStatus.DONE, TaskStatus.CANCELLED, TaskStatus.SCRAPPED})
# Open: the planner plans it (blocked, ready, dispatched, running, paused).
OPEN_TASKS: tuple[TaskStatus, ...] = tuple(s for s in TaskStatus if s not in _FINISHED)
# Not started: a revision may still replace it, a cancel drops it.
UNSTARTED_TASKS = (TaskStatus.BLOCKED, TaskStatus.READY, TaskStatus.DISPATCHED)


class UnitStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    SCRAPPED = "scrapped"
    CANCELLED = "cancelled"

    @property
    def ships(self) -> bool:
        """A unit that will be in the parcel (neither scrapped nor cancelled)."""
        return self in (UnitStatus.OPEN, UnitStatus.DONE)


class OrderStatus(StrEnum):
    RELEASED = "released"
    WAITING_MATERIAL = "waiting_material"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def closed(self) -> bool:
        return self in (OrderStatus.COMPLETED, OrderStatus.CANCELLED)


class WorkOrderStatus(StrEnum):
    OPEN = "open"  # units still to make
    DONE = "done"  # every unit that ships is made
    CANCELLED = "cancelled"  # its order was cancelled


class Disposition(StrEnum):
    REWORK = "rework"
    SCRAP = "scrap"
    USE_AS_IS = "use_as_is"


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"


class LabelKind(StrEnum):
    TRAVELLER = "traveller"
    SHIPPING = "shipping"


class PrintStatus(StrEnum):
    QUEUED = "queued"
    PRINTED = "printed"


class Severity(StrEnum):
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"


class Role(StrEnum):
    """Who a request acts as (gateway/access): a person's role, or a program's token's."""

    OPERATOR = "operator"  # signed in by badge at a station, through its terminal
    LINE_LEAD = "line_lead"
    QUALITY = "quality"
    MAINTENANCE = "maintenance"
    ADMIN = "admin"
    VIEWER = "viewer"


class AuditOutcome(StrEnum):
    OK = "ok"
    DENIED = "denied"


# What sqlite3 hands over is untyped (Any): these give it its type.
def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: str
    revision: int
    status: OrderStatus
    ship_by: str
    priority: int
    catalog_version: str
    doc: str  # the order as accepted (contract JSON)
    accepted_at: str
    completed_at: str | None
    units: int
    weight_g: float | None
    label_id: str | None
    cancel_reason: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["order_id"]),
            int(r["revision"]),
            OrderStatus(r["status"]),
            str(r["ship_by"]),
            int(r["priority"]),
            str(r["catalog_version"]),
            str(r["doc"]),
            str(r["accepted_at"]),
            _opt_str(r["completed_at"]),
            int(r["units"]),
            _opt_float(r["weight_g"]),
            _opt_str(r["label_id"]),
            _opt_str(r["cancel_reason"]),
        )

    def order(self) -> Order:
        return Order.model_validate_json(self.doc)


@dataclass(frozen=True, slots=True)
class WorkOrderRow:
    wo_id: int
    order_id: str
    line_no: int
    sku: str
    qty: int
    routing: str
    operations: str  # the routing frozen at acceptance (see CatalogCache.operations)
    sku_doc: str
    personalization_doc: str
    status: WorkOrderStatus

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["wo_id"]),
            str(r["order_id"]),
            int(r["line_no"]),
            str(r["sku"]),
            int(r["qty"]),
            str(r["routing"]),
            str(r["operations"]),
            str(r["sku_doc"]),
            str(r["personalization"]),
            WorkOrderStatus(r["status"]),
        )

    def snapshot(self) -> SkuSnapshot:
        return SkuSnapshot.model_validate_json(self.sku_doc)

    def personalization(self) -> Personalization:
        return PERSONALIZATION.validate_json(self.personalization_doc)


@dataclass(frozen=True, slots=True)
class UnitRow:
    serial: str
    order_id: str
    wo_id: int
    unit_index: int
    status: UnitStatus
    kitted: bool
    replaces: str | None
    created_at: str
    completed_at: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["serial"]),
            str(r["order_id"]),
            int(r["wo_id"]),
            int(r["unit_index"]),
            UnitStatus(r["status"]),
            bool(r["kitted"]),
            _opt_str(r["replaces"]),
            str(r["created_at"]),
            _opt_str(r["completed_at"]),
        )


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task: a unit's operation, or an order's pack task (``serial`` None)."""

    task_id: int
    order_id: str
    serial: str | None
    wo_id: int | None
    op: str
    op_index: int
    capability: str
    status: TaskStatus
    ship_by: str
    priority: int
    station: str | None
    operator: str | None
    machine: str | None
    attempt: int
    dispatched_at: str | None
    started_at: str | None
    completed_at: str | None
    work: str  # the current attempt's Progress (JSON)

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["task_id"]),
            str(r["order_id"]),
            _opt_str(r["serial"]),
            _opt_int(r["wo_id"]),
            str(r["op"]),
            int(r["op_index"]),
            str(r["capability"]),
            TaskStatus(r["status"]),
            str(r["ship_by"]),
            int(r["priority"]),
            _opt_str(r["station"]),
            _opt_str(r["operator"]),
            _opt_str(r["machine"]),
            int(r["attempt"]),
            _opt_str(r["dispatched_at"]),
            _opt_str(r["started_at"]),
            _opt_str(r["completed_at"]),
            str(r["work"]),
        )

    @property
    def is_pack(self) -> bool:
        return self.serial is None

    def progress(self) -> Progress:
        return Progress.model_validate_json(self.work)


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A station's session: who is signed in, its current task, its synthesised state."""

    station: str
    operator: str | None
    login_at: str | None
    task_id: int | None
    machine_state: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["station"]),
            _opt_str(r["operator"]),
            _opt_str(r["login_at"]),
            _opt_int(r["task_id"]),
            _opt_str(r["machine_state"]),
        )


@dataclass(frozen=True, slots=True)
class ReservationRow:
    id: int
    order_id: str
    serial: str
    op: str
    material: str
    lot: str  # "" for a material without lots
    qty: float

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["id"]),
            str(r["order_id"]),
            str(r["serial"]),
            str(r["op"]),
            str(r["material"]),
            str(r["lot"]),
            float(r["qty"]),
        )


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: int
    task_id: int
    order_id: str
    serial: str | None
    op: str
    attempt: int
    station: str | None
    operator: str | None
    machine: str | None
    started_at: str | None
    ended_at: str
    outcome: Outcome
    lots_doc: str
    reason: str | None
    sku: str | None  # None: a pack task (the order's), or recorded before version 9
    standard_s: float | None  # the routing's standard time for it (PRI); None before 9
    setup: str | None  # the setup value it ran with (ink profile, thread colour …)
    dispatched_at: str | None
    setup_s: float  # changeover time spent before it started (0: none needed)

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["id"]),
            int(r["task_id"]),
            str(r["order_id"]),
            _opt_str(r["serial"]),
            str(r["op"]),
            int(r["attempt"]),
            _opt_str(r["station"]),
            _opt_str(r["operator"]),
            _opt_str(r["machine"]),
            _opt_str(r["started_at"]),
            str(r["ended_at"]),
            Outcome(r["outcome"]),
            str(r["lots"]),
            _opt_str(r["reason"]),
            _opt_str(r["sku"]),
            None if r["standard_s"] is None else float(r["standard_s"]),
            _opt_str(r["setup"]),
            _opt_str(r["dispatched_at"]),
            float(r["setup_s"]),
        )

    def lots(self) -> list[UsedLot]:
        return USED_LOTS.validate_json(self.lots_doc)


@dataclass(frozen=True, slots=True)
class ConsumptionRow:
    id: int
    ts: str
    material: str
    lot: str
    qty: float
    serial: str | None
    task_id: int | None
    order_id: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["id"]),
            str(r["ts"]),
            str(r["material"]),
            str(r["lot"]),
            float(r["qty"]),
            _opt_str(r["serial"]),
            _opt_int(r["task_id"]),
            _opt_str(r["order_id"]),
        )


@dataclass(frozen=True, slots=True)
class QualityRow:
    id: int
    ts: str
    task_id: int
    order_id: str
    serial: str | None
    check_kind: str
    passed: bool
    measured_doc: str
    station: str | None
    operator: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["id"]),
            str(r["ts"]),
            int(r["task_id"]),
            str(r["order_id"]),
            _opt_str(r["serial"]),
            str(r["check_kind"]),
            bool(r["passed"]),
            str(r["measured"]),
            _opt_str(r["station"]),
            _opt_str(r["operator"]),
        )

    def measured(self) -> JsonValue:
        return MEASURED.validate_json(self.measured_doc)


@dataclass(frozen=True, slots=True)
class DefectRow:
    id: int
    ts: str
    task_id: int
    order_id: str
    serial: str | None
    op: str
    reason: str
    disposition: Disposition
    station: str | None
    operator: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["id"]),
            str(r["ts"]),
            int(r["task_id"]),
            str(r["order_id"]),
            _opt_str(r["serial"]),
            str(r["op"]),
            str(r["reason"]),
            Disposition(r["disposition"]),
            _opt_str(r["station"]),
            _opt_str(r["operator"]),
        )


@dataclass(frozen=True, slots=True)
class LabelRow:
    label_id: str
    kind: LabelKind
    order_id: str
    serial: str | None
    printer: str
    station: str
    zpl: str
    ts: str

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["label_id"]),
            LabelKind(r["kind"]),
            str(r["order_id"]),
            _opt_str(r["serial"]),
            str(r["printer"]),
            str(r["station"]),
            str(r["zpl"]),
            str(r["ts"]),
        )


@dataclass(frozen=True, slots=True)
class PrintJobRow:
    job_id: str
    label_id: str
    printer: str
    station: str
    reason: str | None
    status: PrintStatus
    attempts: int
    error: str | None
    created_at: str
    printed_at: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["job_id"]),
            str(r["label_id"]),
            str(r["printer"]),
            str(r["station"]),
            _opt_str(r["reason"]),
            PrintStatus(r["status"]),
            int(r["attempts"]),
            _opt_str(r["error"]),
            str(r["created_at"]),
            _opt_str(r["printed_at"]),
        )


@dataclass(frozen=True, slots=True)
class AlarmRow:
    alarm_id: str
    kind: str
    source: str
    severity: Severity
    message: str
    raised_at: str
    cleared_at: str | None
    # Who acknowledged it ("I am on it"), and when; reset when it is raised again.
    acked_at: str | None = None
    acked_by: str | None = None
    # The message as a gateway.i18n.Text's JSON, when the line said it (None: words from
    # outside, a device's or the hub's, the same in every language).
    message_text: str | None = None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["alarm_id"]),
            str(r["kind"]),
            str(r["source"]),
            Severity(r["severity"]),
            str(r["message"]),
            str(r["raised_at"]),
            _opt_str(r["cleared_at"]),
            _opt_str(r["acked_at"]),
            _opt_str(r["acked_by"]),
            _opt_str(r["message_text"]),
        )


@dataclass(frozen=True, slots=True)
class RejectionRow:
    id: int
    ts: str
    topic: str
    order_id: str | None
    errors_doc: str
    raw: bytes

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["id"]),
            str(r["ts"]),
            str(r["topic"]),
            _opt_str(r["order_id"]),
            str(r["errors"]),
            bytes(r["raw"]),
        )

    def errors(self) -> list[RejectionError]:
        return REJECTION_ERRORS.validate_json(self.errors_doc)


@dataclass(frozen=True, slots=True)
class StockRow:
    material: str
    lot: str
    qty: float
    expires: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(str(r["material"]), str(r["lot"]), float(r["qty"]), _opt_str(r["expires"]))


# -- joins ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnitWithSku:
    """A unit with its work order's SKU snapshot (``SELECT u.*, w.sku_doc``)."""

    unit: UnitRow
    sku_doc: str

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(UnitRow.from_row(r), str(r["sku_doc"]))

    def snapshot(self) -> SkuSnapshot:
        return SkuSnapshot.model_validate_json(self.sku_doc)


@dataclass(frozen=True, slots=True)
class TaskOfUnit:
    """A task with its unit's kitting (``SELECT t.*, u.kitted, u.wo_id AS unit_wo``);
    ``kitted`` and ``unit_wo`` are None for a pack task."""

    task: TaskRow
    kitted: bool | None
    unit_wo: int | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        kitted = r["kitted"]
        return cls(
            TaskRow.from_row(r), None if kitted is None else bool(kitted), _opt_int(r["unit_wo"])
        )


@dataclass(frozen=True, slots=True)
class LastStarted:
    """The task started last at a station (``SELECT station, wo_id, op, max(started_at)``)."""

    station: str
    wo_id: int
    op: str

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(str(r["station"]), int(r["wo_id"]), str(r["op"]))


@dataclass(frozen=True, slots=True)
class UserRow:
    """An account of a person who is not an operator."""

    username: str
    name: str
    role: Role
    password_hash: str
    created_at: str
    password_set_at: str
    disabled_at: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["username"]),
            str(r["name"]),
            Role(r["role"]),
            str(r["password_hash"]),
            str(r["created_at"]),
            str(r["password_set_at"]),
            _opt_str(r["disabled_at"]),
        )


@dataclass(frozen=True, slots=True)
class ApiTokenRow:
    """A program's token; its secret is kept only as its SHA-256."""

    token_id: str
    name: str
    role: Role
    secret_sha256: str
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["token_id"]),
            str(r["name"]),
            Role(r["role"]),
            str(r["secret_sha256"]),
            str(r["created_at"]),
            _opt_str(r["expires_at"]),
            _opt_str(r["last_used_at"]),
            _opt_str(r["revoked_at"]),
        )


@dataclass(frozen=True, slots=True)
class TerminalRow:
    """A station's terminal: pending (a code), paired (a credential) or unpaired."""

    terminal_id: str
    station: str
    name: str | None
    code_sha256: str | None
    code_expires_at: str | None
    secret_sha256: str | None
    created_at: str
    paired_at: str | None
    unpaired_at: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["terminal_id"]),
            str(r["station"]),
            _opt_str(r["name"]),
            _opt_str(r["code_sha256"]),
            _opt_str(r["code_expires_at"]),
            _opt_str(r["secret_sha256"]),
            str(r["created_at"]),
            _opt_str(r["paired_at"]),
            _opt_str(r["unpaired_at"]),
        )


@dataclass(frozen=True, slots=True)
class WebSessionRow:
    """A user's browser session; the cookie's id is kept only as its SHA-256."""

    id_sha256: str
    username: str
    csrf_token: str
    created_at: str
    expires_at: str
    ended_at: str | None
    client: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["id_sha256"]),
            str(r["username"]),
            str(r["csrf_token"]),
            str(r["created_at"]),
            str(r["expires_at"]),
            _opt_str(r["ended_at"]),
            _opt_str(r["client"]),
        )


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One line of the audit trail (contract 1.1, audit.recorded)."""

    id: int
    ts: str
    actor: str | None
    role: str | None
    action: str
    target: str | None
    station: str | None
    outcome: AuditOutcome
    client: str | None
    detail: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            int(r["id"]),
            str(r["ts"]),
            _opt_str(r["actor"]),
            _opt_str(r["role"]),
            str(r["action"]),
            _opt_str(r["target"]),
            _opt_str(r["station"]),
            AuditOutcome(r["outcome"]),
            _opt_str(r["client"]),
            _opt_str(r["detail"]),
        )


@dataclass(frozen=True, slots=True)
class ReplyRow:
    """The first answer to a client's action id (gateway/web/replies.py)."""

    client: str
    key: str
    request_sha256: str
    answer: str  # the JSON body answered
    at: str

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(
            str(r["client"]),
            str(r["key"]),
            str(r["request_sha256"]),
            str(r["answer"]),
            str(r["at"]),
        )
