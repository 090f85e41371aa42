"""office.toml checked strictly (every problem named, secrets from files), and the
``linegate-office`` command: check-config, and run serving the HTTP end on SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from office.cli import main
from office.config import ConfigError, load_config
from tests.conftest import free_port
from tests.office.envelopes import doc

GOOD = """
[store]
url = "postgresql://office@db.example:5432/office"
password_file = "db.secret"

[mqtt]
url = "mqtt://broker.example:1883"
group = "east"
client_id = "office-a"

[http]
host = "127.0.0.1"
port = 8470

[[lines]]
gateway_id = "hz01/line3"
token_file = "line3.token"

[[lines]]
gateway_id = "hz01/line4"
token_file = "line4.token"
"""


def _write(folder: Path, text: str, **secrets: str) -> Path:
    for name, value in {
        "db.secret": "pa:ss/word\n",
        "line3.token": "tok3\n",
        "line4.token": "tok4\n",
        **secrets,
    }.items():
        (folder / name).write_text(value)
    path = folder / "office.toml"
    path.write_text(text)
    return path


def test_a_good_config_reads_its_secrets(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.tokens() == {"tok3": "hz01/line3", "tok4": "hz01/line4"}
    # The password comes from its file, quoted into the URL, never from the config.
    assert config.store_url(tmp_path) == (
        "postgresql+psycopg://office:pa%3Ass%2Fword@db.example:5432/office"
    )
    assert config.mqtt.group == "east"


def test_the_default_store_is_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""))
    assert config.store_url(tmp_path / "data") == (
        f"sqlite+aiosqlite:///{tmp_path / 'data' / 'office.sqlite3'}"
    )
    assert config.mqtt.url is None and config.mqtt.group == "linegate-office"


def test_every_problem_is_named(tmp_path: Path) -> None:
    bad = """
[store]
url = "mysql://x/y"
[http]
port = "8470"
colour = "blue"
[[lines]]
gateway_id = "hz01-line3"
token_file = "line3.token"
"""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, bad))
    text = str(caught.value)
    assert "store.url" in text and "http.port" in text and "http.colour" in text
    assert "lines.0.gateway_id" in text


def test_a_token_shared_by_two_lines_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="share a token"):
        load_config(_write(tmp_path, GOOD, **{"line4.token": "tok3\n"}))


def test_a_missing_token_file_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    (tmp_path / "line4.token").unlink()
    with pytest.raises(ConfigError, match=r"line4\.token"):
        load_config(path)


READERS = """
[gaps]
report_after_s = 120

[[readers]]
name = "ops"
token_file = "ops.token"

[[readers]]
name = "prometheus"
token_file = "prom.token"
"""


def test_readers_and_the_gap_report_time(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD + READERS, **{"ops.token": "o", "prom.token": "p"}))
    assert config.reader_tokens() == {"o": "ops", "p": "prometheus"}
    assert (config.gaps.report_after_s, config.gaps.check_every_s) == (120.0, 30.0)
    defaults = load_config(_write(tmp_path, GOOD))
    assert (defaults.reader_tokens(), defaults.gaps.report_after_s) == ({}, 300.0)


def test_a_reader_may_not_use_a_lines_token(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + READERS, **{"ops.token": "tok4", "prom.token": "p"})
    with pytest.raises(ConfigError, match="reader ops has the token of line hz01/line4"):
        load_config(path)
    bad = GOOD + '[gaps]\nreport_after_s = 0\n[[readers]]\nname = "a b"\ntoken_file = "x"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, bad))
    assert "gaps.report_after_s" in str(caught.value) and "readers.0.name" in str(caught.value)


def test_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(_write(tmp_path, GOOD))]) == 0
    assert "OK (2 lines, PostgreSQL, MQTT on)" in capsys.readouterr().out
    assert main(["check-config", str(_write(tmp_path, "[nope]\n"))]) == 2


def test_run_serves_the_http_end_on_sqlite(tmp_path: Path) -> None:
    port = free_port()
    text = (
        f'[http]\nport = {port}\n[[lines]]\ngateway_id = "hz01/line3"\ntoken_file = "line3.token"\n'
        '[[readers]]\nname = "ops"\ntoken_file = "ops.token"\n'
    )
    config = _write(tmp_path, text, **{"ops.token": "opsT"})
    log = (tmp_path / "office.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "office.cli", "run", "--config", str(config),
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "PYTHONPATH": "."},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/v1/gateways/hz01/line3/events"
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.post(url, json=[doc(1)], headers={"Authorization": "Bearer tok3"})
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.json() == {"acked_through": 1}
        lines = httpx.get(
            f"http://127.0.0.1:{port}/v1/lines", headers={"Authorization": "Bearer opsT"}
        )
        assert [(x["gateway_id"], x["held_through"]) for x in lines.json()["lines"]] == [
            ("hz01/line3", 1)
        ]
        assert (tmp_path / "data" / "office.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        log.close()
