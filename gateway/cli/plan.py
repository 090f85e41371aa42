"""``linegate plan --config DIR``: the line's current plan, per station as a text Gantt, and
the orders predicted late with their reasons.

Asked of the running gateway (``GET /api/plan``), which holds the plan its stations follow.
When no gateway answers (or with ``--offline``), the plan is made here from the line's
database, read-only, by the same solver: what the gateway would plan now, or at ``--now``
(which only a plan made here can honour: the running gateway plans at its own time).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.cli.http import ask_gateway
from gateway.clock import Clock, SystemClock
from gateway.config.line import LineConfig
from gateway.config.load import EX_CONFIG, ConfigError, load_line_config
from gateway.orderbook.context import LineContext
from gateway.planning.line_plan import LineJob, local_text
from gateway.planning.planner import LinePlanner
from gateway.store.db import Store, StoreError
from gateway.store.outbox import Outbox

__all__ = ["format_plan", "plan_command", "plan_here"]

_COLUMNS = 60


def plan_command(args: argparse.Namespace, now: datetime | None = None) -> int:
    # The plan is the output; the HTTP client's request lines would only repeat it.
    logging.getLogger().setLevel(logging.WARNING)
    try:
        config = load_line_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_CONFIG
    snapshot: dict[str, Any] | None = None
    source = ""
    if not args.offline and now is None:
        answer = ask_gateway(
            "plan",
            config,
            args.url,
            "/api/plan",
            {"per_station": args.per_station},
            otherwise="planning from the line's database here",
            token=args.token,
        )
        if answer is not None:
            snapshot, url = answer
            source = f"the running gateway at {url}"
    if snapshot is None or snapshot.get("plan") is None:
        try:
            snapshot = plan_here(config, args, per_station=args.per_station, now=now)
        except StoreError as exc:
            print(f"linegate plan: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(snapshot, indent=2, ensure_ascii=False))
    else:
        print(format_plan(snapshot, config.line.tzinfo, source))
    return 0


def plan_here(
    config: LineConfig, args: argparse.Namespace, per_station: int, now: datetime | None = None
) -> dict[str, Any]:
    """Plan the line's open work from its database (read-only), in this process, as at
    ``now`` (default: the real time)."""
    from gateway.planning.line_solve import solve_line  # the solver: only this command pays for it

    clock: Clock = SystemClock() if now is None else _Stopped(now)
    path = config.store_path(args.data_dir)
    limit = args.time_limit if args.time_limit is not None else config.planner.time_limit_s
    job = LineJob(config, path, clock.now(), reasons=("linegate plan",))
    plan = solve_line(
        job, time_limit_s=limit, workers=args.workers, patience_s=config.planner.patience_s
    )
    store = Store(path)
    store.open_readonly()
    try:
        core = LineContext(config, store, Outbox(store, config.gateway_id), clock)
        planner = LinePlanner(core, config.planner)
        planner.replanner.current = replace(plan, received=time.monotonic())
        out = planner.snapshot(per_station)
    finally:
        store.close()
    out["source"] = f"a plan made here from {path} (no gateway answered)"
    return out


class _Stopped:
    """A clock stopped at one instant: the plan and its snapshot see the same ``--now``."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at


def format_plan(snapshot: dict[str, Any], tz: ZoneInfo, source: str) -> str:
    """The plan as text: a Gantt line per station, its next tasks, late and waiting orders."""
    plan = snapshot.get("plan")
    if source:
        lines = [f"Queues follow: {snapshot.get('source')} (from {source})"]
    else:
        lines = [f"This is {snapshot.get('source')}."]
    if plan is None:
        lines.append("No plan yet.")
        return "\n".join(lines)
    made = datetime.fromisoformat(plan["made_at"])

    def clock(ts: str) -> str:
        return local_text(tz, made, datetime.fromisoformat(ts))

    lines.append(
        f"Plan made at {clock(plan['made_at'])} ({plan['method']}, {plan['solve_s']} s; "
        f"replans {snapshot.get('replans', 0)}, failures {snapshot.get('failures', 0)})"
    )
    if snapshot.get("solving"):
        lines.append("A replan is running: this plan is replaced when it ends.")
    if plan.get("down"):
        lines.append(f"Stations down: {', '.join(plan['down'])}")
    stations: dict[str, list[dict[str, Any]]] = plan["stations"]
    ends = [datetime.fromisoformat(t["end"]) for rows in stations.values() for t in rows]
    if ends:
        lines += ["", *_gantt(stations, made, max(ends), clock)]
    for station, rows in stations.items():
        if not rows:
            continue
        lines += ["", f"{station}:"]
        for t in rows:
            setup = f", setup {t['setup_s']} s" if t["setup_s"] else ""
            lines.append(
                f"  {clock(t['start'])}-{clock(t['end'])}  {t['order_id']}  "
                f"{t['serial'] or '(parcel)'}  {t['op']}  [{t['status']}{setup}]"
            )
    late = plan["late"]
    lines += ["", f"Orders predicted late: {len(late)}"]
    for o in late:
        lines.append(
            f"  {o['order_id']}  ship-by {clock(o['ship_by'])}, predicted "
            f"{clock(o['predicted_completion'])} ({_minutes(o['late_s'])} late)"
        )
        lines += [f"      {r}" for r in o["reasons"]]
    waiting = plan["waiting"]
    if waiting:
        lines += ["", f"Orders waiting for material: {len(waiting)}"]
        for o in waiting:
            lines.append(f"  {o['order_id']}  {'; '.join(o['reasons'])}")
    return "\n".join(lines)


def _gantt(
    stations: dict[str, list[dict[str, Any]]],
    start: datetime,
    end: datetime,
    clock: Any,
) -> list[str]:
    """One row per station: # work, s setup, . free; the shown tasks only."""
    span = max((end - start).total_seconds(), 60.0)
    step = span / _COLUMNS
    width = max(len(s) for s in stations)
    out = []
    ticks = [start + timedelta(seconds=step * c) for c in range(0, _COLUMNS, 15)]
    axis = "".join(clock(t.isoformat()).ljust(15) for t in ticks)
    out.append(" " * (width + 2) + axis)
    for station, rows in stations.items():
        cells = ["."] * _COLUMNS
        for t in rows:
            a = (datetime.fromisoformat(t["start"]) - start).total_seconds()
            b = (datetime.fromisoformat(t["end"]) - start).total_seconds()
            setup_end = a + t["setup_s"]
            for c in range(max(0, int(a / step)), min(_COLUMNS, int(-(-b // step)))):
                mid = (c + 0.5) * step
                cells[c] = "s" if t["setup_s"] and mid < setup_end else "#"
        out.append(f"{station.ljust(width)}  {''.join(cells)}")
    out.append(f"{' ' * (width + 2)}(# work, s setup, . free; a column is {_minutes(step)})")
    return out


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
