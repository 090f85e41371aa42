"""``linegate plan`` on files, as someone checking the solver on their own data runs it."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Fisher & Thompson's 6x6 instance (optimum 55), in the OR-Library format.
FT06 = """\
# ft06
6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
"""


def _plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "plan", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_job_shop_file_is_solved_and_its_schedule_is_feasible(tmp_path: Path) -> None:
    path = tmp_path / "ft06"
    path.write_text(FT06)
    done = _plan("--jsp", str(path), "--time-limit", "2", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["makespan"] == 55
    jobs = [[int(x) for x in line.split()] for line in FT06.splitlines()[2:]]
    ops = [[(row[i], row[i + 1]) for i in range(0, len(row), 2)] for row in jobs]
    starts: list[list[int]] = result["starts"]
    assert [len(r) for r in starts] == [6] * 6
    by_machine: dict[int, list[tuple[int, int]]] = {}
    for job, row in enumerate(ops):
        for k, (machine, duration) in enumerate(row):
            start = starts[job][k]
            if k:
                assert start >= starts[job][k - 1] + row[k - 1][1]  # routing order
            by_machine.setdefault(machine, []).append((start, start + duration))
            assert start + duration <= result["makespan"]
    for spans in by_machine.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def _order(order_id: str, sku: str, ship_by: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": ship_by,
        "priority": 2,
        "lines": [{"sku": sku, "qty": 1, "personalization": {"text": "hi"}}],
    }


def test_orders_are_planned_on_a_lines_stations_and_late_ones_explained(
    tmp_path: Path,
) -> None:
    orders = [
        _order("SO-1", "TEE-WHT-M", "2026-11-26T17:00:00+08:00"),
        # Due two minutes after the planning instant: the embroidery alone takes longer.
        _order("SO-2", "CAP-EMB-NAVY", "2026-11-26T08:02:00+08:00"),
    ]
    (tmp_path / "orders.json").write_text(json.dumps(orders))
    done = _plan(
        "--orders",
        str(tmp_path / "orders.json"),
        "--catalog",
        str(ROOT / "simulators" / "data" / "reference-catalog.json"),
        "--stations",
        str(ROOT / "station_configs" / "reference-line"),
        "--now",
        "2026-11-26T08:00:00+08:00",
        "--time-limit",
        "2",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    tasks = result["tasks"]
    assert {(t["order_id"], t["operation"]) for t in tasks} == {
        ("SO-1", "print"),
        ("SO-1", "pack"),
        ("SO-2", "embroider"),
        ("SO-2", "pack"),
    }
    for t in tasks:
        assert t["start"] < t["end"]
        assert t["start"] >= "2026-11-26T08:00:00+08:00"
    [late] = result["late"]
    assert late["order_id"] == "SO-2"
    assert late["late_s"] > 0 and late["reasons"]


def test_orders_without_their_catalog_are_refused() -> None:
    done = _plan("--orders", "x.json", "--time-limit", "1")
    assert done.returncode == 2
    assert "--catalog, --stations, --now" in done.stderr


def test_a_planning_instant_without_its_utc_offset_is_refused() -> None:
    # The floor's local time or UTC? Refused rather than guessed, for --config as --orders.
    line = str(ROOT / "station_configs" / "reference-line")
    for source in (
        ["--config", line],
        ["--orders", "x.json", "--catalog", "c", "--stations", line],
    ):
        done = _plan(*source, "--now", "2026-11-26T10:00:00")
        assert done.returncode == 2
        assert "--now needs a UTC offset" in done.stderr
    done = _plan("--config", line, "--now", "Thursday")
    assert done.returncode == 2
    assert "--now is not an ISO 8601 time" in done.stderr
