"""Copy a line config folder so that its simulated devices fit on this machine right now.

The reference line names its simulated devices at fixed loopback ports and under
``/tmp/linegate-sim/``. Two runs at once (tests in parallel, a demo beside a test) would
collide there, so the demo and the integration tests run on a copy in which every
``127.0.0.1:PORT`` is moved to a free port (the same old port always to the same new one:
scales on one bus stay on one bus) and every ``/tmp/linegate-sim/`` path to a folder of
their own. It is a text substitution, so the copy keeps its comments and stays readable.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

__all__ = ["SIM_ROOT", "free_port", "relocate_line"]

SIM_ROOT = "/tmp/linegate-sim/"
_LOOPBACK = re.compile(r"127\.0\.0\.1:(\d+)")
# A device table's own `port = N` (a Modbus TCP scale gives host and port apart).
_PORT_KEY = re.compile(r"^(\s*port\s*=\s*)(\d+)(.*)$")
_TABLE = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")


# Below Linux's ephemeral range (32768-60999 by default): a port picked there is not
# taken meanwhile by some outgoing connection before the simulator binds it.
_LOW_PORTS = range(20000, 32000)


def free_port(rng: random.Random | None = None) -> int:
    """A loopback TCP port that is free now, preferably outside the ephemeral range."""
    pick = rng or random.Random()
    for _ in range(50):
        port = pick.choice(_LOW_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def relocate_line(
    src: Path,
    dst: Path,
    sim_root: Path,
    *,
    port: Callable[[], int] = free_port,
) -> dict[int, int]:
    """Copy ``src`` to ``dst`` with ports and paths moved; returns the port mapping."""
    mapping: dict[int, int] = {}

    def new_port(old: int) -> int:
        # A port is only checked free, not held, until its simulator binds it: never hand
        # the same one to two devices.
        if old not in mapping:
            while (candidate := port()) in mapping.values():
                pass
            mapping[old] = candidate
        return mapping[old]

    def move(match: re.Match[str]) -> str:
        return f"127.0.0.1:{new_port(int(match.group(1)))}"

    dst.mkdir(parents=True, exist_ok=True)
    sim_root.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.suffix != ".toml":
            if path.is_file() and not path.name.startswith("linegate.db"):
                shutil.copy2(path, dst / path.name)
            continue
        lines = []
        table = ""
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if found := _TABLE.match(line):
                table = found.group(1)
            line = _LOOPBACK.sub(move, line)
            if table.startswith("devices.") and (key := _PORT_KEY.match(line)):
                line = f"{key.group(1)}{new_port(int(key.group(2)))}{key.group(3)}\n"
            lines.append(line.replace(SIM_ROOT, f"{sim_root}/"))
        (dst / path.name).write_text("".join(lines), encoding="utf-8")
    return mapping
