"""What every part of the order book works with: store, outbox, clock, config, catalog,
ledger, and the events' subscribers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.clock import Clock, iso
from gateway.config.line import LineConfig
from gateway.orderbook.catalog import CatalogCache
from gateway.orderbook.kitting import Ledger
from gateway.orderbook.progress import ProgressTracker
from gateway.store.bulk import BulkInserts
from gateway.store.db import Store
from gateway.store.outbox import Outbox


class LineContext:
    """What the services share; built once by the composition root.

    The catalog and the ledger are caches of the database kept in step with it by the
    store's undo: a change made in a transaction that rolls back is taken back.
    """

    def __init__(self, config: LineConfig, store: Store, outbox: Outbox, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.outbox = outbox
        self.clock = clock
        self.catalog = CatalogCache(undo=store.undo)
        self.ledger = Ledger(store)
        self.bulk = BulkInserts(store)
        # order.progress, decided before each commit for the orders its events name.
        self.progress = ProgressTracker(self, config.hub.progress_step_min)
        self._tz = ZoneInfo(config.line.timezone)
        self._txn_now: tuple[int, datetime, str, date] | None = None
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

    def _stamp(self) -> tuple[int, datetime, str, date]:
        """The instant of the change being made: one per transaction, since a transaction
        is one atomic change (and a burst of orders reads the clock once, not per row)."""
        txn = self.store.transaction_id
        if self._txn_now is None or self._txn_now[0] != txn:
            ts = self.clock.now()
            self._txn_now = (txn, ts, iso(ts), ts.astimezone(self._tz).date())
        return self._txn_now

    def now(self) -> datetime:
        if not self.store.in_transaction:
            return self.clock.now()
        return self._stamp()[1]

    def now_iso(self) -> str:
        if not self.store.in_transaction:
            return iso(self.clock.now())
        return self._stamp()[2]

    def today(self) -> date:
        """The line's calendar date: lot expiry is judged by it."""
        if not self.store.in_transaction:
            return self.clock.now().astimezone(self._tz).date()
        return self._stamp()[3]

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self._tz)

    def reload_ledger(self) -> None:
        """Rebuild the ledger from the tables (at start-up, and after a stock snapshot)."""
        self.progress.stock_changed()  # waiting orders may be kitted now, silently
        self.ledger.load(self.store.conn, self.store.get_setting("stock_as_of"))

    def emit(self, type_: str, data: dict[str, Any], order_id: str | None = None) -> int:
        """Append an event to the outbox in the current transaction."""
        if order_id is not None:
            self.progress.touch(type_, order_id)
        if type_ in self._listeners:
            self.notify(type_, data)
        return self.outbox.append(type_, data, self.now_iso(), order_id)
