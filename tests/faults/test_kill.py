"""The short version of the SIGKILL cycles (tests/faults/kill_cycles.py has the long one):
the gateway killed at random moments of a busy run and restarted on the same data loses
nothing, leaves no gap, keeps its database intact, and every action an operator was told
"done" reaches the hub."""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.conftest import Mosquitto, mosquitto_binary
from tests.faults.kill_cycles import run_kill_cycles


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    binary = mosquitto_binary()
    (tmp_path / "broker").mkdir()
    broker = Mosquitto(binary, tmp_path / "broker", persistence=True)
    broker.start()
    seed = int(os.environ.get("LINEGATE_FAULT_SEED", random.randrange(10**6)))
    kills = int(os.environ.get("LINEGATE_FAULT_KILLS", "6"))
    try:
        run = run_kill_cycles(tmp_path, broker, kills, seed)
    finally:
        broker.stop()
    print(run)  # noqa: T201 - the fault report
    assert run.report.lost == [], run
    assert run.report.unexpected == [], run
    assert run.integrity_failures == [], run
    assert run.acknowledged > 0 and run.acknowledged_missing == [], run
