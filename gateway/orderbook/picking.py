"""Pick requests at the order book: the requests the warehouse was sent, and what each
station holds of what was brought to it.

A request (``material.requested``, contract 1.1) asks for one material, of one lot or of
none, at one station. There is at most one *open* request per (station, material, lot):
gateway/planning/picks.py decides from the plan when one is made, revised (same
``request_id``, next ``revision``) or withdrawn (``qty`` 0); each change here writes its
row and emits its event in the caller's transaction (the outbox), so the warehouse hears
of exactly what the store holds.

**Arrived.** Nobody tells the gateway that the warehouse came: a lot (or, for a material
without lots, the material's code) scanned at a station is the sign. Scanning it when the
station holds less of it than the task takes means new material is there: the open request
of that station, material and lot has arrived, and what it asked for joins the station's
stock. A scan the station's stock covers is the material already there, and marks nothing
(a second request would otherwise be taken for arrived at the next task's scan). Another
lot than the one requested marks nothing: the operator's scan moves the task's reservation
to it (gateway/desk/scanning.py), and the request for the suggested lot follows the need.

**Station stock** (``station_stock``): arrived less consumed at that station, never below
zero (what was there before the gateway counted is not known to it). Material scanned for
a task still in work is in it, and is *held* by that task (:func:`held`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, TypeAdapter

from gateway.clock import iso
from gateway.orderbook.context import LineContext
from gateway.store.rows import Row, TaskRow, TaskStatus

__all__ = [
    "ARRIVED",
    "MATERIAL_REQUESTED",
    "NO_LOT",
    "PickKey",
    "PickLine",
    "PickRequestRow",
    "RequestState",
    "StationPicks",
    "arrive",
    "consume",
    "held",
    "open_requests",
    "picks_by_station",
    "prune",
    "request",
    "revise",
    "station_lines",
    "stock",
    "withdraw",
]

MATERIAL_REQUESTED = "material.requested"
# Told to the subscribers after the commit of a scan that marked a request arrived (no
# event: the contract has none for it): the station's screen shows it at once.
ARRIVED = "pick.arrived"
NO_LOT = ""  # a material without lots, as reservations and consumption keep it
_EPS = 1e-9
_ORDERS: TypeAdapter[list[str]] = TypeAdapter(list[str])
_IN_WORK = (TaskStatus.DISPATCHED, TaskStatus.RUNNING, TaskStatus.PAUSED)


class RequestState(StrEnum):
    REQUESTED = "requested"  # open: the warehouse is to bring it
    ARRIVED = "arrived"  # scanned at the station
    WITHDRAWN = "withdrawn"  # no longer needed there (sent with qty 0)


@dataclass(frozen=True, slots=True, order=True)
class PickKey:
    """Where and what: a station, a material, its lot (:data:`NO_LOT` for none)."""

    station: str
    material: str
    lot: str


@dataclass(frozen=True, slots=True)
class PickRequestRow:
    request_id: str
    station: str
    material: str
    lot: str  # NO_LOT: not lot-tracked (null on the wire)
    revision: int
    qty: float
    uom: str
    need_by: str
    orders_doc: str  # JSON list of order ids
    state: RequestState
    requested_at: str
    updated_at: str
    arrived_at: str | None

    @classmethod
    def from_row(cls, r: Row) -> Self:
        arrived = r["arrived_at"]
        return cls(
            str(r["request_id"]),
            str(r["station"]),
            str(r["material"]),
            str(r["lot"]),
            int(r["revision"]),
            float(r["qty"]),
            str(r["uom"]),
            str(r["need_by"]),
            str(r["orders"]),
            RequestState(r["state"]),
            str(r["requested_at"]),
            str(r["updated_at"]),
            None if arrived is None else str(arrived),
        )

    @property
    def key(self) -> PickKey:
        return PickKey(self.station, self.material, self.lot)

    @property
    def orders(self) -> list[str]:
        return _ORDERS.validate_json(self.orders_doc)

    def data(self) -> dict[str, Any]:
        """The event's data: exactly the contract's fields."""
        return {
            "request_id": self.request_id,
            "revision": self.revision,
            "material": self.material,
            "qty": self.qty,
            "uom": self.uom,
            "lot": self.lot or None,
            "deliver_to": self.station,
            "need_by": self.need_by,
            "orders": self.orders,
        }


@dataclass(frozen=True, slots=True)
class _Stock:
    station: str
    material: str
    lot: str
    qty: float

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(str(r["station"]), str(r["material"]), str(r["lot"]), float(r["qty"]))


# -- reading --------------------------------------------------------------------------------


def open_requests(core: LineContext, station: str | None = None) -> list[PickRequestRow]:
    """The open requests (of ``station``, or of every station)."""
    if station is None:
        return core.store.fetch_all(
            PickRequestRow,
            "SELECT * FROM pick_requests WHERE state = ? ORDER BY station, material, lot",
            (RequestState.REQUESTED,),
        )
    return core.store.fetch_all(
        PickRequestRow,
        "SELECT * FROM pick_requests WHERE station = ? AND state = ? ORDER BY need_by",
        (station, RequestState.REQUESTED),
    )


def find(core: LineContext, request_id: str) -> PickRequestRow | None:
    return core.store.fetch_one(
        PickRequestRow, "SELECT * FROM pick_requests WHERE request_id = ?", (request_id,)
    )


def stock(core: LineContext, station: str | None = None) -> dict[PickKey, float]:
    """What each station holds of what arrived there (of ``station``, or of all)."""
    sql = "SELECT station, material, lot, qty FROM station_stock WHERE qty > ?"
    params: tuple[Any, ...] = (_EPS,)
    if station is not None:
        sql += " AND station = ?"
        params = (_EPS, station)
    rows = core.store.fetch_all(_Stock, sql, params)
    return {PickKey(s.station, s.material, s.lot): s.qty for s in rows}


def held(core: LineContext, station: str | None = None) -> dict[PickKey, float]:
    """Material scanned for tasks still in work (at ``station``, or anywhere): at the
    station, and taken (it is consumed when the task ends)."""
    sql = "SELECT * FROM tasks WHERE status IN (?, ?, ?) AND station IS NOT NULL"
    params: tuple[Any, ...] = _IN_WORK
    if station is not None:
        sql += " AND station = ?"
        params = (*_IN_WORK, station)
    out: dict[PickKey, float] = {}
    for task in core.store.fetch_all(TaskRow, sql, params):
        assert task.station is not None
        for entry in task.progress().lots:
            key = PickKey(task.station, entry.material, entry.lot or NO_LOT)
            out[key] = out.get(key, 0.0) + entry.qty
    return out


# -- requests: each change with its event ---------------------------------------------------


def _uom(core: LineContext, material: str) -> str:
    found = core.catalog.materials.get(material)
    if found is not None:
        return found.uom
    # A material an accepted work order still uses that the catalog in force dropped: the
    # unit it was last requested in.
    before = core.store.texts(
        "SELECT uom FROM pick_requests WHERE material = ? ORDER BY requested_at DESC LIMIT 1",
        (material,),
    )
    return before[0] if before else ""


def _qty(qty: float) -> float:
    """A quantity as sent: sums of floats lose their last digits (6 × 0.1)."""
    return round(qty, 6) + 0.0  # + 0.0: never -0.0


def _emit(core: LineContext, row: PickRequestRow) -> None:
    core.emit(MATERIAL_REQUESTED, row.data())


def request(
    core: LineContext, key: PickKey, qty: float, need_by: datetime, orders: Iterable[str]
) -> PickRequestRow:
    """A new open request for ``key`` (revision 1); in the caller's transaction."""
    now = core.now_iso()
    number = core.store.next_counter("pick_request")
    request_id = f"PR-{core.config.line.line.upper()}-{number:08d}"
    core.store.conn.execute(
        "INSERT INTO pick_requests (request_id, station, material, lot, revision, qty, uom, "
        "need_by, orders, state, requested_at, updated_at) "
        "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
        (
            request_id,
            key.station,
            key.material,
            key.lot,
            _qty(qty),
            _uom(core, key.material),
            iso(need_by),
            json.dumps(sorted(set(orders))),
            RequestState.REQUESTED,
            now,
            now,
        ),
    )
    row = find(core, request_id)
    assert row is not None
    _emit(core, row)
    return row


def revise(
    core: LineContext, row: PickRequestRow, qty: float, need_by: datetime, orders: Iterable[str]
) -> PickRequestRow:
    """The open request ``row`` asks for something else now: its next revision."""
    core.store.conn.execute(
        "UPDATE pick_requests SET revision = revision + 1, qty = ?, need_by = ?, orders = ?, "
        "updated_at = ? WHERE request_id = ?",
        (
            _qty(qty),
            iso(need_by),
            json.dumps(sorted(set(orders))),
            core.now_iso(),
            row.request_id,
        ),
    )
    revised = find(core, row.request_id)
    assert revised is not None
    _emit(core, revised)
    return revised


def withdraw(core: LineContext, row: PickRequestRow) -> PickRequestRow:
    """The open request ``row`` is needed no more: its next revision, with qty 0 and no
    order (its need_by stays as it was, for the warehouse's records)."""
    core.store.conn.execute(
        "UPDATE pick_requests SET revision = revision + 1, qty = 0, orders = '[]', state = ?, "
        "updated_at = ? WHERE request_id = ?",
        (RequestState.WITHDRAWN, core.now_iso(), row.request_id),
    )
    gone = find(core, row.request_id)
    assert gone is not None
    _emit(core, gone)
    return gone


# -- the floor: arrival and consumption -----------------------------------------------------


def arrive(
    core: LineContext, station: str, material: str, lot: str | None, qty: float
) -> PickRequestRow | None:
    """``material`` (of ``lot``) was scanned at ``station`` for a task taking ``qty`` of
    it: the open request for it has arrived when the station held too little of it (see
    the module's docstring); returns that request. In the scan's transaction."""
    key = PickKey(station, material, lot or NO_LOT)
    here = stock(core, station).get(key, 0.0) - held(core, station).get(key, 0.0)
    if here >= qty - _EPS:
        return None  # from what the station holds already
    found = core.store.fetch_one(
        PickRequestRow,
        "SELECT * FROM pick_requests WHERE station = ? AND material = ? AND lot = ? AND state = ?",
        (key.station, key.material, key.lot, RequestState.REQUESTED),
    )
    if found is None:
        return None
    now = core.now_iso()
    conn = core.store.conn
    conn.execute(
        "UPDATE pick_requests SET state = ?, arrived_at = ?, updated_at = ? WHERE request_id = ?",
        (RequestState.ARRIVED, now, now, found.request_id),
    )
    conn.execute(
        "INSERT INTO station_stock (station, material, lot, qty, request_id) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (station, material, lot) DO UPDATE SET "
        "qty = max(0.0, qty) + excluded.qty, request_id = excluded.request_id",
        (key.station, key.material, key.lot, found.qty, found.request_id),
    )
    core.notify(ARRIVED, {"station": station, "request_id": found.request_id})
    return find(core, found.request_id)


def consume(core: LineContext, station: str, material: str, lot: str | None, qty: float) -> None:
    """``qty`` of ``material`` (of ``lot``) was consumed at ``station``: its station stock
    goes down, to zero at most. Writes nothing where nothing arrived (no page changes, so
    a line without pick requests pays nothing for it on the SD card)."""
    core.store.conn.execute(
        "UPDATE station_stock SET qty = max(0.0, qty - ?) "
        "WHERE station = ? AND material = ? AND lot = ? AND qty > 0",
        (qty, station, material, lot or NO_LOT),
    )


def prune(core: LineContext, before: str) -> int:
    """Forget requests closed (arrived or withdrawn) before ``before`` whose station stock
    is not theirs, and empty stock rows; in a transaction of the caller's. How many went."""
    conn = core.store.conn
    gone = conn.execute(
        "DELETE FROM pick_requests WHERE state != ? AND updated_at < ? AND request_id NOT IN "
        "(SELECT request_id FROM station_stock WHERE qty > ?)",
        (RequestState.REQUESTED, before, _EPS),
    ).rowcount
    conn.execute("DELETE FROM station_stock WHERE qty <= ?", (_EPS,))
    return int(gone)


# -- what the screens show ------------------------------------------------------------------


class PickLine(BaseModel):
    """A request as the station screen and the board show it."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    station: str
    material: str
    lot: str | None
    qty: float  # what was asked for
    uom: str
    need_by: datetime
    state: RequestState  # requested, or arrived
    orders: int  # how many orders it serves
    at_station: float  # what the station holds of it now (arrived, not consumed)


class StationPicks(BaseModel):
    """A station's requests: how many are on their way, how many arrived, and the lines."""

    model_config = ConfigDict(frozen=True)

    station: str
    requested: int
    arrived: int
    lines: list[PickLine]


def _line(row: PickRequestRow, at_station: float) -> PickLine:
    return PickLine(
        request_id=row.request_id,
        station=row.station,
        material=row.material,
        lot=row.lot or None,
        qty=row.qty,
        uom=row.uom,
        need_by=datetime.fromisoformat(row.need_by),
        state=row.state,
        orders=len(row.orders),
        at_station=round(at_station, 6),
    )


def _lines(core: LineContext, station: str | None) -> list[PickLine]:
    """Open requests, soonest first, then what arrived and is still at the station (the
    request that arrived last for each)."""
    where, params = ("", ()) if station is None else (" AND r.station = ?", (station,))
    here = stock(core, station)
    waiting = [
        _line(r, here.get(r.key, 0.0))
        for r in core.store.fetch_all(
            PickRequestRow,
            f"SELECT r.* FROM pick_requests r WHERE r.state = ?{where} ORDER BY r.need_by",
            (RequestState.REQUESTED, *params),
        )
    ]
    arrived = [
        _line(r, here.get(r.key, 0.0))
        for r in core.store.fetch_all(
            PickRequestRow,
            "SELECT r.* FROM station_stock s JOIN pick_requests r ON r.request_id = s.request_id "
            f"WHERE s.qty > ?{where} ORDER BY r.arrived_at DESC",
            (_EPS, *params),
        )
    ]
    return waiting + arrived


def station_lines(core: LineContext, station: str, limit: int = 12) -> list[PickLine]:
    """What the station's screen shows of its requests."""
    return _lines(core, station)[:limit]


def picks_by_station(core: LineContext, per_station: int = 6) -> list[StationPicks]:
    """Every station's requests, in the line's order of stations (the board)."""
    by: dict[str, list[PickLine]] = {sid: [] for sid in core.config.stations}
    for line in _lines(core, None):
        by.setdefault(line.station, []).append(line)
    return [
        StationPicks(
            station=sid,
            requested=_count(lines, RequestState.REQUESTED),
            arrived=_count(lines, RequestState.ARRIVED),
            lines=lines[:per_station],
        )
        for sid, lines in by.items()
    ]


def _count(lines: Sequence[PickLine], state: RequestState) -> int:
    return sum(1 for line in lines if line.state is state)
