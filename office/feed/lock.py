"""The feed's advisory lock on PostgreSQL: two office instances taking orders (or master
data) at once give each line's feed one cursor after the other, and an order one line."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["lock_feed"]

_FEED_LOCK = 0x66656564  # "feed"


async def lock_feed(conn: AsyncConnection) -> None:
    """Until the transaction ends (PostgreSQL; SQLite has one writer anyway)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FEED_LOCK})
