"""The audit trail: who did, or was refused, what; kept on the line and reported to the hub.

A record is a row of the append-only ``audit`` table (migration 4: triggers refuse an
update or a delete), written in the transaction of what it records, and an
``audit.recorded`` event (contract 1.1) carrying exactly the contract's data fields:
``actor``, ``role``, ``action``, ``target``, ``station``, ``outcome``, ``client``. The
row's ``detail`` (a reason, a refusal's code) stays on the line: the contract welcomes
more fields, but what reaches the hub is kept there for good, and free text such as a
name typed into a sign-in form can be a password typed into the wrong box. Adding the
field to the event later is compatible; taking it back is not.

The vocabulary (:class:`AuditAction`); ``outcome`` says whether it was done (``ok``) or
refused for who was asking (``denied``):

- ``sign_in`` / ``sign_out``: a badge at a station, a user's password, a browser session.
  A failed sign-in is ``sign_in`` ``denied`` (wrong password or PIN, unknown badge, a badge
  of another station, held back after repeated failures); ``actor`` is null unless it
  names someone the line knows.
- ``request``: a request refused at the gate before it reached an action (no or a bad
  credential, a revoked token, a missing CSRF token, a route the role may not use, a
  terminal of another station): always ``denied``; ``target`` is ``METHOD /path``.
- line lead: ``replan``, ``station_pause`` / ``station_resume`` (another station),
  ``alarm_ack``, ``reprint``, ``override`` (a refusal overridden; ``detail`` the reason).
- quality: ``use_as_is`` (the disposition), ``release_held`` (held units released).
- maintenance: ``device_action`` (``target`` the device, ``detail`` what was done).
- admin: ``user_add``, ``user_password``, ``user_disable``, ``user_enable``, ``token_create``,
  ``token_revoke``, ``terminal_pair`` (a pairing code issued), ``terminal_claim`` (a
  terminal exchanged its code for its credential; ``denied`` for a wrong or expired
  code), ``terminal_unpair``.

Two ways in, one way out. In the gateway, :func:`record` writes the row and its event in
the caller's transaction. Another process (``linegate users|tokens|terminals`` beside a
running gateway) must not append to the outbox: ``seq`` comes from the gateway's own
counter, held in its memory between transactions (gateway/store/outbox.py), so a second
writer would hand out the numbers the gateway is about to use. It writes the row alone
with :func:`record_in_store`, and the gateway publishes it: every audit row whose id is
above the ``audit_published`` counter is put in the outbox, and the counter moved past
it, in one gateway transaction, so each row becomes exactly one event with the gateway's
next seq. That happens in :func:`record` (the rows waiting go first, in id order) and
every few seconds in :func:`publish_forever`, which also drains, at the gateway's start,
what was recorded while it was stopped. Ids follow commit order (SQLite has one writer
at a time, and AUTOINCREMENT gives an id above every one committed), so no row is ever
committed below the counter after it moved.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Any, Required, TypedDict, Unpack

from cloud_sync.wire_json import clean_text
from gateway.clock import Clock, iso
from gateway.orderbook.context import LineContext
from gateway.store.db import Store
from gateway.store.rows import AuditOutcome, AuditRow, Role

logger = logging.getLogger(__name__)

AUDIT_RECORDED = "audit.recorded"
# counters: the id of the last audit row put in the outbox.
PUBLISHED_MARK = "audit_published"
# How often the gateway looks for rows another process recorded: a person waits for
# nothing (the row is committed at once), the hub hears of it within this long.
PUBLISH_INTERVAL_S = 2.0
# Rows per transaction when draining a backlog, so that the station API gets the loop
# between batches.
PUBLISH_BATCH = 500

# A refused request's target is what the client sent (its path): bounded, so that a loop
# of hostile requests costs the trail a bounded row each. A reason gets more room.
MAX_FIELD_CHARS = 200
MAX_DETAIL_CHARS = 2000
# What clean_text keeps but a field shown on one line must not hold: tab, line feed and
# carriage return (a path with a line break could pass for another record in a text
# view), DEL and the C1 controls (a terminal may act on them).
_LINE_BREAKS = re.compile("[\t\n\r\x7f-\x9f]+")
_C1 = re.compile("[\x7f-\x9f]+")


class AuditAction(StrEnum):
    """What a record is about (see the module's docstring)."""

    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    REQUEST = "request"
    REPLAN = "replan"
    STATION_PAUSE = "station_pause"
    STATION_RESUME = "station_resume"
    ALARM_ACK = "alarm_ack"
    REPRINT = "reprint"
    OVERRIDE = "override"
    USE_AS_IS = "use_as_is"
    RELEASE_HELD = "release_held"
    DEVICE_ACTION = "device_action"
    USER_ADD = "user_add"
    USER_PASSWORD = "user_password"
    USER_DISABLE = "user_disable"
    USER_ENABLE = "user_enable"
    TOKEN_CREATE = "token_create"
    TOKEN_REVOKE = "token_revoke"
    TERMINAL_PAIR = "terminal_pair"
    TERMINAL_CLAIM = "terminal_claim"
    TERMINAL_UNPAIR = "terminal_unpair"


class AuditFields(TypedDict, total=False):
    """What one record says (see the module's docstring); ``actor``, ``role``, ``action``
    and ``outcome`` are required."""

    actor: Required[str | None]
    role: Required[Role | str | None]
    action: Required[AuditAction]
    outcome: Required[AuditOutcome]
    target: str | None
    station: str | None
    client: str | None
    detail: str | None


def record(core: LineContext, **fields: Unpack[AuditFields]) -> int:
    """Record in the current transaction, with its ``audit.recorded`` event (and those of
    rows another process recorded, first); returns the row's id."""
    audit_id = _insert(core.store, core.now_iso(), fields)
    publish_pending(core)
    return audit_id


def record_in_store(store: Store, clock: Clock, **fields: Unpack[AuditFields]) -> int:
    """Record in the current transaction of a process that is not the gateway (the CLI):
    the row only; the gateway publishes it when it runs. Returns the row's id."""
    return _insert(store, iso(clock.now()), fields)


def publish_pending(core: LineContext, limit: int | None = None) -> int:
    """Put the audit rows not yet published in the outbox (at most ``limit``), in id order,
    in the current transaction; returns how many."""
    store = core.store
    if not store.in_transaction:
        raise RuntimeError("audit records are published inside a store transaction")
    rows = store.fetch_all(
        AuditRow,
        "SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?",
        (published_through(store), -1 if limit is None else limit),
    )
    for row in rows:
        data = event_data(row)
        # As LineContext.emit does, but stamped with the row's time: a row another process
        # recorded is published later than it happened.
        core.notify(AUDIT_RECORDED, data)
        core.outbox.append(AUDIT_RECORDED, data, row.ts)
    if rows:
        store.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (PUBLISHED_MARK, rows[-1].id),
        )
    return len(rows)


async def publish_forever(core: LineContext, interval_s: float = PUBLISH_INTERVAL_S) -> None:
    """The gateway's task that publishes what other processes recorded, from its start."""
    said: str | None = None  # the problem last logged: a full disk is not logged each look
    while True:
        try:
            while has_pending(core.store):
                with core.store.transaction():
                    publish_pending(core, PUBLISH_BATCH)
                await asyncio.sleep(0)  # a backlog must not hold the station API up
            said = None
        except sqlite3.Error as exc:
            # The store is busy or full: the rows wait in the table for the next look.
            if str(exc) != said:
                said = str(exc)
                logger.warning("audit records wait for publication to the hub: %s", exc)
        await asyncio.sleep(interval_s)


def has_pending(store: Store) -> bool:
    """Some audit row is not in the outbox yet (a cheap look, outside a transaction)."""
    return store.exists("SELECT 1 FROM audit WHERE id > ? LIMIT 1", (published_through(store),))


def published_through(store: Store) -> int:
    """The id of the last audit row put in the outbox (0: none)."""
    return store.count("SELECT value FROM counters WHERE name = ?", (PUBLISHED_MARK,))


def event_data(row: AuditRow) -> dict[str, Any]:
    """``audit.recorded``'s data: the contract's fields, nothing else."""
    return {
        "actor": row.actor,
        "role": row.role,
        "action": row.action,
        "target": row.target,
        "station": row.station,
        "outcome": row.outcome.value,
        "client": row.client,
    }


def read_trail(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: AuditOutcome | None = None,
) -> list[AuditRow]:
    """The records that match, oldest first (in the order they were written); ``since``
    included, ``until`` not."""
    where: list[str] = []
    params: list[object] = []
    # ts is iso()'s fixed form, so comparing texts compares instants.
    for clause, value in (
        ("ts >= ?", None if since is None else iso(since)),
        ("ts < ?", None if until is None else iso(until)),
        ("actor = ?", actor),
        ("action = ?", action),
        ("outcome = ?", outcome),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = "SELECT * FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return store.fetch_all(AuditRow, sql + " ORDER BY id", params)


def has_trail(store: Store) -> bool:
    """The database has the audit table (a gateway of this version has opened it)."""
    return store.exists("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'")


def _insert(store: Store, ts: str, fields: AuditFields) -> int:
    if not store.in_transaction:
        raise RuntimeError("an audit record is written inside a store transaction")
    role = fields["role"]
    return store.insert(
        "INSERT INTO audit (ts, actor, role, action, target, station, outcome, client, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            ts,
            one_line(fields["actor"]),
            one_line(None if role is None else str(role)),
            AuditAction(fields["action"]).value,
            one_line(fields.get("target")),
            one_line(fields.get("station")),
            AuditOutcome(fields["outcome"]).value,
            one_line(fields.get("client")),
            paragraph(fields.get("detail")),
        ),
    )


def one_line(text: str | None) -> str | None:
    """A field fit for the trail and the wire: no control character, no line break (nor
    U+2028/U+2029), no invisible format character (a zero-width space, a right-to-left
    override that would turn a record around on screen), no lone surrogate (U+FFFD
    instead), bounded; None when nothing is left. Much of it is typed by whoever asks
    (a badge, a path), so it is shown as what it is, not as what it pretends to be."""
    if text is None:
        return None
    cleaned = _LINE_BREAKS.sub(" ", clean_text(text))
    if not cleaned.isascii():
        cleaned = "".join(
            " " if unicodedata.category(c) in ("Zl", "Zp") else c
            for c in cleaned
            if unicodedata.category(c) != "Cf"
        )
    return _bounded(cleaned.strip(), MAX_FIELD_CHARS)


def paragraph(text: str | None) -> str | None:
    """A reason, which may run over several lines: as :func:`one_line`, keeping tabs and
    line breaks, with more room."""
    if text is None:
        return None
    return _bounded(_C1.sub("", clean_text(text)).strip(), MAX_DETAIL_CHARS)


def _bounded(text: str, limit: int) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"
