"""What the capacity check answers (gateway/planning/capacity.py): plain, typed data, the
same for the command line (a table or JSON), the line lead's page and ``POST
/api/capacity``. Times are the line's local time with its offset (ISO 8601), durations in
seconds; the words are rendered from it in the reader's language
(gateway/planning/capacity_text.py).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from gateway.i18n import Text
from gateway.orderbook.flow import Cutoff
from gateway.store.documents import RejectionError

__all__ = [
    "CapacityAnswer",
    "Cutoff",
    "LateRow",
    "NoAnswer",
    "Outcome",
    "Overtime",
    "Refused",
    "SearchEnd",
    "Shortfall",
    "StationLoad",
]


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class Refused(_Row):
    """A forecast order intake would refuse, and why (the contract's codes)."""

    index: int  # its place in the forecast, from 0
    order_id: str | None  # None when it has none that can be read
    errors: list[RejectionError]


class LateRow(_Row):
    """An order the plan finishes after its ship-by (its carrier's cut-off)."""

    order_id: str
    forecast: bool  # one of the forecast's orders, not of the line's backlog
    carrier: str | None
    ship_by: str
    predicted_completion: str
    late_s: int
    reasons: list[str]  # the planner's, largest first (gateway/planner/explain.py)


class StationLoad(_Row):
    """A station's planned work against its working time, from now until the line
    finishes the last order: how little of its time it would have to spare."""

    station: str
    name: str
    work_s: int  # planned run and setup time (what is left of running tasks)
    open_s: int  # its shifts, less breaks and closings, from now to the finish
    utilization: float  # work_s / open_s


class Outcome(_Row):
    """One plan of the backlog and the forecast together."""

    method: str  # the planner's (cp-sat, or its dispatch-rule first plan)
    finish: str | None  # when the last order is packed; None: nothing to plan
    orders: int
    late: list[LateRow]
    cutoffs: list[Cutoff]  # per carrier and ship-by: orders, and those in time
    stations: list[StationLoad]  # highest utilization first
    bottleneck: str | None  # the first of ``stations``, when it has work


class Shortfall(_Row):
    """A material the forecast needs more of than the line has free today."""

    material: str
    need: float  # by the catalog's BOMs, for every accepted forecast order
    available: float  # free today: stock less reservations and the waiting backlog's needs
    short: float
    orders: int  # forecast orders left without it, earliest ship-by served first


class Overtime(_Row):
    """One shift on one day at one station, worked on past its end."""

    station: str
    shift: str
    day: date  # the local date the shift starts
    minutes: int
    start: str  # the shift's usual end: overtime starts here
    end: str


class SearchEnd(StrEnum):
    """How the search for overtime ended."""

    NOT_NEEDED = "not_needed"  # the plan brings every order in on time
    ON_TIME = "on_time"  # with the overtime, every order is on time
    PARTLY = "partly"  # some orders no overtime brings in (see with_overtime.late)
    CAP = "cap"  # stopped at its cap of replans or time; what it found so far


class CapacityAnswer(_Row):
    """The answer: see gateway/planning/capacity.py for how each part is found."""

    now: str
    timezone: str
    forecast_orders: int  # in the file
    forecast_units: int  # of the accepted ones
    refused: list[Refused]
    backlog_orders: int  # open on the line, planned
    waiting: list[str]  # backlog orders waiting for material: not planned
    plan: Outcome
    materials: list[Shortfall]
    overtime: list[Overtime]
    overtime_cap_min: int  # the most overtime the search gives one shift of one station
    with_overtime: Outcome | None  # the plan made again with the overtime; None: none
    search: SearchEnd
    replans: int  # plans the search made
    wall_s: float


class NoAnswer(_Row):
    """Why there is no answer: the forecast cannot be read at all (``forecast``), or the
    work does not fit in the calendar the check may use."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    forecast: bool
    why: Text
