"""The shared parts every domain service works with: store, outbox, clock, config, ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.catalog import CatalogCache
from gateway.clock import Clock, iso
from gateway.config import LineConfig
from gateway.kitting import Ledger
from gateway.outbox import Outbox
from gateway.store import Store


@dataclass
class Core:
    """What the services share; built once by the composition root."""

    config: LineConfig
    store: Store
    outbox: Outbox
    clock: Clock
    catalog: CatalogCache = field(default_factory=CatalogCache)
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        self._tz = ZoneInfo(self.config.line.timezone)

    def now(self) -> datetime:
        return self.clock.now()

    def now_iso(self) -> str:
        return iso(self.clock.now())

    def today(self) -> date:
        """The line's calendar date: lot expiry is judged by it."""
        return self.clock.now().astimezone(self._tz).date()

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self._tz)

    def emit(self, type_: str, data: dict[str, Any], order_id: str | None = None) -> int:
        """Append an event to the outbox in the current transaction."""
        return self.outbox.append(type_, data, self.clock.now(), order_id)
