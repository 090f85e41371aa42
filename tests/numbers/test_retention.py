"""Retention: the raw history is pruned once acknowledged and old, the numbers stay.

The night of tests/numbers/test_oee.py is closed (its shift, its days), the hub
acknowledges everything, and 100 days later the history is pruned: the orders packed that
night and everything of theirs are gone, the open ones stay, and the shift's and the day's
numbers regenerate from what was kept — the same figures as their kpi.snapshot said.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from gateway.numbers.closing import Closing
from gateway.numbers.kpis import kpi_doc
from gateway.numbers.periods import parse_period
from gateway.numbers.retention import Retention
from tests.numbers.night import Night, at, run_the_night


def snapshots(n: Night) -> dict[str, dict[str, Any]]:
    out = {}
    for r in n.gw.outbox.peek(0, 1_000_000):
        ev = json.loads(r.payload)
        if ev["type"] == "kpi.snapshot":
            out[ev["data"]["period"]["key"]] = ev["data"]
    return out


def count(n: Night, sql: str) -> int:
    return n.gw.store.count(sql)


async def closed_night(n: Night) -> Closing:
    run_the_night(n)
    closing = Closing(n.gw.core)
    await closing.step(at(-3600))  # numbers begin before the night
    await closing.step(at(27 * 3600 + 60))  # Sunday has ended (a 25-hour day)
    return closing


async def test_old_acknowledged_history_is_pruned_and_its_numbers_stay(night: Night) -> None:
    closing = await closed_night(night)
    snaps = snapshots(night)
    assert {"shift:2026-10-24:night", "day:2026-10-24", "day:2026-10-25"} <= set(snaps)
    night.gw.outbox.ack([r.seq for r in night.gw.outbox.peek(0, 1_000_000)])
    assert count(night, "SELECT count(*) FROM attempts") > 0

    pruned = await Retention(night.gw.core, closing).prune(at(100 * 24 * 3600))
    # Cut at the end of the last day closed: Monday 26 October 00:00 CET.
    assert pruned.cut == "2026-10-25T23:00:00.000+00:00"
    assert pruned.orders == 3  # A, B and C were packed that night
    remaining = night.gw.store.texts("SELECT order_id FROM orders ORDER BY order_id")
    assert remaining == ["D", "E"]  # open orders stay, whatever their age
    for table in ("attempts", "consumption", "quality", "defects", "labels", "order_stages"):
        left = night.gw.store.texts(f"SELECT DISTINCT order_id FROM {table}")
        assert set(left) <= {"D", "E"}, table
    assert count(night, "SELECT count(*) FROM station_states WHERE until IS NOT NULL") == 0
    assert count(night, "SELECT count(*) FROM refusals") == 0

    core = night.gw.core
    tz, shifts = core.config.line.tzinfo, core.config.shifts
    for key in ("shift:2026-10-24:night", "day:2026-10-25", "day:2026-10-24"):
        period = parse_period(key, shifts, tz)
        again = kpi_doc(await closing.regenerate(period), period, core.config.line.timezone)
        for part in ("line", "stations", "operators"):
            assert again[part] == snaps[key][part], (key, part)


async def test_nothing_the_hub_has_not_acknowledged_is_pruned(night: Night) -> None:
    closing = await closed_night(night)
    first = json.loads(night.gw.outbox.peek(0, 1)[0].payload)
    pruned = await Retention(night.gw.core, closing).prune(at(100 * 24 * 3600))
    assert pruned.orders == 0
    assert pruned.cut is None or pruned.cut <= first["ts"]
    assert count(night, "SELECT count(*) FROM orders") == 5


async def test_a_period_pruned_and_never_kept_says_so(night: Night) -> None:
    closing = await closed_night(night)
    night.gw.outbox.ack([r.seq for r in night.gw.outbox.peek(0, 1_000_000)])
    await Retention(night.gw.core, closing).prune(at(100 * 24 * 3600))
    core = night.gw.core
    # A day before the line had any order: pruned history, nothing kept.
    early = parse_period("day:2026-10-01", core.config.shifts, core.config.line.tzinfo)
    try:
        await closing.regenerate(early)
    except LookupError as exc:
        assert "pruned" in str(exc)
    else:
        raise AssertionError("a pruned period without kept numbers was made up")
    assert at(0) - timedelta(days=23) < early.end  # (the day is indeed before the cut)
