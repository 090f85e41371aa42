"""A test whose real part (the broker, ../shared, root for a tmpfs …) is missing skips on a
developer's machine and fails under CI=true (tests/conftest.py: missing, need)."""

from __future__ import annotations

import pytest

from tests.conftest import missing, need


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_under_ci_a_missing_part_fails_the_test(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="mosquitto is not installed"):
        missing("mosquitto is not installed")
    with pytest.raises(pytest.fail.Exception, match="no shared folder"):
        need(False, "no shared folder")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_elsewhere_a_missing_part_skips_the_test(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="mosquitto is not installed"):
        missing("mosquitto is not installed")


def test_a_part_that_is_there_lets_the_test_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    need(True, "never said")  # neither fails nor skips
