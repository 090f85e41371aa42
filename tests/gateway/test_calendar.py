"""Shift calendars: the [[shifts]] of line.toml, checked, and expanded into windows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.config.calendar import Shift, working_windows
from gateway.config.load import ConfigError, load_line_config
from tests.gateway.conftest import REFERENCE_LINE

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Thursday 2026-11-26, 07:00 in Shanghai.
NOW = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
HOUR = 3600


def test_a_day_shift_with_a_break_becomes_windows_from_now() -> None:
    shift = Shift(
        name="day",
        start="08:00",
        end="16:00",
        days=["thu", "fri"],
        breaks=[{"start": "12:00", "end": "12:30"}],
    )
    shifts, breaks = working_windows([shift], "dtg-1", SHANGHAI, NOW, days=2)
    # Thursday 08:00 is an hour from now; Friday 08:00 a day later; no Wednesday or Saturday.
    assert shifts == ((1 * HOUR, 9 * HOUR), (25 * HOUR, 33 * HOUR))
    assert breaks == ((5 * HOUR, 5 * HOUR + 1800), (29 * HOUR, 29 * HOUR + 1800))


def test_a_night_shift_crosses_midnight_and_one_that_began_yesterday_is_included() -> None:
    night = Shift(
        name="night",
        start="22:00",
        end="06:00",
        breaks=[{"start": "02:00", "end": "02:30"}],
    )
    shifts, breaks = working_windows([night], "emb-1", SHANGHAI, NOW, days=1)
    # Wednesday 22:00 to Thursday 06:00 ended an hour ago; Thursday's begins in 15 h.
    assert shifts[:2] == ((-9 * HOUR, -1 * HOUR), (15 * HOUR, 23 * HOUR))
    assert breaks[:2] == ((-5 * HOUR, -5 * HOUR + 1800), (19 * HOUR, 19 * HOUR + 1800))


def test_shifts_for_some_stations_leave_the_others_always_open() -> None:
    shift = Shift(name="laser", start="09:00", end="17:00", stations=["laser-1"])
    assert working_windows([shift], "laser-1", SHANGHAI, NOW, days=1)[0]
    assert working_windows([shift], "pack-1", SHANGHAI, NOW, days=1) == ((), ())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"breaks": [{"start": "07:00", "end": "07:30"}]}, "not inside the shift"),
        ({"breaks": [{"start": "12:30", "end": "12:00"}]}, "not inside the shift"),
        ({"days": ["mon", "mon"]}, "listed twice"),
        ({"days": ["monday"]}, "'mon'"),
        ({"start": "8:00"}, "should match pattern"),
        ({"end": "24:00"}, "should match pattern"),
    ],
)
def test_bad_shifts_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Shift.model_validate({"name": "day", "start": "08:00", "end": "16:00", **fields})


def test_the_reference_lines_shifts_load_and_a_shift_for_an_unknown_station_is_located(
    tmp_path: Path,
) -> None:
    config = load_line_config(REFERENCE_LINE)
    assert [s.name for s in config.shifts] == ["early", "late"]
    for path in REFERENCE_LINE.glob("*.toml"):
        (tmp_path / path.name).write_text(path.read_text())
    line = tmp_path / "line.toml"
    line.write_text(
        line.read_text()
        + '\n[[shifts]]\nname = "x"\nstart = "08:00"\nend = "09:00"\nstations = ["dtg-9"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_line_config(tmp_path)
    assert [(p.file, p.path) for p in caught.value.problems] == [
        ("line.toml", "shifts.2.stations.0")
    ]
    assert "unknown station 'dtg-9'" in caught.value.problems[0].message
