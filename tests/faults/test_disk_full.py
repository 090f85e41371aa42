"""Disk full, on a small filesystem (tmpfs) for the gateway's state directory.

Below the free-space floor the gateway stops taking orders (they wait in the broker) and
says why in an alarm; on a disk that is completely full an operator's action is refused
with "nothing was saved", the gateway stays up (no crash loop), and nothing is corrupted.
Once there is room again everything resumes by itself: the waiting orders come in, the
events reach the hub without a gap.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.access import tokens
from gateway.store.db import Store
from gateway.store.rows import Role
from tests.conftest import Mosquitto, free_port, missing, mosquitto_binary
from tests.faults.report import HubRecorder, report
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient

DATA = ROOT / "simulators" / "data"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        missing(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _line(tmp: Path) -> Path:
    folder = tmp / "line"
    shutil.copytree(ROOT / "station_configs" / "reference-line", folder)
    text = (folder / "line.toml").read_text()
    (folder / "line.toml").write_text(
        text.replace("[policies]\n", "[policies]\ndisk_free_floor_mib = 2\n", 1)
    )
    return folder


def _fresh_token(db: Path) -> str:
    store = Store(db)
    store.open()
    try:
        return tokens.create_token(store, "board", Role.VIEWER, datetime.now(UTC)).token
    finally:
        store.close()


def _order(n: int) -> dict[str, Any]:
    return {
        "order_id": f"D-{n:03d}",
        "ship_by": "2030-01-01T17:00:00+08:00",
        "lines": [{"sku": "PEN-ENG", "qty": 1, "personalization": {"text": "d"}}],
    }


def _wait(pred: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _fill(folder: Path, leave_mib: float) -> Path:
    """A file that leaves ``leave_mib`` free (0: until the disk says no)."""
    filler = folder / "filler"
    with filler.open("ab") as f:
        chunk = b"\0" * 65536
        while shutil.disk_usage(folder).free > leave_mib * 1024 * 1024:
            try:
                f.write(chunk)
                f.flush()
            except OSError:
                break
    return filler


def test_a_full_disk_pauses_intake_refuses_clearly_and_recovers(
    tmp_path: Path, small_disk: Path
) -> None:
    binary = mosquitto_binary()
    (tmp_path / "broker").mkdir()
    broker = Mosquitto(binary, tmp_path / "broker", persistence=True)
    broker.start()
    hub = HubClient("127.0.0.1", broker.port)
    recorder = HubRecorder(broker.port, name="disk-recorder")
    hub.publish("in/masterdata/catalog", (DATA / "reference-catalog.json").read_bytes(), True)
    hub.publish("in/masterdata/stock", (DATA / "reference-stock.json").read_bytes(), True)
    gw = GatewayProcess(small_disk, broker.port, free_port(), config=_line(tmp_path))
    filler: Path | None = None
    stack = contextlib.ExitStack()
    try:
        gw.start()
        api = stack.enter_context(gw.client())
        hub.publish("in/orders", [_order(n) for n in range(3)])
        _wait(lambda: sum(e["type"] == "order.accepted" for e in hub.events()) == 3)

        fresh = _fresh_token(gw.db)  # never used: its first use is due a last-use stamp

        # Below the floor: orders wait in the broker, an alarm says why.
        filler = _fill(small_disk, leave_mib=1.0)
        hub.publish("in/orders", [_order(n) for n in range(3, 6)])
        _wait(lambda: "storage:disk_low" in [a["alarm_id"] for a in api.get("/api/alarms").json()])
        time.sleep(1.0)
        assert sum(e["type"] == "order.accepted" for e in hub.events()) == 3

        # Completely full: an operator's action is refused, saying nothing was saved.
        _fill(small_disk, leave_mib=0)
        answer = api.post("/api/stations/laser-1/login", json={"badge": "OP-1006"})
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["code"] == "DISK_FULL" and "Nothing was recorded" in body["next"]
        assert api.get("/api/stations/laser-1").json()["operator"] is None  # indeed not saved
        # The gate's own bookkeeping gives way: a token whose last-use stamp cannot be
        # written still reads the board, where the alarm is ...
        board = httpx.get(
            f"{gw.base}/api/alarms", headers={"Authorization": f"Bearer {fresh}"}, timeout=10
        )
        assert board.status_code == 200, board.text
        assert "storage:disk_low" in [a["alarm_id"] for a in board.json()]
        # ... and a request without a credential is refused as ever, not failed.
        anonymous = httpx.post(
            f"{gw.base}/api/stations/laser-1/login", json={"badge": "OP-1006"}, timeout=10
        )
        assert anonymous.status_code == 401, anonymous.text
        assert api.get("/api/health").status_code == 200
        assert gw.proc is not None and gw.proc.poll() is None  # up: no crash, no restart

        # Room again: intake resumes by itself, the refused action works.
        filler.unlink()
        filler = None
        _wait(lambda: sum(e["type"] == "order.accepted" for e in hub.events()) == 6)
        _wait(
            lambda: "storage:disk_low" not in [a["alarm_id"] for a in api.get("/api/alarms").json()]
        )
        api.post("/api/stations/laser-1/login", json={"badge": "OP-1006"})
        assert api.post("/api/stations/laser-1/next").json()["ok"]
        _wait(lambda: api.get("/api/health").json()["outbox_pending"] == 0)
        gw.stop()
        conn = sqlite3.connect(f"file:{gw.db}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            last = int(conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0])
        finally:
            conn.close()
        _wait(lambda: len(recorder.unique()) >= last, within=10)
        r = report(recorder, last, 0.0)
        print(f"disk full: {r}")  # noqa: T201 - the fault report
        assert r.lost == [] and r.unexpected == []
    finally:
        stack.close()
        if filler is not None:
            with contextlib.suppress(OSError):
                filler.unlink()
        gw.stop()
        hub.close()
        recorder.close()
        broker.stop()
        os.sync()
