"""Who must be told what, derived from the store alone: the alarms table (raised,
acknowledged, cleared) against the notifications already owed. So a restart, a crash or a
config reload finds the same answer, and each (raise, rule, level, channel, purpose,
shift) is owed once (the table's key).

- A raised alarm a rule matches: level 0 of the rule is told at once; while nobody has
  acknowledged it, level n once n × escalate_after_min have passed since the raise.
- Still not acknowledged when a shift begins: the current level's contacts on the
  incoming shift who were not told yet (handover); the escalation clock keeps running
  from the raise.
- Acknowledged: what is still pending is cancelled and nothing more is owed.
- Over (cleared, or raised again since): what is pending is cancelled and, per channel, a
  cleared note goes to those who were told.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from gateway.alerts.rows import OWED_COLUMNS, OwedRow, Purpose, State
from gateway.alerts.shifts import ShiftNow, shift_at
from gateway.alerts.words import alarm_words
from gateway.clock import iso
from gateway.config.alerts import NOTIFICATION_KIND, AlarmRule, AlarmsSection, Contact
from gateway.config.line import LineConfig
from gateway.store.db import Store
from gateway.store.rows import AlarmRow

__all__ = ["Decision", "Owed", "decide", "recipients", "record"]


@dataclass(frozen=True, slots=True)
class Owed:
    """A notification to add."""

    alarm_id: str
    raised_at: str
    rule: int
    level: int
    channel: str
    purpose: Purpose
    shift: str
    recipients: tuple[str, ...]
    subject: str
    body: str


@dataclass
class Decision:
    new: list[Owed] = field(default_factory=list)
    cancel: list[int] = field(default_factory=list)  # notification ids
    done: list[tuple[str, str]] = field(default_factory=list)  # (alarm_id, raised_at)
    # When the next escalation falls due (None: none can): until then, and until the
    # store or the shift changes, the answer stays the same.
    next_at: datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.new or self.cancel or self.done)


def recipients(
    section: AlarmsSection, names: Iterable[str], shift: ShiftNow | None, channel_type: str
) -> tuple[str, ...]:
    """The contacts ``names`` (roles and contact names) stand for who are on duty in
    ``shift`` and reachable by ``channel_type`` (e-mail needs an address; a group robot
    tells its group, and mentions whom it can), in the order of [[alarms.contacts]]."""
    wanted = set(names)

    def chosen(contact: Contact) -> bool:
        if contact.name not in wanted and not wanted.intersection(contact.roles):
            return False
        if contact.shifts is not None and (shift is None or shift.name not in contact.shifts):
            return False
        return channel_type != "smtp" or contact.email is not None

    return tuple(c.name for c in section.contacts if chosen(c))


def level_now(rule: AlarmRule, age_s: float) -> int:
    """The level an unacknowledged alarm has reached ``age_s`` after its raise."""
    if rule.escalate_after_min is None:
        return 0
    return min(len(rule.escalate_to), int(age_s // (rule.escalate_after_min * 60)))


def decide(config: LineConfig, store: Store, now: datetime) -> Decision:
    """What is owed at ``now``: read-only (an idle line writes nothing)."""
    section = config.alarms
    decision = Decision()
    live = store.fetch_all(
        AlarmRow,
        "SELECT * FROM alarms WHERE cleared_at IS NULL AND kind != ?",
        (NOTIFICATION_KIND,),
    )
    rows_of: dict[tuple[str, str], list[OwedRow]] = defaultdict(list)
    for row in store.fetch_all(OwedRow, f"SELECT {OWED_COLUMNS} FROM notifications WHERE done = 0"):
        rows_of[row.occurrence].append(row)
    shift = shift_at(config.shifts, config.line.tzinfo, now)
    live_keys = set()
    for alarm in live:
        key = (alarm.alarm_id, alarm.raised_at)
        live_keys.add(key)
        rows = rows_of.get(key, [])
        if alarm.acked_at is not None:
            decision.cancel.extend(_pending(rows))
            continue
        for index, rule in enumerate(section.rules):
            if rule.matches(alarm.kind, alarm.severity.value):
                _owed_by_rule(config, alarm, index, rule, rows, shift, now, decision)
    for key, rows in rows_of.items():
        if key not in live_keys:
            last = store.fetch_one(AlarmRow, "SELECT * FROM alarms WHERE alarm_id = ?", (key[0],))
            _over(config, key, last, rows, now, decision)
    return decision


def _pending(rows: list[OwedRow]) -> list[int]:
    return [r.id for r in rows if r.state is State.PENDING and r.purpose.alerts]


def _owed_by_rule(
    config: LineConfig,
    alarm: AlarmRow,
    index: int,
    rule: AlarmRule,
    rows: list[OwedRow],
    shift: ShiftNow | None,
    now: datetime,
    decision: Decision,
) -> None:
    section = config.alarms
    age_s = (now - datetime.fromisoformat(alarm.raised_at)).total_seconds()
    current = level_now(rule, age_s)
    levels = rule.levels
    if rule.escalate_after_min is not None and current < len(levels) - 1:
        due = datetime.fromisoformat(alarm.raised_at) + timedelta(
            minutes=rule.escalate_after_min * (current + 1)
        )
        decision.next_at = due if decision.next_at is None else min(decision.next_at, due)
    for level in range(current + 1):
        for channel_id in rule.channels:
            channel = section.channel(channel_id)
            if channel is None:  # the config refuses this; a model built in code might not
                continue
            mine = [
                r for r in rows if r.rule == index and r.level == level and r.channel == channel_id
            ]
            on_duty = recipients(section, levels[level], shift, channel.type)
            if not mine:
                # E-mail with nobody on duty to write to waits: the next shift's are
                # told when it begins (a robot's group is always there).
                if channel.type == "smtp" and not on_duty:
                    continue
                purpose = Purpose.RAISED if level == 0 else Purpose.ESCALATED
                decision.new.append(
                    _owed(config, alarm, index, level, channel_id, purpose, shift, on_duty, now)
                )
                continue
            if level != current or shift is None or any(r.shift == shift.key for r in mine):
                continue
            told = {n for r in mine if r.state is not State.CANCELLED for n in r.recipients}
            fresh = tuple(n for n in on_duty if n not in told)
            if fresh:
                decision.new.append(
                    _owed(
                        config, alarm, index, level, channel_id, Purpose.HANDOVER, shift, fresh, now
                    )
                )


def _owed(
    config: LineConfig,
    alarm: AlarmRow,
    rule: int,
    level: int,
    channel: str,
    purpose: Purpose,
    shift: ShiftNow | None,
    who: tuple[str, ...],
    now: datetime,
) -> Owed:
    words = alarm_words(config, alarm, purpose, level, shift.name if shift else None, now)
    return Owed(
        alarm.alarm_id,
        alarm.raised_at,
        rule,
        level,
        channel,
        purpose,
        shift.key if shift else "",
        who,
        words.subject,
        words.body,
    )


def _over(
    config: LineConfig,
    key: tuple[str, str],
    alarm: AlarmRow | None,
    rows: list[OwedRow],
    now: datetime,
    decision: Decision,
) -> None:
    """The raise ``key`` is over: pending calls cancelled, a cleared note per channel to
    those who were told, and the raise done with. ``alarm`` is its alarm's row, which
    holds the latest raise of that id: when it was raised again since, the note says the
    same alarm's words, over now."""
    decision.cancel.extend(_pending(rows))
    decision.done.append(key)
    if alarm is None or any(r.purpose is Purpose.CLEARED for r in rows):
        return
    if alarm.raised_at == key[1] and alarm.cleared_at is not None:
        now = datetime.fromisoformat(alarm.cleared_at)
    else:
        alarm = replace(alarm, raised_at=key[1])
    told: dict[str, list[str]] = {}
    for r in rows:
        if r.purpose.alerts and r.state is State.SENT:
            names = told.setdefault(r.channel, [])
            names.extend(n for n in r.recipients if n not in names)
    for channel_id, names in told.items():
        words = alarm_words(config, alarm, Purpose.CLEARED, -1, None, now)
        decision.new.append(
            Owed(
                key[0],
                key[1],
                -1,
                -1,
                channel_id,
                Purpose.CLEARED,
                "",
                tuple(names),
                words.subject,
                words.body,
            )
        )


def record(store: Store, decision: Decision, now: datetime) -> None:
    """Write ``decision`` in one transaction."""
    at = iso(now)
    with store.transaction() as conn:
        for owed in decision.new:
            conn.execute(
                "INSERT INTO notifications (alarm_id, raised_at, rule, level, channel, purpose, "
                "shift, recipients, subject, body, state, next_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    owed.alarm_id,
                    owed.raised_at,
                    owed.rule,
                    owed.level,
                    owed.channel,
                    owed.purpose.value,
                    owed.shift,
                    json.dumps(list(owed.recipients), ensure_ascii=False),
                    owed.subject,
                    owed.body,
                    State.PENDING.value,
                    at,
                    at,
                ),
            )
        conn.executemany(
            "UPDATE notifications SET state = ? WHERE id = ? AND state = ?",
            [(State.CANCELLED.value, i, State.PENDING.value) for i in decision.cancel],
        )
        conn.executemany(
            "UPDATE notifications SET done = 1 WHERE alarm_id = ? AND raised_at = ?",
            decision.done,
        )
