"""The outbox's size in bytes, and its budget alarm: raised at 80 %, cleared below 70 %,
nothing dropped; the free-space floor pauses intake with an alarm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.app.root import Gateway
from gateway.app.storage import IntakePaused
from gateway.config.load import load_line_config
from tests.clocks import line_clock
from tests.gateway.conftest import REFERENCE_LINE, Line, catalog_bytes, order


def _gateway(tmp_path: Path, **policies: int) -> Gateway:
    config = load_line_config(REFERENCE_LINE)
    config = config.model_copy(update={"policies": config.policies.model_copy(update=policies)})
    gw = Gateway(config, data_dir=tmp_path, clock=line_clock())
    gw.open()
    return gw


def _active(gw: Gateway) -> set[str]:
    return {
        r["alarm_id"] for r in gw.store.all("SELECT alarm_id FROM alarms WHERE cleared_at IS NULL")
    }


def test_the_outbox_budget_alarm_comes_well_before_the_budget_and_drops_nothing(
    tmp_path: Path,
) -> None:
    gw = _gateway(tmp_path, outbox_budget_mib=1)
    try:
        core = gw.core
        big = {"note": "x" * 1000}
        for _ in range(700):  # ~0.7 MiB of events
            with gw.store.transaction():
                core.emit("machine.state", big)
        assert gw.outbox.size_bytes > 700_000
        gw.storage.check_outbox()
        assert "storage:outbox" not in _active(gw)
        for _ in range(150):  # past 80 %
            with gw.store.transaction():
                core.emit("machine.state", big)
        gw.storage.check_outbox()
        assert "storage:outbox" in _active(gw)
        total = gw.outbox.pending_count()
        assert total == gw.outbox.last_seq  # nothing dropped
        # The hub takes most of them: below 70 %, the alarm clears.
        gw.outbox.ack(list(range(1, 400)))
        gw.storage.check_outbox()
        assert "storage:outbox" not in _active(gw)
        # The size is the same when counted again from the store (a restart).
        size = gw.outbox.size_bytes
        gw.outbox.load()
        assert gw.outbox.size_bytes == size
    finally:
        gw.store.close()


def test_below_the_free_space_floor_intake_waits(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, disk_free_floor_mib=10**6)  # more than any disk here has
    try:
        line = Line(gw)
        with pytest.raises(IntakePaused, match="below the 1000000 MiB floor"):
            line.send("in/masterdata/catalog", catalog_bytes())
        assert "storage:disk_low" in _active(gw)
        assert gw.store.all("SELECT version FROM catalogs") == []
        with pytest.raises(IntakePaused):
            line.send("in/orders", order("SO-1", ("TEE-WHT-M", 1)))
        assert gw.store.all("SELECT order_id FROM orders") == []
    finally:
        gw.store.close()


def test_machine_telemetry_is_thinned_while_the_outbox_is_half_full(tmp_path: Path) -> None:
    from drivers.opcua_machine import MachineStatus

    gw = _gateway(tmp_path, outbox_budget_mib=1)
    try:
        machines = gw.floor.machines

        def states() -> list[dict[str, object]]:
            rows = gw.store.all("SELECT body FROM outbox WHERE type = 'machine.state'")
            return [json.loads(r["body"])["data"] for r in rows]

        def status(state: str) -> MachineStatus:
            return MachineStatus(state, None, 0, 0, None, None)

        machines._status("dtg-1", status("EXECUTE"))
        machines._status("dtg-1", status("IDLE"))
        assert [s["state"] for s in states()] == ["EXECUTE", "IDLE"]  # all of them, normally
        with gw.store.transaction():  # the hub is away: half the budget waits
            for _ in range(600):
                gw.core.emit("task.completed", {"note": "x" * 1000})
        for state in ("EXECUTE", "IDLE", "EXECUTE", "IDLE"):
            machines._status("dtg-1", status(state))
        assert [s["state"] for s in states()] == ["EXECUTE", "IDLE"]  # thinned
        machines._status("dtg-1", status("HELD"))  # a fault always goes
        assert [s["state"] for s in states()][-1] == "HELD"
        assert states()[-1]["downsampled"] == 4
        # Order and traceability events are never thinned.
        completed = gw.store.all("SELECT seq FROM outbox WHERE type = 'task.completed'")
        assert len(completed) == 600
    finally:
        gw.store.close()
