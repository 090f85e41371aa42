"""What a notification says: the alarm's message in Chinese and in English (a phone in a
Chinese plant may be set to either), with the line, the source, the severity, how long it
has been raised, the level, and a link to the board when [alarms] board_url is set."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from gateway.alerts.rows import Purpose
from gateway.config.line import LineConfig
from gateway.i18n import Lang, Text, t
from gateway.orderbook.alarms import message_in
from gateway.store.rows import AlarmRow, Severity

__all__ = ["Words", "alarm_words", "minutes_between"]

logger = logging.getLogger(__name__)

# Chinese first: the floor's language; English after a rule.
_LANGS = (Lang.ZH, Lang.EN)
_RULE = "——————"


@dataclass(frozen=True, slots=True)
class Words:
    subject: str  # one line: the mail's subject
    body: str  # the message, both languages


def minutes_between(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def alarm_words(
    config: LineConfig,
    alarm: AlarmRow,
    purpose: Purpose,
    level: int,
    shift: str | None,
    now: datetime,
) -> Words:
    """The words of a notification about ``alarm`` at ``now``."""
    raised = datetime.fromisoformat(alarm.raised_at)
    age = minutes_between(raised, now)
    line = config.line.name or config.gateway_id
    head = _heading(purpose, alarm.severity)
    at = raised.astimezone(config.line.tzinfo).strftime("%H:%M")
    state = _state(purpose, level, age, shift, at)
    parts: list[str] = []
    for lang in _LANGS:
        lines = [
            f"{head.render(lang)} {line} · {alarm.source}",
            message_in(alarm, lang),
            state.render(lang),
        ]
        if config.alarms.board_url:
            board = config.alarms.board_url.rstrip("/") + "/board"
            lines.append(t("Board: {url}", url=board).render(lang))
        parts.append("\n".join(lines))
    subject = (
        f"{head.render(Lang.ZH)} {config.gateway_id} {message_in(alarm, Lang.ZH)}"
        f" / {head.render(Lang.EN)} {message_in(alarm, Lang.EN)}"
    )
    return Words(_one_line(subject, 200), f"\n{_RULE}\n".join(parts))


def _heading(purpose: Purpose, severity: Severity) -> Text:
    level = _severity(severity)
    if purpose is Purpose.CLEARED:
        return t("[Cleared · {severity}]", severity=level)
    return t("[Alarm · {severity}]", severity=level)


def _severity(severity: Severity) -> Text:
    if severity is Severity.CRITICAL:
        return t("critical")
    if severity is Severity.MAJOR:
        return t("major")
    return t("warning")


def _state(purpose: Purpose, level: int, age: int, shift: str | None, at: str) -> Text:
    """Where the alarm stands: ``age`` minutes since its raise at ``at`` (local). Levels
    are said from 1 (the first call), as people count them."""
    level += 1
    if purpose is Purpose.CLEARED:
        return t("Cleared after {minutes} min (raised at {time}).", minutes=age, time=at)
    if purpose is Purpose.HANDOVER:
        return t(
            "Handed over to shift {shift}: not acknowledged for {minutes} min "
            "(raised at {time}, level {level}).",
            shift=shift or "",
            minutes=age,
            time=at,
            level=level,
        )
    if purpose is Purpose.ESCALATED:
        return t(
            "Escalated to level {level}: not acknowledged for {minutes} min (raised at {time}).",
            level=level,
            minutes=age,
            time=at,
        )
    return t(
        "Raised at {time} ({minutes} min ago), level {level}: acknowledge it on the board.",
        time=at,
        minutes=age,
        level=level,
    )


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
