"""``[[shops]]`` in office.toml: a shop's token from its file, never a line's or a reader's."""

from __future__ import annotations

from pathlib import Path

import pytest

from office.config import ConfigError, load_config
from tests.office.test_config_cli import GOOD, READERS, _write

SHOPS = """
[[shops]]
name = "tmall"
token_file = "tmall.token"

[[shops]]
name = "web-shop"
token_file = "web.token"
"""


def test_shops_read_their_tokens(tmp_path: Path) -> None:
    config = load_config(
        _write(tmp_path, GOOD + SHOPS, **{"tmall.token": "s1", "web.token": "s2\n"})
    )
    assert config.shop_tokens() == {"s1": "tmall", "s2": "web-shop"}
    assert load_config(_write(tmp_path, GOOD)).shop_tokens() == {}


@pytest.mark.parametrize(
    ("tmall", "web", "problem"),
    [
        ("tok3", "s2", "shop tmall has the token of line hz01/line3"),
        ("o", "s2", "shop tmall has the token of reader ops"),
        ("s1", "s1", "shops web-shop and tmall share a token"),
    ],
)
def test_a_shop_needs_a_token_of_its_own(
    tmp_path: Path, tmall: str, web: str, problem: str
) -> None:
    secrets = {"tmall.token": tmall, "web.token": web, "ops.token": "o", "prom.token": "p"}
    with pytest.raises(ConfigError, match=problem):
        load_config(_write(tmp_path, GOOD + READERS + SHOPS, **secrets))


def test_a_shops_name_is_checked(tmp_path: Path) -> None:
    bad = GOOD + '[[shops]]\nname = "a shop"\ntoken_file = "x"\n'
    with pytest.raises(ConfigError, match=r"shops\.0\.name"):
        load_config(_write(tmp_path, bad))
