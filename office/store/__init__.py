"""The office's store: every line's events once per ``(gateway_id, seq)``, on SQLite or
PostgreSQL with one schema (SQLAlchemy Core, numbered migrations)."""

from office.store.rejections import RejectedBound, Rejection, RejectKind
from office.store.store import (
    Added,
    Line,
    LineReport,
    Projector,
    Store,
    StoreUnavailable,
    Tally,
)

__all__ = [
    "Added",
    "Line",
    "LineReport",
    "Projector",
    "RejectKind",
    "RejectedBound",
    "Rejection",
    "Store",
    "StoreUnavailable",
    "Tally",
]
