"""[retention] in line.toml: how long the raw history stays, checked by check-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.load import load_line_config
from tests.configs.test_config_load import LINE_TOML, REFERENCE_LINE, load_problems, write_line


def test_the_reference_line_keeps_ninety_days() -> None:
    retention = load_line_config(REFERENCE_LINE).retention
    assert (retention.raw_days, retention.interval_days) == (90, 35)


def test_days_are_read(tmp_path: Path) -> None:
    folder = write_line(
        tmp_path / "line", {"line.toml": LINE_TOML + "[retention]\nraw_days = 400\n"}
    )
    assert load_line_config(folder).retention.raw_days == 400


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("raw_days = 0", "retention.raw_days"),
        ('raw_days = "90"', "retention.raw_days"),
        ("interval_days = -1", "retention.interval_days"),
        ("keep_forever = true", "retention.keep_forever"),
    ],
)
def test_bad_retention_is_named(tmp_path: Path, text: str, key: str) -> None:
    folder = write_line(tmp_path / "line", {"line.toml": LINE_TOML + f"[retention]\n{text}\n"})
    problems = load_problems(folder)
    assert any(p.file == "line.toml" and p.path == key for p in problems), problems
