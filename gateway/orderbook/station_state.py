"""A station's state in PackML names, for OEE-style time accounting.

A station whose machine is online reports the machine's own states (gateway/floor/
machines.py writes them here with ``synthesised=False``). Otherwise (a manual station, or
its machine offline) the state follows its tasks: a task running is EXECUTE, paused is
HELD, none is IDLE, so the same accounting works for manual work.
"""

from __future__ import annotations

from typing import Any

from gateway.orderbook.context import LineContext
from gateway.store.rows import SessionRow

EXECUTE, HELD, IDLE = "EXECUTE", "HELD", "IDLE"


def state_of(core: LineContext, station: str) -> str:
    """The station's last state (IDLE before any)."""
    row = core.store.fetch_one(SessionRow, "SELECT * FROM sessions WHERE station = ?", (station,))
    return (row.machine_state if row is not None else None) or IDLE


def record(
    core: LineContext,
    station: str,
    state: str,
    reason: str | None = None,
    synthesised: bool = True,
) -> None:
    """The station's state from now on; the interval of the one it leaves is closed (the
    elements of its OEE: gateway/numbers/elements.py)."""
    now = core.now_iso()
    conn = core.store.conn
    conn.execute(
        "INSERT INTO sessions (station, machine_state) VALUES (?, ?) "
        "ON CONFLICT(station) DO UPDATE SET machine_state = excluded.machine_state",
        (station, state),
    )
    conn.execute(
        "UPDATE station_states SET until = ? WHERE station = ? AND until IS NULL", (now, station)
    )
    conn.execute(
        "INSERT INTO station_states (station, state, reason, synthesised, since) "
        "VALUES (?, ?, ?, ?, ?)",
        (station, state, reason, int(synthesised), now),
    )


def follow_tasks(
    core: LineContext, station: str | None, state: str, reason: str | None = None
) -> None:
    """Move a station's synthesised state with its tasks and report ``machine.state`` on a
    change; nothing for a station whose machine is online (it reports its own)."""
    if station is None or station in core.live_machines:
        return
    previous = state_of(core, station)
    if previous == state:
        return
    record(core, station, state, reason)
    cfg = core.config.stations.get(station)
    data: dict[str, Any] = {
        "machine": (cfg.machine_id if cfg is not None else None) or station,
        "station": station,
        "state": state,
        "previous": previous,
        "reason": reason,
        "synthesised": True,
    }
    core.emit("machine.state", data)
