"""What the office holds, read from its store: per line, the orders routed to it, and the
orders its events say it accepted, rejected and completed; its events, held through which
seq, with which gaps. The console's running tally and the verdict both read it here."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select

from office.store import Store, schema

__all__ = ["LineTally", "SiteTally", "read_tally"]

_OUTCOMES = ("order.accepted", "order.rejected", "order.completed")


@dataclass
class LineTally:
    gateway_id: str
    routed: int = 0
    accepted: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    completed: set[str] = field(default_factory=set)
    events: int = 0
    held_through: int = 0
    highest_seq: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    state: str | None = None  # its last out/status: online, offline

    def text(self) -> str:
        gaps = f", gaps {self.gaps}" if self.gaps else ""
        return (
            f"{self.gateway_id}: routed {self.routed}, accepted {len(self.accepted)}, "
            f"completed {len(self.completed)}, events {self.events} "
            f"(held through {self.held_through}{gaps})"
        )


@dataclass
class SiteTally:
    lines: dict[str, LineTally]

    def line(self, gateway_id: str) -> LineTally:
        return self.lines.setdefault(gateway_id, LineTally(gateway_id))


async def read_tally(store: Store, gateway_ids: list[str]) -> SiteTally:
    tally = SiteTally({g: LineTally(g) for g in gateway_ids})
    f, e = schema.feed_orders, schema.events
    async with store.transaction() as conn:
        routed = await conn.execute(
            select(f.c.gateway_id, func.count(distinct(f.c.order_id)))
            .where(f.c.gateway_id.is_not(None))
            .group_by(f.c.gateway_id)
        )
        for gateway_id, count in routed.tuples():
            tally.line(gateway_id).routed = int(count)
        counts = await conn.execute(select(e.c.gateway_id, func.count()).group_by(e.c.gateway_id))
        for gateway_id, count in counts.tuples():
            tally.line(gateway_id).events = int(count)
        outcomes = await conn.execute(
            select(e.c.gateway_id, e.c.type, e.c.order_id)
            .where(e.c.type.in_(_OUTCOMES), e.c.order_id.is_not(None))
            .distinct()
        )
        for gateway_id, kind, order_id in outcomes.tuples():
            line = tally.line(gateway_id)
            {
                "order.accepted": line.accepted,
                "order.rejected": line.rejected,
                "order.completed": line.completed,
            }[kind].add(order_id)
    for report in await store.lines_report():
        line = tally.line(report.gateway_id)
        line.held_through = report.held_through
        line.highest_seq = report.highest_seq
        line.gaps = report.gaps
        state = (report.status or {}).get("state")
        line.state = state if isinstance(state, str) else None
    return tally
