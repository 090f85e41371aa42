"""The quality alarm: a station whose last [alarms] quality_failures checks all failed
raises `quality:STATION`, in the transaction of the check that made it so; the next check
that passes clears it. Through the station desk, as an operator would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app.root import Gateway
from gateway.config.alerts import AlarmsSection
from gateway.config.load import load_line_config
from gateway.desk.service import StationService
from gateway.orderbook.alarms import active_alarms
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE, Line, order

KIT = "KIT-XMAS-A"  # assembled at kit-1 by hand: a checklist of 2, then packed


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    config = load_line_config(REFERENCE_LINE)
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    config = config.model_copy(update={"stations": stations})
    gw = Gateway(config, data_dir=tmp_path, clock=ManualClock(LINE_MORNING))
    gw.open()
    ln = Line(gw)
    from tests.gateway.conftest import catalog_bytes, stock_doc

    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    yield ln
    gw.store.close()


def _quality(line: Line) -> list[dict[str, Any]]:
    return [a for a in active_alarms(line.gateway.core) if a["kind"] == "quality"]


def _attempt(svc: StationService, passed: bool) -> None:
    """One assembly at kit-1, its checklist answered ``passed``; a failure is reworked."""
    task = svc.view("kit-1")["task"]
    assert task is not None
    if task["status"] == "dispatched":
        svc.scan("kit-1", task["serial"])
    for m in task["materials"]:
        svc.scan("kit-1", m["suggested_lot"] or m["material"])
    assert svc.start("kit-1").ok
    assert svc.checklist("kit-1", 0, True).ok
    assert svc.checklist("kit-1", 1, passed).ok is passed  # a failed item is refused
    if passed:
        assert svc.complete("kit-1").ok
    else:
        assert svc.fail("kit-1", "seal torn", "rework").ok


def test_three_failed_checks_in_a_row_raise_it_and_a_pass_clears_it(line: Line) -> None:
    assert line.gateway.config.alarms.quality_failures == 3  # the default
    svc = line.svc
    line.send("in/orders", order("SO-1", (KIT, 2)))
    svc.login("kit-1", "OP-1007")
    svc.next_task("kit-1")
    _attempt(svc, passed=False)
    _attempt(svc, passed=False)
    assert _quality(line) == []  # two in a row: not yet
    _attempt(svc, passed=False)
    [alarm] = _quality(line)
    assert (alarm["alarm_id"], alarm["source"], alarm["severity"]) == (
        "quality:kit-1",
        "kit-1",
        "major",
    )
    assert alarm["message"] == "3 quality checks in a row failed at kit-1"
    assert alarm["message_zh"] == "kit-1 连续 3 次质检不合格"
    raised = [e for e in line.events("alarm.raised") if e["data"]["kind"] == "quality"]
    assert len(raised) == 1
    _attempt(svc, passed=False)  # a fourth: still the one alarm
    assert len([e for e in line.events("alarm.raised") if e["data"]["kind"] == "quality"]) == 1
    _attempt(svc, passed=True)
    assert _quality(line) == []
    cleared = [e for e in line.events("alarm.cleared") if e["data"]["alarm_id"] == "quality:kit-1"]
    assert len(cleared) == 1


def test_a_pass_between_failures_breaks_the_run(line: Line) -> None:
    svc = line.svc
    line.send("in/orders", order("SO-1", (KIT, 3)))
    svc.login("kit-1", "OP-1007")
    svc.next_task("kit-1")
    _attempt(svc, passed=False)
    _attempt(svc, passed=False)
    _attempt(svc, passed=True)
    svc.next_task("kit-1")
    _attempt(svc, passed=False)
    _attempt(svc, passed=False)
    assert _quality(line) == []


def test_the_run_length_is_the_lines_setting(tmp_path: Path) -> None:
    config = load_line_config(REFERENCE_LINE)
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    config = config.model_copy(
        update={
            "stations": stations,
            "alarms": AlarmsSection.model_validate({"quality_failures": 1}),
        }
    )
    gw = Gateway(config, data_dir=tmp_path, clock=ManualClock(LINE_MORNING))
    gw.open()
    try:
        from tests.gateway.conftest import catalog_bytes, stock_doc

        ln = Line(gw)
        ln.send("in/masterdata/catalog", catalog_bytes())
        ln.send("in/masterdata/stock", stock_doc())
        ln.send("in/orders", order("SO-1", (KIT, 1)))
        ln.svc.login("kit-1", "OP-1007")
        ln.svc.next_task("kit-1")
        _attempt(ln.svc, passed=False)
        assert [a["message"] for a in _quality(ln)] == ["1 quality checks in a row failed at kit-1"]
    finally:
        gw.store.close()
