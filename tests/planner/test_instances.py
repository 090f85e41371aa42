"""The benchmark parsers, on inline text (and on the shared data when it is present)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.planner.instances import (
    JobShop,
    Operation,
    WeightedTardiness,
    parse_jobshop,
    parse_jsp_optima,
    parse_optima,
    parse_wt,
)
from tests.conftest import beside_checkout

ROOT = Path(__file__).resolve().parents[2]
# The benchmark data, vendored from ../shared/benchmarks (byte for byte).
DATA = ROOT / "benchmarks" / "data"
SHARED = ROOT.parent / "shared" / "benchmarks"

SMALL = """\
# a comment line, as in the ft/la files
# another
2 3
0 3  1 2  2 2
0 2  2 1  1 4
"""


def test_parse_jobshop_reads_operations_in_file_order() -> None:
    shop = parse_jobshop(SMALL, name="small")
    assert shop == JobShop(
        jobs=(
            (Operation(0, 3), Operation(1, 2), Operation(2, 2)),
            (Operation(0, 2), Operation(2, 1), Operation(1, 4)),
        ),
        n_machines=3,
        name="small",
    )
    assert shop.n_jobs == 2
    assert shop.horizon() == 14
    # machine loads 5, 6, 3; job lengths 7, 7
    assert shop.trivial_lower_bound() == 7


def test_parse_jobshop_ignores_lines_after_the_jobs() -> None:
    assert parse_jobshop(SMALL + "\n99 trailing notes are ignored\n").n_jobs == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no data"),
        ("# only comments\n", "no data"),
        ("2\n0 1\n", "bad header"),
        ("0 3\n", "bad header"),
        ("2 2\n0 1 1 1\n", "expected 2 job lines"),
        ("1 2\n0 1 1\n", "pairs"),
        ("1 2\n0 1 2 1\n", "machine 2 not in 0..1"),
        ("1 2\n0 -1 1 1\n", "negative duration"),
        ("1 2\n0 x 1 1\n", "not an integer"),
    ],
)
def test_parse_jobshop_rejects_malformed_files(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_jobshop(text)


def test_parse_wt_splits_instances_into_p_w_d_blocks() -> None:
    text = "1 2 3  4 5 6  7 8 9\n 10 20 30\n 1 1 1\n 0 0 0\n"
    first, second = parse_wt(text, n=3)
    assert first == WeightedTardiness(processing=(1, 2, 3), weights=(4, 5, 6), due=(7, 8, 9))
    assert second == WeightedTardiness(processing=(10, 20, 30), weights=(1, 1, 1), due=(0, 0, 0))
    assert first.n == 3


def test_parse_wt_rejects_a_partial_instance() -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        parse_wt("1 2 3 4 5", n=3)
    with pytest.raises(ValueError, match="not a multiple"):
        parse_wt("", n=3)


def test_weighted_tardiness_validates_its_vectors() -> None:
    with pytest.raises(ValueError, match="same length"):
        WeightedTardiness(processing=(1, 2), weights=(1,), due=(0, 0))
    with pytest.raises(ValueError, match="> 0"):
        WeightedTardiness(processing=(0,), weights=(1,), due=(0,))


def test_parse_optima() -> None:
    assert parse_optima(" 913\n 1225\n 0\n") == [913, 1225, 0]


def test_jsp_optima_prefer_closed_current_bounds() -> None:
    jsplib = json.dumps(
        [
            {"name": "ft06", "optimum": 55},
            {"name": "ta11", "optimum": None, "bounds": {"lower": 1323, "upper": 1357}},
            {"name": "ta12", "optimum": None, "bounds": {"lower": 1351, "upper": 1367}},
        ]
    )
    bks = json.dumps(
        [
            {"instance": "ft06", "lower_bound": 55, "upper_bound": 55},
            {"instance": "ta11js", "lower_bound": 1357, "upper_bound": 1357},
            {"instance": "ta12js", "lower_bound": 1360, "upper_bound": 1367},  # still open
        ]
    )
    assert parse_jsp_optima(jsplib) == {"ft06": 55}
    assert parse_jsp_optima(jsplib, bks) == {"ft06": 55, "ta11": 1357}


@pytest.fixture
def shared_data() -> Path:
    return DATA


def test_the_vendored_benchmark_data_equals_the_shared_data() -> None:
    original = beside_checkout(SHARED)
    for path in sorted(p for p in DATA.rglob("*") if p.is_file() and p.name != "VENDORED.md"):
        rel = path.relative_to(DATA)
        assert (original / rel).read_bytes() == path.read_bytes(), rel


def test_every_shared_jsp_file_parses_with_one_operation_per_machine(shared_data: Path) -> None:
    files = sorted((shared_data / "jsp" / "instances").iterdir())
    assert files
    for path in files:
        shop = parse_jobshop(path.read_text(), name=path.name)
        for job in shop.jobs:
            assert sorted(op.machine for op in job) == list(range(shop.n_machines)), path.name


def test_shared_optima_match_the_readme(shared_data: Path) -> None:
    folder = shared_data / "jsp"
    optima = parse_jsp_optima(
        (folder / "instances.json").read_text(), (folder / "scheduleopt" / "bks.json").read_text()
    )
    assert (optima["ft06"], optima["ft10"], optima["ft20"]) == (55, 930, 1165)
    ta = [optima[f"ta{i:02d}"] for i in range(1, 11)]
    assert ta == [1231, 1244, 1218, 1175, 1224, 1238, 1227, 1217, 1274, 1241]
    assert all(f"la{i:02d}" in optima for i in range(1, 41))


def test_shared_wt40_has_125_instances_and_optima(shared_data: Path) -> None:
    instances = parse_wt((shared_data / "wt" / "wt40.txt").read_text(), n=40)
    optima = parse_optima((shared_data / "wt" / "wtopt40.txt").read_text())
    assert len(instances) == len(optima) == 125
    assert optima[:3] == [913, 1225, 537]
    assert all(1 <= p <= 100 for inst in instances for p in inst.processing)
