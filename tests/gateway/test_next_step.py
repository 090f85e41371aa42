"""Every answer's ``next`` is what the station screen says right after it.

A whole order with a unit of every routing of the reference catalog goes through the line
by the station service, with the detours operators take (a traveller scanned to confirm
the unit at a later operation, a failed check and its rework, a pause, signing out with a
task running and back in, a wrong parcel weight). After every answer the station screen
is read: the answer must ask for exactly what the screen asks for.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gateway.desk.replies import Reply
from gateway.desk.service import StationService
from gateway.orderbook.tasks import live_units
from tests.gateway.conftest import Line, order

# One SKU of each routing of the reference catalog (R-TEE-DTG, R-CAP-EMB, R-ENGRAVE, R-KIT).
SKUS = ("TEE-WHT-M", "CAP-EMB-NAVY", "TUMBLER-ENG", "KIT-XMAS-A")
# An operator allowed at each station (the station files narrow some).
BADGES = {
    "dtg-1": "OP-1001",
    "emb-1": "OP-1003",
    "laser-1": "OP-1002",
    "qc-1": "OP-1005",
    "kit-1": "OP-1007",
    "pack-1": "OP-1009",
}
UNIT_STATIONS = ("dtg-1", "emb-1", "laser-1", "qc-1", "kit-1")


class Checked:
    """The station service, with every answer checked against the screen read after it."""

    def __init__(self, svc: StationService) -> None:
        self.svc = svc
        self.seen: Counter[str] = Counter()

    def __call__(self, action: str, station: str, *args: Any) -> Reply:
        reply: Reply = getattr(self.svc, action)(station, *args)
        screen = self.svc.view(station)["next"]
        assert reply.next == screen, (
            f"{action}{args} at {station} answered {reply.message!r} and asks "
            f"{reply.next!r}, but the screen asks {screen!r}"
        )
        self.seen[action] += 1
        return reply

    def task(self, station: str) -> dict[str, Any]:
        task: dict[str, Any] | None = self.svc.view(station)["task"]
        assert task is not None, f"no task at {station}"
        return task


def _unit_task(act: Checked, station: str, detours: set[str]) -> None:
    act("next_task", station)
    task = act.task(station)
    if not task["confirmed"]:
        # A later operation: the unit is fetched and its traveller scanned first.
        assert act.svc.view(station)["next"].startswith(f"Fetch unit {task['serial']}")
        act("scan", station, task["serial"])
        act("scan", station, task["serial"])  # scanned again: still confirmed, same step
        detours.add("traveller at a later operation")
    for m in task["materials"]:
        act("scan", station, m["suggested_lot"] or m["material"])
    act("start", station)
    if "pause" not in detours:
        act("pause", station, "fetching ink")
        act("resume", station)
        detours.add("pause")
    elif "sign out" not in detours:
        act("logout", station)
        assert act.svc.view(station)["next"] == "Scan your badge to log in."
        act("login", station, BADGES[station])
        assert act.svc.view(station)["next"].startswith("Paused (operator logged out)")
        act("resume", station)
        detours.add("sign out")
    items = act.task(station)["checklist"]
    if items and "rework" not in detours:
        failed = act("checklist", station, 0, False)
        assert not failed.ok
        act("fail", station, "smudged", "rework")
        detours.add("rework")
        act("scan", station, act.task(station)["serial"])  # confirmed already: no change
        for m in act.task(station)["materials"]:
            act("scan", station, m["suggested_lot"] or m["material"])
        act("start", station)
    for i, _ in enumerate(items):
        act("checklist", station, i, True)
    act("complete", station)


def test_every_answer_asks_for_what_the_screen_asks_for(line: Line) -> None:
    line.send("in/orders", order("SO-NEXT", *((sku, 1) for sku in SKUS)))
    act = Checked(line.svc)
    for station, badge in BADGES.items():
        act("login", station, badge)
    detours: set[str] = set()
    done = 0
    while True:
        busy = [s for s in UNIT_STATIONS if line.svc.queue(s, 1)]
        if not busy:
            break
        _unit_task(act, busy[0], detours)
        done += 1
    # Every unit operation of the four routings: print, embroider, engrave, inspect, box,
    # assemble.
    assert done == 6
    for station in UNIT_STATIONS:
        act("next_task", station)  # nothing waits: the answer and the screen say so

    parcel = act.task("pack-1") if line.svc.current("pack-1") else None
    assert parcel is None
    units = [u.unit.serial for u in live_units(line.gateway.core, "SO-NEXT")]
    for serial in units:
        act("scan", "pack-1", serial)
    task = act.task("pack-1")
    for m in task["materials"]:
        act("scan", "pack-1", m["suggested_lot"] or m["material"])
    wrong = act("weight", "pack-1", task["expected_weight_g"] + 500)
    assert not wrong.ok
    right = act("weight", "pack-1", task["expected_weight_g"])
    assert right.ok
    act("scan", "pack-1", right.data["label_id"])
    assert [e["order_id"] for e in line.events("order.completed")] == ["SO-NEXT"]
    assert detours == {"traveller at a later operation", "pause", "sign out", "rework"}
    # The paths this test means to cover were all taken.
    for action in ("login", "logout", "scan", "next_task", "start", "pause", "resume"):
        assert act.seen[action] > 0, action
    for action in ("checklist", "complete", "fail", "weight"):
        assert act.seen[action] > 0, action
