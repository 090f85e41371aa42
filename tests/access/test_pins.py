"""Operators' PINs: a hash in line.toml (a clear config error otherwise), checked by
verify_pin."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from gateway.access import passwords
from gateway.access.pins import verify_pin
from gateway.config.line import Operator, PinAction
from gateway.config.load import ConfigError, load_line_config
from tests.access.conftest import REFERENCE_LINE

FIRST_OPERATOR = 'badge = "OP-1001"\nname = "王芳 Wang Fang"\n'


def _line_with_pin_hash(tmp_path: Path, value: str) -> Path:
    """The reference line with ``pin_hash = <value>`` (TOML as written) on OP-1001."""
    folder = tmp_path / "line"
    shutil.copytree(REFERENCE_LINE, folder)
    text = (folder / "line.toml").read_text()
    assert FIRST_OPERATOR in text
    (folder / "line.toml").write_text(
        text.replace(FIRST_OPERATOR, f"{FIRST_OPERATOR}pin_hash = {value}\n")
    )
    return folder


def test_a_pin_hash_in_the_config_checks_the_pin(tmp_path: Path) -> None:
    folder = _line_with_pin_hash(tmp_path, f'"{passwords.hash_pin("2468")}"')
    config = load_line_config(folder)
    op = next(o for o in config.operators if o.badge == "OP-1001")
    assert verify_pin(op, "2468")
    assert not verify_pin(op, "2469")
    assert not verify_pin(op, "24680")
    assert not verify_pin(op, "")
    others = [o for o in config.operators if o.badge != "OP-1001"]
    assert others and all(o.pin_hash is None for o in others)
    assert not verify_pin(others[0], "2468")  # no PIN set: no PIN is right
    assert "pin_hash" not in repr(op)  # not in logs


@pytest.mark.parametrize(
    "value",
    [
        '"2468"',  # the PIN itself
        "2468",  # the PIN itself, as a TOML integer
        '""',
        '"$argon2id$v=19$m=32768,t=3,p=1$c2FsdHNhbHQ"',  # cut short in copying
    ],
)
def test_a_pin_hash_that_is_not_one_is_a_config_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_line_config(_line_with_pin_hash(tmp_path, value))
    [problem] = refused.value.problems
    assert (problem.file, problem.path) == ("line.toml", "operators.0.pin_hash")
    assert "not an argon2id hash" in problem.message
    assert "linegate users pin-hash" in problem.message
    assert "2468" not in str(refused.value)  # the PIN is not repeated into a log


def test_an_argon2i_hash_is_not_taken(tmp_path: Path) -> None:
    other = PasswordHasher(type=Type.I).hash("2468")
    with pytest.raises(ConfigError, match="not an argon2id hash"):
        load_line_config(_line_with_pin_hash(tmp_path, f'"{other}"'))


def test_a_pin_hash_may_not_ask_for_a_gigabyte(tmp_path: Path) -> None:
    salt_and_hash = passwords.hash_pin("2468").split("$", 4)[4]
    costly = f"$argon2id$v=19$m=1048576,t=3,p=1${salt_and_hash}"
    with pytest.raises(ConfigError, match="asks for 1024 MiB"):
        load_line_config(_line_with_pin_hash(tmp_path, f'"{costly}"'))


def test_an_operator_built_in_code_is_checked_the_same() -> None:
    with pytest.raises(ValueError, match="never the PIN itself"):
        Operator(badge="OP-1", name="One", pin_hash="1234")
    assert Operator(badge="OP-1", name="One").pin_hash is None


def test_a_line_asking_pins_needs_one_for_every_operator(tmp_path: Path) -> None:
    # OP-1001 has a PIN, the others not: asking PINs would lock them out at the shift's start.
    folder = _line_with_pin_hash(tmp_path, f'"{passwords.hash_pin("2468")}"')
    text = (folder / "line.toml").read_text()
    (folder / "line.toml").write_text(text + '\n[access]\npin_required = ["login"]\n')
    with pytest.raises(ConfigError, match=r"access\.pin_required.*OP-1002"):
        load_line_config(folder)
    (folder / "line.toml").write_text(text + '\n[access]\npin_required = ["lunch"]\n')
    with pytest.raises(ConfigError, match="pin_required"):
        load_line_config(folder)
    # Every operator with a PIN: the line loads and asks it for sign-in.
    pin_hash = passwords.hash_pin("1357")
    original = (REFERENCE_LINE / "line.toml").read_text()
    every = re.sub(r'(badge = "OP-\d+"\n)', rf'\1pin_hash = "{pin_hash}"\n', original)
    (folder / "line.toml").write_text(every + '\n[access]\npin_required = ["login", "fail"]\n')
    config = load_line_config(folder)
    assert config.access.pin_required == [PinAction.LOGIN, PinAction.FAIL]
