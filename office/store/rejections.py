"""What the office refused, recorded once: one row per (via, claimed gateway, reason,
payload), however often it comes again (a batch retried after a store outage, a gateway
resending what was refused), with how many times and when last; and a bound on the table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from office.store import schema

__all__ = ["PAYLOAD_KEPT", "RejectKind", "RejectedBound", "Rejection", "prune", "record"]

# What of a rejected payload is kept: enough to see what it was, not a 4 MiB blob per try.
PAYLOAD_KEPT = 4096


class RejectKind(StrEnum):
    """The class of a refusal (a metric label: a few values, never the reason's text)."""

    AUTH = "auth"  # a missing, unknown or another line's token
    OVERSIZED = "oversized"
    MALFORMED = "malformed"  # not JSON, not an envelope, not a status, not an office topic
    FOREIGN = "foreign"  # claims another gateway than the transport vouches for
    CONFLICT = "conflict"  # a seq already held, sent again with other content


@dataclass(frozen=True)
class Rejection:
    at: str  # first recorded
    via: str
    claimed_gateway_id: str | None
    reason: str
    payload: str
    size: int
    times: int  # how often it came
    last_at: str


@dataclass(frozen=True)
class RejectedBound:
    """The table keeps at most ``rows`` rows and nothing last seen over ``days`` ago; it is
    pruned at open and every ``prune_every`` records (a delete through an index)."""

    rows: int = 100_000
    days: int = 30
    prune_every: int = 1000


def fingerprint(via: str, claimed: str | None, reason: str, payload: bytes) -> str:
    digest = hashlib.sha256()
    for part in (via, claimed or "", reason, hashlib.sha256(payload).hexdigest()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


async def record(
    conn: AsyncConnection,
    insert: Any,
    at: str,
    via: str,
    claimed: str | None,
    reason: str,
    payload: bytes,
    keep: int = PAYLOAD_KEPT,
) -> None:
    """Insert, or count once more (``insert`` is the dialect's, for ON CONFLICT)."""
    r = schema.rejected
    reason = reason[:2000]
    stmt = insert(r).values(
        at=at,
        via=via,
        claimed_gateway_id=claimed,
        reason=reason,
        payload=payload[:keep].decode("utf-8", errors="replace"),
        size=len(payload),
        fingerprint=fingerprint(via, claimed, reason, payload),
        times=1,
        last_at=at,
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[r.c.fingerprint],
            set_={"times": r.c.times + 1, "last_at": stmt.excluded.last_at},
        )
    )


async def prune(conn: AsyncConnection, bound: RejectedBound, now: datetime) -> None:
    r = schema.rejected
    cutoff = (now - timedelta(days=bound.days)).isoformat(timespec="microseconds")
    await conn.execute(delete(r).where(r.c.last_at < cutoff))
    # The newest ``rows`` by id: the id of the first one past them, found through the key.
    oldest_kept = await conn.scalar(
        select(r.c.id).order_by(r.c.id.desc()).offset(bound.rows).limit(1)
    )
    if oldest_kept is not None:
        await conn.execute(delete(r).where(r.c.id <= oldest_kept))


async def read_all(conn: AsyncConnection) -> list[Rejection]:
    r = schema.rejected
    rows = (await conn.execute(select(r).order_by(r.c.id))).all()
    return [
        Rejection(
            at=row.at,
            via=row.via,
            claimed_gateway_id=row.claimed_gateway_id,
            reason=row.reason,
            payload=row.payload,
            size=row.size,
            times=row.times,
            last_at=row.last_at or row.at,
        )
        for row in rows
    ]
