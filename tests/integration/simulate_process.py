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

from simulators.relocate import relocate_line

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
                self.stop()
                raise SimulateFailed(self.log.read_text()[-3000:])
            if found := _READY.search(line):
                self.url = found.group(1)
                return
        self.stop()
        raise SimulateFailed("simulate did not start")

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = httpx.post(self.url + path, json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def get(self, path: str) -> Any:
        r = httpx.get(self.url + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(15)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


class SimulateFailed(AssertionError):
    """`linegate simulate` exited before it was ready (its log says why)."""

    @property
    def port_taken(self) -> bool:
        # asyncio says so; pymodbus's server only says it could not listen.
        text = str(self)
        return "address already in use" in text or "Could not start listen" in text


def start_simulated_line(
    source: Path, config: Path, sim_root: Path, log: Path, **kwargs: float
) -> SimulateProcess:
    """Relocate ``source`` to ``config`` and start its simulators there. A port picked free
    can still be taken by the time the simulator binds it: then move the line again."""
    for attempt in range(3):
        relocate_line(source, config, sim_root)
        sim = SimulateProcess(config, log, **kwargs)
        try:
            sim.start()
        except SimulateFailed as exc:
            if not exc.port_taken or attempt == 2:
                raise
            continue
        return sim
    raise AssertionError("unreachable")
