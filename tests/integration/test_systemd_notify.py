"""The gateway under systemd's notify protocol, against a fake notify socket: READY once it
serves, WATCHDOG pings from the event loop only while the store commits, STOPPING on the
way out; a bad config exits 78 (the unit does not restart it) without a word to systemd.

``linegate run`` is a real process; the notify socket is a Unix datagram socket of the
test's, as systemd's would be; the fault is real too: another process holds the SQLite
database's write lock, as a stuck writer or a failing disk would.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app.health import Notifier
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

LINE = """\
[line]
site = "t1"
line = "l1"
timezone = "Asia/Shanghai"

[hub]
transport = "none"

[http]
port = {port}
"""

STATION = """\
[station]
id = "pack-1"
capabilities = ["pack"]
"""


class FakeSystemd:
    """A notify socket: what the gateway says, line by line, with the time it came."""

    def __init__(self) -> None:
        # Short: a Unix socket path has room for 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="lg-"))
        self.path = self.dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.heard: list[tuple[float, str]] = []

    def listen(self, seconds: float) -> list[str]:
        """Everything said within ``seconds``."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for line in data.decode().splitlines():
                self.heard.append((time.monotonic(), line))
                got.append(line)
        return got

    def wait_for(self, prefix: str, within: float) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in self.listen(0.2):
                if line.startswith(prefix):
                    return line
        raise AssertionError(f"no {prefix!r} within {within} s; heard {self.heard[-10:]}")

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
        self.dir.rmdir()


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    fake = FakeSystemd()
    yield fake
    fake.close()


def _line(tmp: Path, *, broken: bool = False) -> Path:
    folder = tmp / "line"
    folder.mkdir()
    (folder / "line.toml").write_text(LINE.format(port=free_port()))
    (folder / "pack-1.toml").write_text(STATION + ("colour = 1\n" if broken else ""))
    return folder


def _run(
    folder: Path, data: Path, systemd: FakeSystemd, watchdog_s: float
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(systemd.path),
        "WATCHDOG_USEC": str(int(watchdog_s * 1e6)),
    }
    env.pop("WATCHDOG_PID", None)
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(folder), "--data-dir", str(data)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_ready_then_pings_only_while_the_store_commits(
    tmp_path: Path, systemd: FakeSystemd
) -> None:
    folder = _line(tmp_path)
    proc = _run(folder, tmp_path / "data", systemd, watchdog_s=1.0)
    try:
        ready = systemd.wait_for("READY=1", within=30)
        assert ready == "READY=1"
        # Every half period (0.5 s) while healthy.
        pings = [line for line in systemd.listen(2.6) if line == "WATCHDOG=1"]
        assert 4 <= len(pings) <= 7

        # Another process takes the database's write lock: no commit, no ping.
        db = sqlite3.connect(tmp_path / "data" / "linegate.db", isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            status = systemd.wait_for("STATUS=unhealthy", within=15)
            assert "the store cannot commit: database is locked" in status
            quiet = systemd.listen(3.0)
            assert "WATCHDOG=1" not in quiet  # systemd would now kill and restart it
        finally:
            db.execute("ROLLBACK")
            db.close()
        # The lock gone, the pings come back by themselves.
        systemd.wait_for("WATCHDOG=1", within=10)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert "STOPPING=1" in systemd.listen(0.5) + [line for _, line in systemd.heard]
    assert proc.returncode == 0


def test_a_bad_config_exits_78_without_a_word_to_systemd(
    tmp_path: Path, systemd: FakeSystemd
) -> None:
    folder = _line(tmp_path, broken=True)
    proc = _run(folder, tmp_path / "data", systemd, watchdog_s=1.0)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 78  # RestartPreventExitStatus=78 in the unit
    assert b"station.colour" in err
    assert systemd.listen(0.3) == []


def test_the_notifier_follows_systemds_environment(systemd: FakeSystemd) -> None:
    assert not Notifier({}).enabled
    assert Notifier({}).send("READY=1") is False
    quiet = Notifier({"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "30000000"})
    assert quiet.interval_s == 15.0  # half the period
    # A watchdog meant for another process (WATCHDOG_PID) is not ours to ping.
    other = Notifier({"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "30000000",
                      "WATCHDOG_PID": "1"})  # fmt: skip
    assert other.interval_s is None
    assert quiet.send("READY=1", "STATUS=serving") is True
    assert systemd.listen(0.3) == ["READY=1", "STATUS=serving"]
    quiet.close()
    # The abstract namespace: "@name".
    name = f"linegate-test-{os.getpid()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind("\0" + name)
    abstract.settimeout(2)
    to_abstract = Notifier({"NOTIFY_SOCKET": "@" + name})
    try:
        assert to_abstract.send("WATCHDOG=1")
        assert abstract.recv(100) == b"WATCHDOG=1"
    finally:
        to_abstract.close()
        abstract.close()
    # A socket that is gone: a warning, never an exception.
    gone = Notifier({"NOTIFY_SOCKET": str(systemd.dir / "gone")})
    assert gone.send("READY=1") is False
    gone.close()
