"""A real gateway process (``python -m gateway run``) on a free port, for integration tests.

Its clients authenticate like real ones: :attr:`GatewayProcess.keys` pairs a terminal for
every station and makes a token per role in the gateway's database (tests/keys.py), and
:meth:`GatewayProcess.client` / :meth:`GatewayProcess.async_client` use them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from gateway.config.load import load_line_config
from simulators.keys import LineKeys
from tests.clocks import line_clock_offset_s
from tests.keys import issue_keys_in

ROOT = Path(__file__).resolve().parents[2]


class GatewayProcess:
    def __init__(
        self,
        data_dir: Path,
        broker_port: int,
        http_port: int,
        config: Path = ROOT / "station_configs" / "reference-line",
    ) -> None:
        # The line's time from a fixed morning, not today's date; the same across restarts.
        self.clock_offset_s = line_clock_offset_s()
        self.config = config
        self.args = [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "--broker",
            f"mqtt://127.0.0.1:{broker_port}",
            "--http-port",
            str(http_port),
            "--clock-offset-s",
            str(self.clock_offset_s),
        ]
        self.base = f"http://127.0.0.1:{http_port}"
        self.db = data_dir / "linegate.db"
        self.log = data_dir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._keys: LineKeys | None = None

    @property
    def keys(self) -> LineKeys:
        """The line's credentials, as an admin makes them: a paired terminal per station and
        a token per role, written to this gateway's database on first use (before its start
        or while it runs) and the same across its restarts."""
        if self._keys is None:
            now = datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)  # the line's time
            self._keys = issue_keys_in(self.db, load_line_config(self.config), now)
        return self._keys

    def client(self, timeout: float = 10) -> httpx.Client:
        """A client of the station API that authenticates with :attr:`keys`."""
        return httpx.Client(base_url=self.base, timeout=timeout, auth=self.keys)

    def async_client(self, timeout: float = 10) -> httpx.AsyncClient:
        """An asyncio client of the station API that authenticates with :attr:`keys`."""
        return httpx.AsyncClient(base_url=self.base, timeout=timeout, auth=self.keys)

    def start(self, timeout: float = 20.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/api/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("gateway did not start")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no offline status, nothing flushed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)
