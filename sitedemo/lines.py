"""One line of the site: ``linegate demo --orders 0 --broker URL`` as a subprocess in a
process group of its own (its gateway, simulated devices and operators work what the
office publishes), its output kept in a log file, its banner and summary shown.

The line's last seq is read from its own store after it stopped: what the office must
hold, every seq up to it, for the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LineProcess", "LineSpec"]

# The line demo drains its outbox to the broker and writes its shift report on SIGINT:
# that takes a while on a busy box before the group is killed.
_STOP_TIMEOUT_S = 45.0
_BANNER_END = "linegate demo: running until Ctrl-C"
_API = re.compile(r"^\s+station API\s+(http://\S+)/api/stations")
_VIEWER = re.compile(r"^\s+viewer token\s+(\S+)")
_SUMMARY = "linegate demo: summary"


@dataclass(frozen=True)
class LineSpec:
    site: str
    line: str
    data_dir: Path
    http_port: int  # 0: a free one
    broker: str
    speed: float
    seed: int
    start: str | None  # ISO 8601 with offset: the line's clock at the start
    no_devices: bool = False

    @property
    def gateway_id(self) -> str:
        return f"{self.site}/{self.line}"

    def argv(self) -> list[str]:
        # The line's own command line, by this interpreter (the venv the demo runs in).
        argv = [
            sys.executable,
            "-c",
            "from gateway.cli.main import main; raise SystemExit(main())",
            "demo",
            "--orders",
            "0",
            "--broker",
            self.broker,
            "--site",
            self.site,
            "--line",
            self.line,
            "--data-dir",
            str(self.data_dir),
            "--http-port",
            str(self.http_port),
            "--speed",
            f"{self.speed:g}",
            "--seed",
            str(self.seed),
        ]
        if self.start is not None:
            argv += ["--start", self.start]
        if self.no_devices:
            argv.append("--no-devices")
        return argv


@dataclass
class LineProcess:
    spec: LineSpec
    banner: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the line said PROBLEM while running
    api_url: str | None = None
    viewer_token: str | None = None  # what the site board scrapes the line's /metrics with
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # its banner is complete
    returncode: int | None = None
    _proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None

    @property
    def log_path(self) -> Path:
        return self.spec.data_dir.parent / f"{self.spec.line}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        self.spec.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = await asyncio.create_subprocess_exec(
            *self.spec.argv(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            # A group of its own: the terminal's Ctrl-C reaches the site demo only, which
            # stops each line in turn, and a kill takes the line's children with it.
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read(), name=f"{self.spec.gateway_id} output")

    async def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        in_summary = False
        with self.log_path.open("a", encoding="utf-8") as log:
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                if not self.ready.is_set():
                    self.banner.append(line)
                    found = _API.match(line)
                    if found:
                        self.api_url = found.group(1)
                    viewer = _VIEWER.match(line)
                    if viewer:
                        self.viewer_token = viewer.group(1)
                    if line.startswith(_BANNER_END):
                        self.ready.set()
                if line.startswith(_SUMMARY):
                    in_summary = True
                if in_summary:
                    self.summary.append(line)
                elif "PROBLEM:" in line:
                    self.problems.append(line.split("PROBLEM:", 1)[1].strip())
                    print(f"[{self.spec.gateway_id}] {line.strip()}", flush=True)
        self.returncode = await proc.wait()
        self.ready.set()  # whoever waits for the banner: it will never come

    async def stop(self) -> None:
        """SIGINT (the line's summary and verdict so far), then SIGKILL to the group."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGINT)
            try:
                async with asyncio.timeout(_STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                self.problems.append(f"did not stop within {_STOP_TIMEOUT_S:g} s: killed")
        # Whatever it left behind in its group (a planner worker, a report renderer) too.
        _signal_group(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.returncode = proc.returncode

    def last_seq(self) -> int | None:
        """The last seq the line's gateway committed (its own store; after it stopped)."""
        path = self.spec.data_dir / "linegate.db"
        if not path.exists():
            return None
        # The gateway's seq counter, read-only: the one number of its store the verdict needs.
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
        return int(found[0]) if found else 0


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
