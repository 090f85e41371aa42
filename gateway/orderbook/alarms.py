"""Alarms: raised once, cleared once, each reported as an event.

An alarm's message is kept in English (the ``message`` of its events and its row) and, when
it is a :class:`~gateway.i18n.Text`, as that message too (``message_text``, JSON), so that
the station API can show it in Chinese.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from gateway.i18n import Lang, Text
from gateway.orderbook.context import LineContext
from gateway.store.rows import AlarmRow, Severity

logger = logging.getLogger(__name__)


def active(core: LineContext, alarm_id: str) -> AlarmRow | None:
    """The alarm ``alarm_id`` while it is raised."""
    return core.store.fetch_one(
        AlarmRow, "SELECT * FROM alarms WHERE alarm_id = ? AND cleared_at IS NULL", (alarm_id,)
    )


def raise_alarm(
    core: LineContext,
    alarm_id: str,
    kind: str,
    source: str,
    severity: Severity,
    message: str | Text,
) -> bool:
    """Raise ``alarm_id`` unless it is already active; True when newly raised. A ``message``
    given as a str (words the line did not write) reads the same in every language."""
    if active(core, alarm_id) is not None:
        return False
    text = json.dumps(message.dump(), ensure_ascii=False) if isinstance(message, Text) else None
    message = str(message)
    core.store.conn.execute(
        "INSERT INTO alarms (alarm_id, kind, source, severity, message, message_text, "
        "raised_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(alarm_id) DO UPDATE SET "
        "kind = excluded.kind, source = excluded.source, severity = excluded.severity, "
        "message = excluded.message, message_text = excluded.message_text, "
        "raised_at = excluded.raised_at, cleared_at = NULL, acked_at = NULL, acked_by = NULL",
        (alarm_id, kind, source, severity, message, text, core.now_iso()),
    )
    core.emit(
        "alarm.raised",
        {
            "alarm_id": alarm_id,
            "kind": kind,
            "source": source,
            "severity": severity.value,
            "message": message,
        },
    )
    logger.warning("alarm %s raised: %s", alarm_id, message)
    return True


def clear_alarm(core: LineContext, alarm_id: str, message: str) -> bool:
    """Clear ``alarm_id`` if it is active; True when it was."""
    alarm = active(core, alarm_id)
    if alarm is None:
        return False
    core.store.conn.execute(
        "UPDATE alarms SET cleared_at = ? WHERE alarm_id = ?", (core.now_iso(), alarm_id)
    )
    core.emit(
        "alarm.cleared",
        {
            "alarm_id": alarm_id,
            "kind": alarm.kind,
            "source": alarm.source,
            "severity": alarm.severity.value,
            "message": message,
        },
    )
    logger.info("alarm %s cleared: %s", alarm_id, message)
    return True


def acknowledge(core: LineContext, alarm_id: str, by: str) -> AlarmRow | None:
    """Mark the raised alarm ``alarm_id`` acknowledged by ``by`` (once: the first who took
    it stays named); None when no such alarm is raised."""
    alarm = active(core, alarm_id)
    if alarm is None or alarm.acked_at is not None:
        return alarm
    core.store.conn.execute(
        "UPDATE alarms SET acked_at = ?, acked_by = ? WHERE alarm_id = ?",
        (core.now_iso(), by, alarm_id),
    )
    return active(core, alarm_id)


def active_alarms(core: LineContext) -> list[dict[str, Any]]:
    """Every raised alarm, oldest first, as the station API shows them."""
    return [
        {
            "alarm_id": a.alarm_id,
            "kind": a.kind,
            "source": a.source,
            "severity": a.severity.value,
            "message": a.message,
            "message_zh": message_in(a, Lang.ZH),
            "raised_at": a.raised_at,
            "acked_at": a.acked_at,
            "acked_by": a.acked_by,
        }
        for a in core.store.fetch_all(
            AlarmRow, "SELECT * FROM alarms WHERE cleared_at IS NULL ORDER BY raised_at"
        )
    ]


def message_in(alarm: AlarmRow, lang: Lang) -> str:
    """The alarm's message in ``lang``: from its Text when it was raised with one, else (a
    message from outside the line, an alarm raised before there were Texts) as it is."""
    if alarm.message_text is None or lang is Lang.EN:
        return alarm.message
    try:
        return Text.load(json.loads(alarm.message_text)).render(lang)
    except ValueError as exc:  # json.JSONDecodeError is one
        logger.error("alarm %s: message not readable as a Text: %s", alarm.alarm_id, exc)
        return alarm.message
