"""What wakes a screen's stream: the stations a commit's events name."""

from __future__ import annotations

import json

from gateway.web.live import Changes


def _event(seq: int, type_: str, **data: object) -> tuple[int, str, bytes]:
    return seq, type_, json.dumps({"seq": seq, "type": type_, "data": data}).encode()


def test_an_event_naming_a_station_moves_that_station_and_the_line() -> None:
    changes = Changes()
    changes.committed([_event(1, "task.started", station="dtg-1", task_id=7)])
    assert changes.stations == {"dtg-1": 1}
    assert changes.version == 1


def test_an_event_naming_no_station_moves_the_line_only() -> None:
    changes = Changes()
    changes.committed([_event(1, "order.accepted")])
    assert (changes.stations, changes.version) == ({}, 1)


def test_a_kpi_snapshot_wakes_nobody() -> None:
    changes = Changes()
    changes.committed([_event(1, "kpi.snapshot", station="dtg-1")])
    assert (changes.stations, changes.version) == ({}, 0)


def test_a_burst_wakes_everyone_without_naming_stations() -> None:
    changes = Changes()
    burst = [_event(i, "task.dispatched", station=f"st-{i}") for i in range(1, 101)]
    changes.committed(burst)
    assert (changes.stations, changes.version) == ({}, 1)
