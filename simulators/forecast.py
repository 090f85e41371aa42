"""A promotion's forecast for the capacity check (``linegate capacity``, ``POST
/api/capacity``): N orders of a catalog's SKUs, as the hub would release them, promised for
the carriers' trucks over the next days.

The orders are the demo's (simulators/orders.py: its mix of SKUs, quantities, lines per
order, personalisations, carriers and priorities, stock not respected: a forecast asks
what the line could make); only their ids and ship-bys are the forecast's own: each order
ships on a truck of its carrier (local time), on one of the next ``days`` days, the truck
at least ``lead_h`` hours after ``now``.

    python -m simulators.forecast --orders 5000 --days 3 --now 2026-11-11T08:00:00+08:00 > f.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from simulators.orders import generate_orders, load_reference_catalog, load_reference_stock

JsonDict = dict[str, Any]

# The trucks leaving the dock each day, local time: (carrier, hour, minute).
TRUCKS: tuple[tuple[str, int, int], ...] = (
    ("SF", 12, 0),
    ("SF", 18, 0),
    ("ZTO", 17, 0),
    ("JD", 14, 30),
    ("JD", 21, 0),
)


def forecast_orders(
    catalog: Mapping[str, Any],
    *,
    count: int,
    now: datetime,
    days: int = 3,
    seed: int = 11,
    lead_h: float = 2.0,
    sku_weights: Mapping[str, float] | None = None,
    timezone: str = "Asia/Shanghai",
    prefix: str = "P",
) -> list[JsonDict]:
    """``count`` order documents (see the module docstring); the same inputs give the same
    orders. ``sku_weights`` skews the mix (e.g. a promotion of embroidered caps)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if days < 1:
        raise ValueError("days must be at least 1")
    made = generate_orders(
        catalog,
        load_reference_stock(),
        count=count,
        now=now,
        seed=seed,
        bad_rate=0.0,
        respect_stock=False,
        sku_weights=sku_weights,
        timezone=timezone,
    )
    rng = random.Random(seed)
    zone = ZoneInfo(timezone)
    trucks = _trucks(now.astimezone(zone), days, lead_h)
    out: list[JsonDict] = []
    for n, order in enumerate(made, start=1):
        doc = dict(order.doc or {})
        carrier = str(doc.get("carrier", "SF"))
        mine = [ts for c, ts in trucks if c == carrier] or [ts for _, ts in trucks]
        doc["order_id"] = f"{prefix}{n:05d}"
        doc["ship_by"] = rng.choice(mine).isoformat(timespec="seconds")
        out.append(doc)
    return out


def _trucks(now: datetime, days: int, lead_h: float) -> list[tuple[str, datetime]]:
    """Every truck of the next ``days`` days that leaves ``lead_h`` hours from now or later."""
    earliest = now + timedelta(hours=lead_h)
    out: list[tuple[str, datetime]] = []
    day = now.date()
    while len({ts.date() for _, ts in out}) < days:
        for carrier, hour, minute in TRUCKS:
            ts = datetime.combine(day, time(hour, minute), now.tzinfo)
            if ts >= earliest:
                out.append((carrier, ts))
        day += timedelta(days=1)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=5000)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--now", required=True, help="ISO 8601 with offset")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    now = datetime.fromisoformat(args.now)
    docs = forecast_orders(
        load_reference_catalog(), count=args.orders, now=now, days=args.days, seed=args.seed
    )
    sys.stdout.write(json.dumps(docs, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
