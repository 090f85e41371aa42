"""Signing in and out at a station with a badge.

An operator is signed in at one station at a time: signing in elsewhere signs them out
here. Signing out pauses a running task (it is not left running with nobody at it).
"""

from __future__ import annotations

from gateway.desk.replies import Done, Refused
from gateway.desk.session import Session
from gateway.desk.text import unreadable
from gateway.i18n import t
from gateway.orderbook import tasks
from gateway.store.rows import TaskStatus

LOGGED_OUT = "operator logged out"


def login(s: Session, badge: str) -> Done:
    core = s.core
    if unreadable(badge):
        # A control character is no part of a badge: a misread, not a stranger's badge.
        raise Refused("BAD_CODE", t("That badge was not readable."), t("Scan your badge again."))
    known = {o.badge: o.name for o in core.config.operators}
    if badge not in known:
        raise Refused(
            "UNKNOWN_BADGE",
            t("Badge {badge} is not an operator of this line.", badge=badge),
            t("Ask the line lead to add your badge."),
        )
    if s.config.operators is not None and badge not in s.config.operators:
        raise Refused(
            "NOT_PERMITTED",
            t("{name} may not work at {station}.", name=known[badge], station=s.station_id),
            t("Go to a station you are trained for, or ask the line lead."),
        )
    with core.store.transaction():
        for other in core.store.texts(
            "SELECT station FROM sessions WHERE operator = ? AND station != ?",
            (badge, s.station_id),
        ):
            if other in core.config.stations:
                sign_out(s.sibling(other))
        if s.badge not in (None, badge):
            sign_out(s)
        s.sign_in(badge)
    return Done(t("Welcome, {name}.", name=known[badge]))


def logout(s: Session) -> Done:
    with s.core.store.transaction():
        paused = sign_out(s)
    return Done(t("Logged out. The running task is paused.") if paused else t("Logged out."))


def sign_out(s: Session) -> bool:
    """Sign the station's operator out; True when a running task was paused for it."""
    task = s.current()
    paused = task is not None and task.status is TaskStatus.RUNNING
    if task is not None and paused:
        tasks.pause(s.core, task, LOGGED_OUT)
    s.sign_out()
    return paused
