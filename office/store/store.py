"""The store's operations: add events once, hold-through and gaps per line, rejections,
and what the HTTP ends serve (a line's orders and master data).

One statement shape on both databases: ``INSERT ... ON CONFLICT DO NOTHING RETURNING seq``
tells new from duplicate. Per line, one writer at a time: the line's row is locked
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer anyway) before its events
go in, so two office instances adding overlapping batches store each seq once and advance
``held_through`` from the stored value by reading the contiguous run, never past a hole.

A seq that comes again is compared by the sha256 of its body in canonical JSON: the same
is a duplicate (a redelivery, a replay), another is a conflict, recorded in ``rejected``
in the same transaction (the stored event is kept).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    AsyncAdaptedQueuePool,
    ColumnElement,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from cloud_sync.contract import Envelope
from office.store import rejections, schema
from office.store.migrations import migrate
from office.store.rejections import RejectedBound, Rejection, RejectKind

__all__ = ["Added", "Line", "LineReport", "Projector", "Store", "StoreUnavailable", "Tally"]

# Called in the transaction that stored them, with the events of one line new to the store
# (never a duplicate, in seq order): the office's views (orders, alarms, reports) and its
# webhooks' outbox follow the events in the same commit, so a view never misses one nor
# counts one twice, whichever instance stored it. Each runs in a savepoint of its own: one
# that fails (a bug meeting an event it did not expect) loses its own part of that batch,
# logged and counted (linegate_office_projection_failures_total), never the events, and
# never stalls the line's stream behind them.
Projector = Callable[[AsyncConnection, str, Sequence[Envelope]], Awaitable[None]]

# A conflicting event is kept whole (bounded by the receiving ends' payload bound): it is
# the only copy of what the gateway sent under that seq.
_CONFLICT_KEPT = 4 << 20
log = logging.getLogger(__name__)

# Rows per INSERT: under SQLite's and PostgreSQL's bound parameter limits.
_CHUNK = 500
# The contiguous run is read this many seqs at a time.
_RUN_PAGE = 5000


class StoreUnavailable(Exception):
    """The database cannot be reached or failed the operation; nothing was committed.

    The receiving ends answer 503 (HTTP) or do not acknowledge (MQTT), so the sender
    tries again."""


@dataclass(frozen=True)
class Added:
    new: int  # events stored by this call
    duplicates: int  # events already held (a replay, a redelivery)
    held_through: int  # every seq up to this one is stored
    gaps: list[tuple[int, int]]  # missing ranges (first, last) below the highest seq seen
    conflicts: int = 0  # seqs already held, sent with other content: recorded, not stored
    conflicting: tuple[tuple[int, str], ...] = ()  # (seq, reason) of each conflict


@dataclass(frozen=True)
class Line:
    gateway_id: str
    held_through: int
    last_seen: str | None
    status: dict[str, Any] | None


@dataclass(frozen=True)
class LineReport:
    """A line as the office holds it (``GET /v1/lines``, the metrics)."""

    gateway_id: str
    held_through: int
    highest_seq: int  # 0: nothing stored yet
    gaps: list[tuple[int, int]]
    last_seen: str | None
    status: dict[str, Any] | None


@dataclass
class Tally:
    """What this Store instance did since it opened, counted after each commit (metrics)."""

    stored: Counter[str] = field(default_factory=Counter)  # by via
    duplicates: int = 0
    conflicts: int = 0
    rejected: Counter[RejectKind] = field(default_factory=Counter)
    projection_failures: Counter[str] = field(default_factory=Counter)  # by projector


@dataclass(frozen=True)
class _Row:
    envelope: Envelope
    body: str
    digest: str


def _digest(body: str) -> str:
    canonical = json.dumps(
        json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _event_id(body: str) -> str:
    try:
        found = json.loads(body).get("event_id")
    except (ValueError, AttributeError):
        found = None
    return str(found) if found is not None else "(none)"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


class Store:
    """Open with :meth:`open` (migrates), close with :meth:`close`."""

    def __init__(
        self,
        engine: AsyncEngine,
        now: Callable[[], datetime],
        bound: RejectedBound | None = None,
        projectors: Sequence[Projector] = (),
    ) -> None:
        self._engine = engine
        self._projectors = tuple(projectors)
        # Called after each commit that stored new events: a projector that queued work
        # for a task (the webhooks' sender) wakes it here, when the rows are visible.
        self.after_commit: list[Callable[[], None]] = []
        self._now = now
        self._bound = bound or RejectedBound()
        self._since_prune = 0
        self.tally = Tally()
        self._postgres = engine.dialect.name == "postgresql"
        # SQLite has one writer: take turns here rather than meet "database is locked".
        self._write_turn = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        url: str,
        now: Callable[[], datetime],
        bound: RejectedBound | None = None,
        projectors: Sequence[Projector] = (),
    ) -> Store:
        """Connect to ``url`` (``sqlite+aiosqlite:///...`` or ``postgresql+psycopg://...``),
        bring the schema up to date and prune the rejections to ``bound``."""
        if url.startswith("sqlite"):
            engine = create_async_engine(url, poolclass=AsyncAdaptedQueuePool, pool_size=1)
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # A connection that died with a restarted server is found and replaced on checkout.
            engine = create_async_engine(url, pool_pre_ping=True, pool_size=5)
        store = cls(engine, now, bound, projectors)
        try:
            async with store._transaction() as conn:
                await conn.run_sync(migrate, _iso(now()))
            async with store._transaction() as conn:
                await rejections.prune(conn, store._bound, now())
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self._engine.dispose()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """One write transaction, the store's way (turns on SQLite; StoreUnavailable): for
        the office's other parts that keep tables of their own (office/feed)."""
        return self._transaction()

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reading only (pages, lookups, the gate's sessions): it does not
        wait for the writers' turn (SQLite's WAL lets readers run beside the one writer);
        StoreUnavailable when the store fails."""
        return self._reading()

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.connect() as conn:
                yield conn
        except (OperationalError, DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {_short(exc)}") from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        turn = _NoTurn() if self._postgres else self._write_turn
        try:
            async with turn, self._engine.begin() as conn:
                yield conn
        except (OperationalError, DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {_short(exc)}") from exc

    # -- events -------------------------------------------------------------------------

    async def add_events(
        self, gateway_id: str, envelopes: Sequence[tuple[Envelope, str]], via: str
    ) -> Added:
        """Store each envelope (with its JSON text, kept as it came) once; the caller has
        checked that each one's gateway_id is ``gateway_id``."""
        fresh: dict[int, _Row] = {}
        again: list[_Row] = []  # a seq twice in this batch: the later ones
        for envelope, body in envelopes:
            if envelope.gateway_id != gateway_id:
                raise ValueError(f"envelope of {envelope.gateway_id} added for {gateway_id}")
            row = _Row(envelope, body, _digest(body))
            if envelope.seq in fresh:
                again.append(row)
            else:
                fresh[envelope.seq] = row
        received = _iso(self._now())
        async with self._transaction() as conn:
            held = await self._lock_line(conn, gateway_id, received)
            inserted: set[int] = set()
            rows = [
                {
                    "gateway_id": gateway_id,
                    "seq": seq,
                    "type": row.envelope.type,
                    "ts": _iso(row.envelope.ts),
                    "order_id": row.envelope.order_id,
                    "body": row.body,
                    "received_at": received,
                    "via": via,
                    "digest": row.digest,
                }
                for seq, row in sorted(fresh.items())
                if seq > held  # at or below held_through: held already
            ]
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                stmt = self._insert(schema.events).values(chunk).on_conflict_do_nothing()
                result = await conn.execute(stmt.returning(schema.events.c.seq))
                inserted.update(result.scalars())
            new = len(inserted)
            if inserted and self._projectors:
                added = [row.envelope for seq, row in sorted(fresh.items()) if seq in inserted]
                for project in self._projectors:
                    await self._project(conn, project, gateway_id, added)
            held_rows = [row for seq, row in fresh.items() if seq not in inserted]
            stored = await self._stored_digests(
                conn, gateway_id, [r.envelope.seq for r in held_rows]
            )
            for row in again:  # compared with the first of the batch when that one went in
                if row.envelope.seq in inserted:
                    first = fresh[row.envelope.seq]
                    stored[row.envelope.seq] = (first.digest, first.body)
            clashes = [
                (row, stored[row.envelope.seq][1])
                for row in [*held_rows, *again]
                if row.envelope.seq in stored and stored[row.envelope.seq][0] != row.digest
            ]
            conflicting = [
                (
                    row.envelope.seq,
                    await self._record_conflict(conn, gateway_id, via, row, stored_body, received),
                )
                for row, stored_body in clashes
            ]
            held = await self._advance(conn, gateway_id, held)
            gaps = await self._gaps(conn, gateway_id, held)
        duplicates = len(held_rows) + len(again) - len(clashes)
        if new:
            for told in self.after_commit:
                told()
        self.tally.stored[via] += new
        self.tally.duplicates += duplicates
        self.tally.conflicts += len(clashes)
        self.tally.rejected[RejectKind.CONFLICT] += len(clashes)
        return Added(
            new=new,
            duplicates=duplicates,
            held_through=held,
            gaps=gaps,
            conflicts=len(clashes),
            conflicting=tuple(conflicting),
        )

    async def _project(
        self,
        conn: AsyncConnection,
        project: Projector,
        gateway_id: str,
        added: list[Envelope],
    ) -> None:
        name = getattr(project, "__qualname__", None) or type(project).__qualname__
        try:
            async with conn.begin_nested():
                await project(conn, gateway_id, added)
        except (OperationalError, DBAPIError, OSError):
            raise  # the store itself failed: the whole batch goes back (StoreUnavailable)
        except Exception:
            self.tally.projection_failures[name] += 1
            failures = self.tally.projection_failures[name]
            if failures == 1 or failures % 100 == 0:
                log.exception(
                    "the view %s failed on %s seq %d..%d (failure %d); the events are kept",
                    name,
                    gateway_id,
                    added[0].seq,
                    added[-1].seq,
                    failures,
                )

    async def _stored_digests(
        self, conn: AsyncConnection, gateway_id: str, seqs: list[int]
    ) -> dict[int, tuple[str, str]]:
        """seq -> (digest, body) of what is stored; the digest computed for rows stored
        before migration 2 had a column for it."""
        events = schema.events
        found: dict[int, tuple[str, str]] = {}
        for start in range(0, len(seqs), _CHUNK):
            chunk = seqs[start : start + _CHUNK]
            result = await conn.execute(
                select(events.c.seq, events.c.digest, events.c.body).where(
                    events.c.gateway_id == gateway_id, events.c.seq.in_(chunk)
                )
            )
            for seq, digest, body in result:
                found[seq] = (digest or _digest(body), body)
        return found

    async def _record_conflict(
        self,
        conn: AsyncConnection,
        gateway_id: str,
        via: str,
        row: _Row,
        stored_body: str,
        at: str,
    ) -> str:
        seq, theirs = row.envelope.seq, row.envelope.event_id
        ours = _event_id(stored_body)
        other = f"event_id {theirs}" if theirs != ours else "the same event_id and another body"
        reason = f"conflict: seq {seq} already held with event_id {ours}; this one has {other}"
        log.warning("%s: %s", gateway_id, reason)
        await rejections.record(
            conn, self._insert, at, via, gateway_id, reason, row.body.encode(), _CONFLICT_KEPT
        )
        return reason

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._postgres else sqlite.insert)(table)

    async def _lock_line(self, conn: AsyncConnection, gateway_id: str, seen: str) -> int:
        """The line's row, created if new and locked for this transaction; its held_through."""
        lines = schema.lines
        await conn.execute(
            self._insert(lines)
            .values(gateway_id=gateway_id, held_through=0, last_seen=seen)
            .on_conflict_do_nothing()
        )
        query = select(lines.c.held_through).where(lines.c.gateway_id == gateway_id)
        if self._postgres:
            query = query.with_for_update()
        held: int = (await conn.execute(query)).scalar_one()
        return held

    async def _advance(self, conn: AsyncConnection, gateway_id: str, held: int) -> int:
        """Walk the stored run past ``held`` and save where it ends."""
        events = schema.events
        start = held
        while True:
            seqs = (
                await conn.scalars(
                    select(events.c.seq)
                    .where(events.c.gateway_id == gateway_id, events.c.seq > held)
                    .order_by(events.c.seq)
                    .limit(_RUN_PAGE)
                )
            ).all()
            for seq in seqs:
                if seq != held + 1:
                    break
                held = seq
            else:
                if len(seqs) == _RUN_PAGE:
                    continue
            break
        values: dict[str, Any] = {"last_seen": _iso(self._now())}
        if held != start:
            values["held_through"] = held
        await conn.execute(
            update(schema.lines).where(schema.lines.c.gateway_id == gateway_id).values(**values)
        )
        return held

    async def _gaps(
        self, conn: AsyncConnection, gateway_id: str, held: int
    ) -> list[tuple[int, int]]:
        events = schema.events
        after: ColumnElement[Any] = func.lead(events.c.seq).over(order_by=events.c.seq)
        run = (
            select(events.c.seq.label("seq"), after.label("next"))
            .where(events.c.gateway_id == gateway_id, events.c.seq > held)
            .subquery()
        )
        rows = (
            await conn.execute(
                select(run.c.seq, run.c.next)
                .where((run.c.next.is_(None)) | (run.c.next > run.c.seq + 1))
                .order_by(run.c.seq)
            )
        ).all()
        first = await conn.scalar(
            select(func.min(events.c.seq)).where(
                events.c.gateway_id == gateway_id, events.c.seq > held
            )
        )
        gaps: list[tuple[int, int]] = []
        if first is not None and first > held + 1:
            gaps.append((held + 1, first - 1))
        gaps.extend((seq + 1, nxt - 1) for seq, nxt in rows if nxt is not None)
        return gaps

    async def gaps(self, gateway_id: str) -> list[tuple[int, int]]:
        """Missing seq ranges (first, last) below the highest seq seen from this line."""
        try:
            async with self._engine.connect() as conn:
                held = await conn.scalar(
                    select(schema.lines.c.held_through).where(
                        schema.lines.c.gateway_id == gateway_id
                    )
                )
                return await self._gaps(conn, gateway_id, held or 0)
        except (OperationalError, DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {_short(exc)}") from exc

    async def event_seqs(self, gateway_id: str) -> list[int]:
        """Every stored seq of a line, in order (for checks and tests)."""
        async with self._engine.connect() as conn:
            seqs = await conn.scalars(
                select(schema.events.c.seq)
                .where(schema.events.c.gateway_id == gateway_id)
                .order_by(schema.events.c.seq)
            )
            return list(seqs)

    async def event_body(self, gateway_id: str, seq: int) -> str | None:
        async with self._engine.connect() as conn:
            body: str | None = await conn.scalar(
                select(schema.events.c.body).where(
                    schema.events.c.gateway_id == gateway_id, schema.events.c.seq == seq
                )
            )
            return body

    # -- lines --------------------------------------------------------------------------

    async def set_status(self, gateway_id: str, status: dict[str, Any]) -> None:
        """The line's last out/status document."""
        seen = _iso(self._now())
        doc = json.dumps(status, sort_keys=True)
        async with self._transaction() as conn:
            await self._lock_line(conn, gateway_id, seen)
            await conn.execute(
                update(schema.lines)
                .where(schema.lines.c.gateway_id == gateway_id)
                .values(status=doc, last_seen=seen)
            )

    async def line(self, gateway_id: str) -> Line | None:
        lines = schema.lines
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(lines).where(lines.c.gateway_id == gateway_id))
            ).one_or_none()
        if row is None:
            return None
        return Line(
            gateway_id=row.gateway_id,
            held_through=row.held_through,
            last_seen=row.last_seen,
            status=json.loads(row.status) if row.status is not None else None,
        )

    # -- rejections ---------------------------------------------------------------------

    async def reject(
        self,
        via: str,
        claimed_gateway_id: str | None,
        reason: str,
        payload: bytes,
        *,
        kind: RejectKind,
    ) -> None:
        """Record what was refused, so that nothing is dropped unseen; the same refusal again
        is counted on its row (``times``, ``last_at``)."""
        now = self._now()
        self._since_prune += 1
        prune = self._since_prune >= self._bound.prune_every
        async with self._transaction() as conn:
            await rejections.record(
                conn, self._insert, _iso(now), via, claimed_gateway_id, reason, payload
            )
            if prune:
                await rejections.prune(conn, self._bound, now)
        if prune:
            self._since_prune = 0
        self.tally.rejected[kind] += 1

    async def rejections(self) -> list[Rejection]:
        async with self._engine.connect() as conn:
            return await rejections.read_all(conn)

    async def lines_report(self) -> list[LineReport]:
        """Every line the office has heard from, in gateway_id order."""
        lines, events = schema.lines, schema.events
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(select(lines).order_by(lines.c.gateway_id))).all()
                report = []
                for row in rows:
                    highest = await conn.scalar(
                        select(func.max(events.c.seq)).where(events.c.gateway_id == row.gateway_id)
                    )
                    report.append(
                        LineReport(
                            gateway_id=row.gateway_id,
                            held_through=row.held_through,
                            highest_seq=highest or 0,
                            gaps=await self._gaps(conn, row.gateway_id, row.held_through),
                            last_seen=row.last_seen,
                            status=json.loads(row.status) if row.status is not None else None,
                        )
                    )
                return report
        except (OperationalError, DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {_short(exc)}") from exc

    # -- what the HTTP ends serve -------------------------------------------------------

    async def put_order(self, gateway_id: str, cursor: int, doc: dict[str, Any]) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                insert(schema.line_orders).values(
                    gateway_id=gateway_id, cursor=cursor, doc=json.dumps(doc)
                )
            )

    async def orders_after(
        self, gateway_id: str, after: int, limit: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        """The line's orders past ``after`` and the cursor to ask from next."""
        o = schema.line_orders
        try:
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(o.c.cursor, o.c.doc)
                        .where(o.c.gateway_id == gateway_id, o.c.cursor > after)
                        .order_by(o.c.cursor)
                        .limit(limit)
                    )
                ).all()
        except (OperationalError, DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {_short(exc)}") from exc
        docs = [json.loads(row.doc) for row in rows]
        return docs, (rows[-1].cursor if rows else after)

    async def put_masterdata(self, gateway_id: str, kind: str, doc: dict[str, Any]) -> None:
        m = schema.masterdata
        async with self._transaction() as conn:
            stmt = self._insert(m).values(gateway_id=gateway_id, kind=kind, doc=json.dumps(doc))
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[m.c.gateway_id, m.c.kind], set_={"doc": stmt.excluded.doc}
                )
            )

    async def masterdata(self, gateway_id: str) -> list[dict[str, Any]]:
        m = schema.masterdata
        try:
            async with self._engine.connect() as conn:
                docs = await conn.scalars(
                    select(m.c.doc).where(m.c.gateway_id == gateway_id).order_by(m.c.kind)
                )
                return [json.loads(doc) for doc in docs]
        except (OperationalError, DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {_short(exc)}") from exc


class _NoTurn:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_exc: object) -> None:
        return None


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    # WAL: readers do not block the writer; FULL: a commit survives a power cut.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
