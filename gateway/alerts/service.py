"""Alarms that find a person: the background task that decides what is owed
(gateway/alerts/owed.py), sends it by its channel, and retries what did not go.

One task in the gateway's loop. Each tick (every ``tick_s``, and at once when an alarm is
raised or cleared) is a few reads of the store, and a write only when something is owed,
cancelled or done. Each channel sends from a task of its own, one message at a time, each
attempt under the channel's deadline: a webhook that hangs holds its own channel for
``timeout_s`` and nothing else, and never the line (no transaction is open across a send).

A message that did not go is tried again after [alarms] retry_initial_s, doubling up to
retry_max_s (line time), at most max_attempts times; then it is given up, and the alarm
``notification:CHANNEL`` (kind ``notification``, never itself sent anywhere) shows it on
the board and /api/alarms until that channel sends again. A message is marked sent in the
store once its service took it: after a restart, what was pending goes, and what was sent
does not go again (a crash between the service's answer and that commit is the one case
that sends twice: better twice than never).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from gateway.alerts.channels import Outgoing, Sender, SendError, build_senders
from gateway.alerts.owed import decide, record
from gateway.alerts.rows import NotificationRow, State
from gateway.alerts.shifts import shift_at
from gateway.clock import iso
from gateway.config.alerts import NOTIFICATION_KIND
from gateway.i18n import t
from gateway.orderbook import alarms
from gateway.orderbook.context import LineContext
from gateway.store.rows import Severity

__all__ = ["Alerts", "notifications_of"]

logger = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0  # real seconds between two prunings of old notifications


def notifications_of(core: LineContext, alarm_id: str) -> list[NotificationRow]:
    """Every notification about ``alarm_id`` (each raise of it), oldest first: for a
    route or a test that shows who was told."""
    return core.store.fetch_all(
        NotificationRow, "SELECT * FROM notifications WHERE alarm_id = ? ORDER BY id", (alarm_id,)
    )


class Alerts:
    """The notifications of one line. ``run`` until cancelled."""

    def __init__(
        self,
        core: LineContext,
        *,
        tick_s: float = 1.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.section = core.config.alarms
        self._tick_s = tick_s
        self._wall = wall  # the robots' signatures: real time, whatever the line's clock
        self._wake = asyncio.Event()
        self._senders: dict[str, Sender] = {}
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._failing: set[str] = set()  # channels whose notification alarm is raised
        self._pruned_at = -PRUNE_EVERY_S
        # What the last look at the alarms saw: nothing owed changes until the store
        # commits, the shift changes or the next escalation falls due.
        self._seen_commits = -1
        self._seen_shift = ""
        self._escalation_at: datetime | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.section.rules)

    def wake(self) -> None:
        """Look at the alarms now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        if not self.enabled:
            return
        for topic in ("alarm.raised", "alarm.cleared"):
            self.core.subscribe(topic, self._woken)
        self._failing = {
            c.id
            for c in self.section.channels
            if alarms.active(self.core, _failure_alarm(c.id)) is not None
        }
        async with httpx.AsyncClient(follow_redirects=False) as http:
            self._senders = build_senders(
                self.section.channels, self.core.config.config_dir, http, self._wall
            )
            try:
                while True:
                    self._tick()
                    self._wake.clear()
                    # Woken by an alarm, or the next tick: escalations, retries, shifts.
                    try:
                        async with asyncio.timeout(self._tick_s):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
            finally:
                for task in self._draining.values():
                    task.cancel()
                await asyncio.gather(*self._draining.values(), return_exceptions=True)
                self._draining.clear()

    def _woken(self, _: dict[str, Any]) -> None:
        self._wake.set()

    def _tick(self) -> None:
        """Record what is owed, and start sending what is due. A mistake of this code is
        logged and tried again next tick: it must never stop the gateway."""
        try:
            now = self.core.clock.now()
            if self._changed(now):
                decision = decide(self.core.config, self.core.store, now)
                if decision:
                    record(self.core.store, decision, now)
                self._seen_commits = self.core.store.commits
                self._escalation_at = decision.next_at
            for channel in self._due_channels(now):
                task = self._draining.get(channel)
                if task is None or task.done():
                    self._draining[channel] = asyncio.create_task(
                        self._drain(channel), name=f"alerts:{channel}"
                    )
            self._prune(now)
        except Exception:  # a bug here must not take the line down: next tick
            logger.exception("alarm notifications: this round failed; trying again")

    def _changed(self, now: datetime) -> bool:
        """Whether what is owed may have changed since the last look: a commit (an alarm
        raised, acknowledged or cleared; a message sent), a shift begun or ended, an
        escalation due. An idle line costs a counter's read per tick."""
        config = self.core.config
        shift = shift_at(config.shifts, config.line.tzinfo, now)
        key = shift.key if shift is not None else ""
        changed = (
            self.core.store.commits != self._seen_commits
            or key != self._seen_shift
            or (self._escalation_at is not None and now >= self._escalation_at)
        )
        self._seen_shift = key
        return changed

    def _due_channels(self, now: datetime) -> list[str]:
        return self.core.store.texts(
            "SELECT DISTINCT channel FROM notifications WHERE state = ? AND next_at <= ?",
            (State.PENDING.value, iso(now)),
        )

    def _next_due(self, channel: str) -> NotificationRow | None:
        return self.core.store.fetch_one(
            NotificationRow,
            "SELECT * FROM notifications WHERE state = ? AND channel = ? AND next_at <= ? "
            "ORDER BY next_at, id LIMIT 1",
            (State.PENDING.value, channel, iso(self.core.clock.now())),
        )

    async def _drain(self, channel: str) -> None:
        """Send the channel's due messages, one after the other."""
        while True:
            try:
                row = self._next_due(channel)
                if row is None:
                    return
                problem = await self._send(row)
                self._record(row, problem)
            except sqlite3.Error as exc:  # the store refused (a full disk): next tick
                logger.error("alarm notifications on %s: %s", channel, exc)
                return
            except Exception:  # a bug here must not take the line down: next tick
                logger.exception("alarm notifications on %s failed", channel)
                return

    async def _send(self, row: NotificationRow) -> str | None:
        """None once sent, else why not."""
        sender = self._senders.get(row.channel)
        if sender is None:
            return f"no channel {row.channel!r} in [alarms] channels"
        people = tuple(c for n in row.recipients if (c := self.section.contact(n)) is not None)
        out = Outgoing(row.subject, row.body, people, self.core.clock.now())
        started = time.monotonic()
        try:
            await sender.send(out)
        except SendError as exc:
            logger.warning(
                "alarm %s: notification %d by %s not sent (attempt %d): %s",
                row.alarm_id,
                row.id,
                row.channel,
                row.attempts + 1,
                exc,
            )
            return str(exc) or "failed"
        logger.info(
            "alarm %s: %s notification sent by %s to %s in %.0f ms",
            row.alarm_id,
            row.purpose.value,
            row.channel,
            ", ".join(row.recipients) or "the group",
            (time.monotonic() - started) * 1000,
        )
        return None

    def _record(self, row: NotificationRow, problem: str | None) -> None:
        core = self.core
        attempts = row.attempts + 1
        with core.store.transaction() as conn:
            now = core.now()
            if problem is None:
                conn.execute(
                    "UPDATE notifications SET state = ?, attempts = ?, sent_at = ?, "
                    "last_error = NULL WHERE id = ?",
                    (State.SENT.value, attempts, iso(now), row.id),
                )
                if row.channel in self._failing:
                    alarms.clear_alarm(
                        core, _failure_alarm(row.channel), f"{row.channel} sends again"
                    )
                    self._failing.discard(row.channel)
                return
            # Still pending: cancelled meanwhile (acknowledged, cleared), it is let be.
            if attempts >= self.section.max_attempts:
                given_up = conn.execute(
                    "UPDATE notifications SET state = ?, attempts = ?, last_error = ? "
                    "WHERE id = ? AND state = ?",
                    (State.FAILED.value, attempts, problem, row.id, State.PENDING.value),
                ).rowcount
                if given_up:
                    self._give_up(row, attempts, problem)
                return
            delay = min(
                self.section.retry_max_s, self.section.retry_initial_s * 2 ** (attempts - 1)
            )
            conn.execute(
                "UPDATE notifications SET attempts = ?, last_error = ?, next_at = ? "
                "WHERE id = ? AND state = ?",
                (
                    attempts,
                    problem,
                    iso(now + timedelta(seconds=delay)),
                    row.id,
                    State.PENDING.value,
                ),
            )

    def _give_up(self, row: NotificationRow, attempts: int, problem: str) -> None:
        """Said on the board and /api/alarms: an alarm nobody is sent (its kind is never
        notified), raised once per channel until the channel sends again."""
        channel = self.section.channel(row.channel)
        kind = channel.type if channel is not None else "?"
        alarms.raise_alarm(
            self.core,
            _failure_alarm(row.channel),
            NOTIFICATION_KIND,
            row.channel,
            Severity.MAJOR,
            t(
                "Alarm notifications by {channel} ({kind}) fail: gave up after {attempts} "
                "attempts ({error}). Check the channel's address and secret.",
                channel=row.channel,
                kind=kind,
                attempts=attempts,
                error=problem,
            ),
        )
        self._failing.add(row.channel)

    def _prune(self, now: datetime) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        before = iso(now - timedelta(days=self.section.keep_days))
        if not self.core.store.exists(
            "SELECT 1 FROM notifications WHERE done = 1 AND state != ? AND created_at < ?",
            (State.PENDING.value, before),
        ):
            return
        with self.core.store.transaction() as conn:
            conn.execute(
                "DELETE FROM notifications WHERE done = 1 AND state != ? AND created_at < ?",
                (State.PENDING.value, before),
            )


def _failure_alarm(channel: str) -> str:
    return f"{NOTIFICATION_KIND}:{channel}"
