"""OTD and FPY counts of a period, shared by the numbers (gateway/numbers) and the board.

OTD counts the orders whose ship-by fell in the period and were not cancelled (an order
still open past its ship-by is late); FPY counts the units finished in the period that
never failed an operation.
"""

from __future__ import annotations

from gateway.store.db import Store
from gateway.store.rows import Outcome


def otd_counts(store: Store, s: str, e: str) -> tuple[int, int]:
    """On-time delivery of [s, e): (orders done by their ship-by, orders whose ship-by fell
    in the period and were not cancelled). One still open past its ship-by is late."""
    not_cancelled = "AND status != 'cancelled'"
    due = store.count(
        f"SELECT count(*) FROM orders WHERE ship_by >= ? AND ship_by < ? {not_cancelled}", (s, e)
    )
    on_time = store.count(
        "SELECT count(*) FROM orders WHERE ship_by >= ? AND ship_by < ? "
        f"AND completed_at IS NOT NULL AND completed_at <= ship_by {not_cancelled}",
        (s, e),
    )
    return on_time, due


def fpy_counts(store: Store, s: str, e: str) -> tuple[int, int]:
    """First pass yield of [s, e): (units finished in it that never failed an operation,
    units finished in it)."""
    units = store.count(
        "SELECT count(*) FROM units WHERE completed_at >= ? AND completed_at < ?", (s, e)
    )
    first_pass = store.count(
        "SELECT count(*) FROM units u WHERE u.completed_at >= ? AND u.completed_at < ? "
        "AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.serial = u.serial "
        "AND a.outcome = ?)",
        (s, e, Outcome.FAILED),
    )
    return first_pass, units
