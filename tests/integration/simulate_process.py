"""``linegate simulate`` as a child process: the line's simulated devices, for real sockets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(r"control API on (http://\S+)")


class SimulateProcess:
    def __init__(self, config: Path, log: Path, *, machine_cycle_s: float = 0.3) -> None:
        self.args = [
            sys.executable,
            "-m",
            "gateway",
            "simulate",
            str(config),
            "--control-port",
            "0",
            "--machine-cycle-s",
            str(machine_cycle_s),
        ]
        self.log = log
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"simulate exited: {self.log.read_text()[-3000:]}")
            if found := _READY.search(line):
                self.url = found.group(1)
                return
        raise AssertionError("simulate did not start")

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = httpx.post(self.url + path, json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def get(self, path: str) -> Any:
        r = httpx.get(self.url + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
