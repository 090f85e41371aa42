"""What the access tests share: a real line database in a temporary folder, the reference
line's config, and the line's time (never today's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.store.db import Store
from tests.clocks import LINE_MORNING, ManualClock

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_LINE = ROOT / "station_configs" / "reference-line"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A line's database, made as the gateway makes it (Store.open migrates a new file)."""
    s = Store(tmp_path / "linegate.db")
    s.open()
    yield s
    s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(LINE_MORNING)


@pytest.fixture(scope="session")
def line() -> LineConfig:
    return load_line_config(REFERENCE_LINE)
