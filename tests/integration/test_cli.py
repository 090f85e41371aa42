"""The ``linegate`` command's exits and messages, run as a real process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.config.load import load_line_config
from tests.gateway.conftest import catalog_bytes, order, stock_doc
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


def _line_with_one_unit(data: Path) -> tuple[Path, str]:
    """A gateway's database with one order accepted and its unit's first task taken, made
    as the gateway makes it; returns the database and the unit's serial."""
    gw = Gateway(load_line_config(REFERENCE), data_dir=data)
    gw.open()
    try:
        for topic, payload in (
            ("in/masterdata/catalog", catalog_bytes()),
            ("in/masterdata/stock", json.dumps(stock_doc()).encode()),
            ("in/orders", json.dumps(order("SO-1", ("PEN-ENG", 1))).encode()),
        ):
            gw.inbound.deliver([InboundMessage(topic, payload)])
        gw.stations.login("laser-1", "OP-1006")
        gw.stations.next_task("laser-1")
        serial = str(gw.stations.view("laser-1")["task"]["serial"])
    finally:
        gw.store.close()
    return gw.store.path, serial


def test_trace_says_when_a_serial_is_unknown(tmp_path: Path) -> None:
    db, serial = _line_with_one_unit(tmp_path)
    known = linegate("trace", serial, "--db", str(db))
    assert known.returncode == 0, known.stderr
    assert f"unit {serial}" in known.stdout and "order SO-1" in known.stdout
    for extra in ((), ("--json",)):
        out = linegate("trace", "LINE3-404", "--db", str(db), *extra)
        # Not found: a non-zero exit a script can test, the reason on stderr, nothing on
        # stdout that could pass for a trace (no "null" for --json).
        assert out.returncode == 1
        assert f"no unit LINE3-404 in {db}" in out.stderr
        assert out.stdout == ""


def test_trace_explains_a_missing_database_and_a_missing_argument(tmp_path: Path) -> None:
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
