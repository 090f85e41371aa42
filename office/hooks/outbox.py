"""The webhooks' outbox (``hook_outbox``): rows in, the due streams out.

A row is sent after every earlier row of its (hook, stream) is done or given up: a line's
``material.requested`` revisions reach the WMS in seq order (a line's events are stored one
transaction at a time, under the line's lock, so its rows' ids follow its seqs). Claimed
rows carry a lease (``lease_until``): another office instance does not take them until it
ends, so an instance killed mid-send leaves its rows to the others. On PostgreSQL the claim
locks each stream's head row with ``FOR UPDATE SKIP LOCKED``: two instances claiming at
once never take the same stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from office.store import schema

__all__ = [
    "Delivery",
    "Failed",
    "NewRow",
    "State",
    "claim",
    "depth",
    "enqueue",
    "failed",
    "finish",
    "iso",
    "prune",
    "release",
]


class State(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # given up: a 4xx, or the attempts spent


def iso(moment: datetime) -> str:
    """UTC, to the microsecond: text that sorts as time on both databases."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def insert_for(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


@dataclass(frozen=True)
class NewRow:
    hook: str
    stream: str
    key: str
    type: str
    order_id: str | None
    body: str


@dataclass(frozen=True)
class Delivery:
    id: int
    hook: str
    stream: str
    key: str
    type: str
    body: str
    attempts: int  # made before this one


@dataclass(frozen=True)
class Failed:
    hook: str
    key: str
    type: str
    order_id: str | None
    stream: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: str
    finished_at: str | None


async def enqueue(conn: AsyncConnection, rows: Sequence[NewRow], now: datetime) -> None:
    """Once per (hook, key): a row already queued is left as it is."""
    if not rows:
        return
    at = iso(now)
    values = [
        {
            "hook": r.hook,
            "stream": r.stream,
            "key": r.key,
            "type": r.type,
            "order_id": r.order_id,
            "body": r.body,
            "created_at": at,
            "state": State.PENDING.value,
            "attempts": 0,
            "next_at": at,
        }
        for r in rows
    ]
    o = schema.hook_outbox
    await conn.execute(insert_for(conn, o).values(values).on_conflict_do_nothing())


async def claim(
    conn: AsyncConnection,
    hooks: Sequence[str],
    now: datetime,
    lease_s: float,
    streams: int,
    per_stream: int,
) -> list[list[Delivery]]:
    """Up to ``streams`` streams of ``hooks`` whose head row is due and not leased, each
    with up to ``per_stream`` rows from its head in id order, leased to the caller until
    ``now + lease_s`` (a hook taken out of office.toml keeps its rows for its return).

    Only the head is locked (PostgreSQL, SKIP LOCKED): a stream whose head another
    instance holds is left to it, and the rows behind a leased head wait for it."""
    o = schema.hook_outbox
    at = iso(now)
    pending = o.c.state == State.PENDING.value
    heads = (
        select(func.min(o.c.id).label("head"))
        .where(o.c.hook.in_(list(hooks)), pending)
        .group_by(o.c.hook, o.c.stream)
        .subquery()
    )
    query = (
        select(o.c.id, o.c.hook, o.c.stream)
        .join(heads, o.c.id == heads.c.head)
        .where(pending, o.c.next_at <= at, or_(o.c.lease_until.is_(None), o.c.lease_until <= at))
        .order_by(o.c.next_at, o.c.id)
        .limit(streams)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=o)
    found: list[list[Delivery]] = []
    for head in (await conn.execute(query)).all():
        rows = (
            await conn.execute(
                select(o.c.id, o.c.hook, o.c.stream, o.c.key, o.c.type, o.c.body, o.c.attempts)
                .where(o.c.hook == head.hook, o.c.stream == head.stream, pending, o.c.id >= head.id)
                .order_by(o.c.id)
                .limit(per_stream)
            )
        ).all()
        found.append(
            [Delivery(r.id, r.hook, r.stream, r.key, r.type, r.body, r.attempts) for r in rows]
        )
    ids = [d.id for stream in found for d in stream]
    if ids:
        until = iso(now + timedelta(seconds=lease_s))
        await conn.execute(update(o).where(o.c.id.in_(ids)).values(lease_until=until))
    return found


async def release(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Rows claimed and not tried (their stream stopped at a failure): free at once."""
    o = schema.hook_outbox
    if ids:
        await conn.execute(
            update(o)
            .where(o.c.id.in_(list(ids)), o.c.state == State.PENDING.value)
            .values(lease_until=None)
        )


async def finish(
    conn: AsyncConnection,
    id_: int,
    state: State,
    now: datetime,
    status: int | None,
    error: str | None,
    next_at: datetime | None = None,
) -> None:
    """After an attempt: done, given up, or (PENDING) tried again at ``next_at``."""
    o = schema.hook_outbox
    values: dict[str, Any] = {
        "state": state.value,
        "attempts": o.c.attempts + 1,
        "lease_until": None,
        "last_status": status,
        "last_error": error[:2000] if error else None,
    }
    if state is State.PENDING:
        values["next_at"] = iso(next_at or now)
    else:
        values["finished_at"] = iso(now)
    # Never back from done or given up (an instance whose lease ran out finishing late).
    await conn.execute(
        update(o).where(o.c.id == id_, o.c.state == State.PENDING.value).values(**values)
    )


async def failed(conn: AsyncConnection, limit: int = 200) -> list[Failed]:
    """The rows given up, newest first."""
    o = schema.hook_outbox
    rows = (
        await conn.execute(
            select(o)
            .where(o.c.state == State.FAILED.value)
            .order_by(o.c.finished_at.desc(), o.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [
        Failed(
            hook=r.hook,
            key=r.key,
            type=r.type,
            order_id=r.order_id,
            stream=r.stream,
            attempts=r.attempts,
            last_status=r.last_status,
            last_error=r.last_error,
            created_at=r.created_at,
            finished_at=r.finished_at,
        )
        for r in rows
    ]


async def depth(conn: AsyncConnection) -> dict[str, tuple[int, str | None]]:
    """Per hook: rows waiting, and when the oldest of them was queued."""
    o = schema.hook_outbox
    rows = (
        await conn.execute(
            select(o.c.hook, func.count(), func.min(o.c.created_at))
            .where(o.c.state == State.PENDING.value)
            .group_by(o.c.hook)
        )
    ).all()
    return {str(r[0]): (int(r[1]), r[2]) for r in rows}


async def prune(conn: AsyncConnection, now: datetime, done_days: float, failed_days: float) -> int:
    """Delete what was sent over ``done_days`` ago and given up over ``failed_days`` ago
    (the table would otherwise keep every event a hook ever sent); how many rows went."""
    o = schema.hook_outbox
    gone = 0
    for state, days in ((State.DONE, done_days), (State.FAILED, failed_days)):
        before = iso(now - timedelta(days=days))
        result = await conn.execute(
            delete(o).where(o.c.state == state.value, o.c.finished_at < before)
        )
        gone += result.rowcount
    return gone
