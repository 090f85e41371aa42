"""The ``linegate`` command's exits and messages, run as a real process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.gateway_process import ROOT

REFERENCE = ROOT / "station_configs" / "reference-line"


def linegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_accepts_the_reference_line() -> None:
    out = linegate("check-config", str(REFERENCE))
    assert out.returncode == 0
    assert "hz01/line3, 9 stations" in out.stdout


def test_a_bad_config_exits_78_for_check_and_for_run(tmp_path: Path) -> None:
    bad = tmp_path / "line"
    shutil.copytree(REFERENCE, bad)
    text = (bad / "pack-1.toml").read_text()
    (bad / "pack-1.toml").write_text(text.replace("[station]", "[station]\nspeed = 3", 1))
    out = linegate("check-config", str(bad))
    assert out.returncode == 78
    assert "pack-1.toml: station.speed: unknown key" in out.stderr
    run = linegate("run", "--config", str(bad), "--data-dir", str(tmp_path / "d"))
    assert run.returncode == 78
    assert "station.speed" in run.stderr


def test_run_refuses_a_damaged_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "linegate.db").write_bytes(b"not a database" * 100)
    out = linegate("run", "--config", str(REFERENCE), "--data-dir", str(data))
    assert out.returncode == 70
    assert "refusing to start" in out.stderr
    assert (data / "linegate.db").read_bytes() == b"not a database" * 100  # left as it was


def test_trace_explains_an_unknown_serial_and_a_missing_database(tmp_path: Path) -> None:
    out = linegate("trace", "LINE3-404", "--db", str(tmp_path / "nothing.db"))
    assert out.returncode == 70 and "no database" in out.stderr
    out = linegate("trace", "--db", str(tmp_path / "nothing.db"))
    assert out.returncode == 2 and "SERIAL or --lot" in out.stderr


def test_run_says_so_when_the_station_api_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = linegate(
            "run",
            "--config",
            str(REFERENCE),
            "--data-dir",
            str(tmp_path),
            "--http-port",
            str(port),
            "--broker",
            "mqtt://127.0.0.1:1",
        )
    assert out.returncode == 75
    assert f"cannot serve the station API on 127.0.0.1:{port}" in out.stderr
