"""The office benchmark's smoke run (``--quick``): two ``linegate-office run`` processes on
one PostgreSQL in one shared-subscription group, 20 lines publishing through the gateway's
own MQTT link, one office SIGKILLed mid-stream and started again. Afterwards every line's
events are in the store exactly once: as many rows as the line sent, seqs 1..sent, and
``held_through`` at the last one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import find_mosquitto, missing

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def test_a_killed_office_instance_loses_nothing_and_counts_nothing_twice() -> None:
    if find_mosquitto() is None:
        missing("mosquitto is not installed (apt-get install mosquitto)")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    # Its own session: on a timeout the whole group goes (offices, broker, PostgreSQL),
    # not the benchmark alone with its children left running.
    bench = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "bench_office.py"), "--quick", "--json",
         "--parts", "postgresql"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = bench.communicate(timeout=100)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.communicate()
    assert bench.returncode == 0, stderr[-3000:]
    out = json.loads(stdout)
    [step] = out["postgresql"]["2 instances"]
    assert step["stored"] == step["sent"] > 0
    assert all(share > 0 for share in step["per_instance"].values())  # both took a share
    kill = out["postgresql"]["kill"]
    assert kill["victim_restarted"], "the killed office did not come back"
    assert kill["sent_while_down"] > 0  # the kill was mid-stream
    assert kill["gateway_unacked_at_end"] == 0
    lines = kill["lines"]
    assert len(lines) == 20
    for gateway_id, line in lines.items():
        sent = line["sent"]
        assert sent > 0, gateway_id
        # count == sent with seqs from 1 to sent: each seq once, none missing.
        assert (line["count"], line["min"], line["max"]) == (sent, 1, sent), gateway_id
        assert line["held_through"] == sent, gateway_id
    assert kill["stored"] == kill["sent"] == sum(line["sent"] for line in lines.values())
