"""A real gateway process (``python -m gateway run``) on a free port, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.clocks import line_clock_offset_s

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
            str(line_clock_offset_s()),
        ]
        self.base = f"http://127.0.0.1:{http_port}"
        self.db = data_dir / "linegate.db"
        self.log = data_dir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

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
