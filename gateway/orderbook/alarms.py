"""Alarms: raised once, cleared once, each reported as an event."""

from __future__ import annotations

import logging

from gateway.orderbook.context import LineContext

logger = logging.getLogger(__name__)


def raise_alarm(
    core: LineContext, alarm_id: str, kind: str, source: str, severity: str, message: str
) -> bool:
    """Raise ``alarm_id`` unless it is already active; True when newly raised."""
    row = core.store.one("SELECT cleared_at FROM alarms WHERE alarm_id = ?", (alarm_id,))
    if row is not None and row["cleared_at"] is None:
        return False
    core.store.conn.execute(
        "INSERT INTO alarms (alarm_id, kind, source, severity, message, raised_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(alarm_id) DO UPDATE SET kind = excluded.kind, "
        "source = excluded.source, severity = excluded.severity, message = excluded.message, "
        "raised_at = excluded.raised_at, cleared_at = NULL",
        (alarm_id, kind, source, severity, message, core.now_iso()),
    )
    core.emit(
        "alarm.raised",
        {
            "alarm_id": alarm_id,
            "kind": kind,
            "source": source,
            "severity": severity,
            "message": message,
        },
    )
    logger.warning("alarm %s raised: %s", alarm_id, message)
    return True


def clear_alarm(core: LineContext, alarm_id: str, message: str) -> bool:
    """Clear ``alarm_id`` if it is active; True when it was."""
    row = core.store.one(
        "SELECT kind, source, severity FROM alarms WHERE alarm_id = ? AND cleared_at IS NULL",
        (alarm_id,),
    )
    if row is None:
        return False
    core.store.conn.execute(
        "UPDATE alarms SET cleared_at = ? WHERE alarm_id = ?", (core.now_iso(), alarm_id)
    )
    core.emit(
        "alarm.cleared",
        {
            "alarm_id": alarm_id,
            "kind": row["kind"],
            "source": row["source"],
            "severity": row["severity"],
            "message": message,
        },
    )
    logger.info("alarm %s cleared: %s", alarm_id, message)
    return True


def active_alarms(core: LineContext) -> list[dict[str, str]]:
    return [
        dict(r)
        for r in core.store.all(
            "SELECT alarm_id, kind, source, severity, message, raised_at FROM alarms "
            "WHERE cleared_at IS NULL ORDER BY raised_at"
        )
    ]
