"""The rows gateway/alerts reads: a raised alarm with its message's words, and a
notification (table ``notifications``, migration 10). Typed here, in the one place their
columns are looked up by name, as gateway/store/rows.py does for the order book."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

__all__ = ["OWED_COLUMNS", "NotificationRow", "OwedRow", "Purpose", "State"]


class Purpose(StrEnum):
    """Why a message is owed."""

    RAISED = "raised"  # the alarm's first level, told at its raise
    ESCALATED = "escalated"  # not acknowledged in time: the next level
    HANDOVER = "handover"  # still not acknowledged at a shift change: the incoming shift
    CLEARED = "cleared"  # the alarm is over: a note to those who were told

    @property
    def alerts(self) -> bool:
        """A call to act (not the note that it is over)."""
        return self is not Purpose.CLEARED


class State(StrEnum):
    PENDING = "pending"  # to send at next_at
    SENT = "sent"
    FAILED = "failed"  # given up after [alarms] max_attempts
    CANCELLED = "cancelled"  # acknowledged or cleared before it went


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: int
    alarm_id: str
    raised_at: str  # with alarm_id: which raise of the alarm
    rule: int  # index in [[alarms.rules]]; -1 for a cleared note
    level: int  # 0 at the raise, n after n escalations; -1 for a cleared note
    channel: str
    purpose: Purpose
    shift: str  # "name@YYYY-MM-DD" (local start date) it was for; "" outside any shift
    recipients: tuple[str, ...]  # contact names
    subject: str
    body: str
    state: State
    attempts: int
    next_at: str
    last_error: str | None
    created_at: str
    sent_at: str | None
    done: bool

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        names = json.loads(r["recipients"])
        return cls(
            int(r["id"]),
            str(r["alarm_id"]),
            str(r["raised_at"]),
            int(r["rule"]),
            int(r["level"]),
            str(r["channel"]),
            Purpose(r["purpose"]),
            str(r["shift"]),
            tuple(str(n) for n in names),
            str(r["subject"]),
            str(r["body"]),
            State(r["state"]),
            int(r["attempts"]),
            str(r["next_at"]),
            _opt_str(r["last_error"]),
            str(r["created_at"]),
            _opt_str(r["sent_at"]),
            bool(r["done"]),
        )

    @property
    def occurrence(self) -> tuple[str, str]:
        return (self.alarm_id, self.raised_at)


# What deciding needs of a notification (not its words): read every tick, so kept lean.
OWED_COLUMNS = "id, alarm_id, raised_at, rule, level, channel, purpose, shift, recipients, state"


@dataclass(frozen=True, slots=True)
class OwedRow:
    """A notification as gateway/alerts/owed.py weighs it: SELECT :data:`OWED_COLUMNS`."""

    id: int
    alarm_id: str
    raised_at: str
    rule: int
    level: int
    channel: str
    purpose: Purpose
    shift: str
    recipients: tuple[str, ...]
    state: State

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        names = json.loads(r["recipients"])
        return cls(
            int(r["id"]),
            str(r["alarm_id"]),
            str(r["raised_at"]),
            int(r["rule"]),
            int(r["level"]),
            str(r["channel"]),
            Purpose(r["purpose"]),
            str(r["shift"]),
            tuple(str(n) for n in names),
            State(r["state"]),
        )

    @property
    def occurrence(self) -> tuple[str, str]:
        return (self.alarm_id, self.raised_at)
