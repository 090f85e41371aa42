"""The night shift scenario as a fixture (tests/numbers/night.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.numbers.night import Night, make_night


@pytest.fixture
def night(tmp_path: Path) -> Iterator[Night]:
    yield from make_night(tmp_path)
