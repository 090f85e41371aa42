"""The shared parts every domain service works with: store, outbox, clock, config, ledger."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.clock import Clock, iso
from gateway.config.line import LineConfig
from gateway.orderbook.catalog import CatalogCache
from gateway.orderbook.kitting import Ledger
from gateway.store.bulk import BulkInserts
from gateway.store.db import Store
from gateway.store.outbox import Outbox


@dataclass
class LineContext:
    """What the services share; built once by the composition root."""

    config: LineConfig
    store: Store
    outbox: Outbox
    clock: Clock
    catalog: CatalogCache = field(default_factory=CatalogCache)
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        self._tz = ZoneInfo(self.config.line.timezone)
        self._txn_now: tuple[datetime, str, date] | None = None
        self.bulk = BulkInserts(self.store)
        self._ledger_guarded = False
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        # Stations whose machine is connected: their machine.state comes from the machine.
        self.live_machines: set[str] = set()

    def subscribe(self, topic: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(data)`` after the commit of every transaction that emits an event
        of type ``topic`` (or calls :meth:`notify` with it). After the commit, so that I/O
        started from it (a job to a machine, a label to a printer) never acts on a change
        that could still roll back, and never runs inside a transaction."""
        self._listeners.setdefault(topic, []).append(callback)

    def notify(self, topic: str, data: dict[str, Any]) -> None:
        """Tell the subscribers of ``topic`` once the current transaction commits."""
        for callback in self._listeners.get(topic, ()):
            self.store.on_commit(functools.partial(callback, data))

    def now(self) -> datetime:
        """The instant of the change being made: one per transaction, since a transaction
        is one atomic change (and a burst of orders reads the clock once, not per row)."""
        if not self.store.in_transaction:
            return self.clock.now()
        if self._txn_now is None:
            ts = self.clock.now()
            self._txn_now = (ts, iso(ts), ts.astimezone(self._tz).date())
            self.store.on_commit(self._forget_now)
            self.store.on_rollback(self._forget_now)
        return self._txn_now[0]

    def ledger_touched(self) -> None:
        """The ledger changes ahead of the commit: should the transaction roll back, rebuild
        it from the tables (once per transaction, however many changes)."""
        if not self._ledger_guarded:
            self._ledger_guarded = True
            self.store.on_rollback(self._ledger_rolled_back)
            self.store.on_commit(self._ledger_committed)

    def reload_ledger(self) -> None:
        self.ledger.load(self.store.conn, self.store.get_setting("stock_as_of"))

    def _ledger_rolled_back(self) -> None:
        self._ledger_guarded = False
        self.reload_ledger()

    def _ledger_committed(self) -> None:
        self._ledger_guarded = False

    def _forget_now(self) -> None:
        self._txn_now = None

    def now_iso(self) -> str:
        if self.store.in_transaction:
            self.now()
            assert self._txn_now is not None
            return self._txn_now[1]
        return iso(self.clock.now())

    def today(self) -> date:
        """The line's calendar date: lot expiry is judged by it."""
        if self.store.in_transaction:
            self.now()
            assert self._txn_now is not None
            return self._txn_now[2]
        return self.clock.now().astimezone(self._tz).date()

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self._tz)

    def emit(self, type_: str, data: dict[str, Any], order_id: str | None = None) -> int:
        """Append an event to the outbox in the current transaction."""
        if type_ in self._listeners:
            self.notify(type_, data)
        return self.outbox.append(type_, data, self.now_iso(), order_id)
