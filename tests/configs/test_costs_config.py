"""[costs] in line.toml: the rates order.costed uses, checked by `linegate check-config`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config.line import CostRates, CostsSection, LineConfig, LineSection, StationConfig
from gateway.config.load import EX_CONFIG, ConfigProblem, check_config, load_line_config
from tests.configs.test_config_load import LINE_TOML, REFERENCE_LINE, load_problems, write_line

# The base line of test_config_load: print-1 (dtg_print, with a machine) and pack-1 (pack).
COSTS = """
[costs]
currency = "CNY"
labour_per_hour = 36.0
machine_per_hour = 12

[costs.capabilities.dtg_print]
labour_per_hour = 40.0
machine_per_hour = 18.0

[costs.capabilities.pack]
labour_per_hour = 32.0

[costs.stations.print-1]
machine_per_hour = 30.0
"""


def with_costs(tmp_path: Path, costs: str) -> Path:
    return write_line(tmp_path / "line", {"line.toml": LINE_TOML + costs})


def test_rates_fall_back_from_station_to_capability_to_line(tmp_path: Path) -> None:
    costs = load_line_config(with_costs(tmp_path, COSTS)).costs
    assert costs.currency == "CNY"
    # print-1: its own machine rate, dtg_print's labour rate.
    assert costs.machine_rate("print-1", "dtg_print") == 30.0
    assert costs.labour_rate("print-1", "dtg_print") == 40.0
    # Another station with dtg_print: the capability's rates.
    assert costs.machine_rate("print-2", "dtg_print") == 18.0
    # pack-1: pack's labour, the line's machine rate (an integer in TOML is a rate too).
    assert costs.labour_rate("pack-1", "pack") == 32.0
    assert costs.machine_rate("pack-1", "pack") == 12.0
    # Nothing known: the line's.
    assert costs.labour_rate(None, None) == 36.0


def test_no_costs_section_costs_nothing_in_the_catalogs_currency(tmp_path: Path) -> None:
    costs = load_line_config(write_line(tmp_path / "line", {})).costs
    assert costs == CostsSection()
    assert costs.currency is None  # the catalog's
    assert costs.labour_rate("pack-1", "pack") == costs.machine_rate("print-1", None) == 0.0


def test_the_reference_line_has_rates(tmp_path: Path) -> None:
    costs = load_line_config(REFERENCE_LINE).costs
    assert costs.currency == "CNY"
    assert costs.machine_rate("emb-1", "embroider") == 30.0
    assert costs.labour_rate("pack-1", "pack") > 0


@pytest.mark.parametrize(
    ("costs", "problem"),
    [
        (
            "\n[costs]\nlabour_per_hour = -5.0\n",
            ConfigProblem(
                "line.toml",
                "costs.labour_per_hour",
                "Input should be greater than or equal to 0 (got -5.0)",
            ),
        ),
        (
            '\n[costs]\nlabour_per_hour = "36"\n',
            ConfigProblem(
                "line.toml", "costs.labour_per_hour", "Input should be a valid number (got '36')"
            ),
        ),
        (
            "\n[costs]\nmachine_per_hour = nan\n",
            ConfigProblem(
                "line.toml", "costs.machine_per_hour", "Input should be a finite number (got nan)"
            ),
        ),
        (
            "\n[costs.stations.print-1]\nlabour_per_hour = -1.0\n",
            ConfigProblem(
                "line.toml",
                "costs.stations.print-1.labour_per_hour",
                "Input should be greater than or equal to 0 (got -1.0)",
            ),
        ),
        (
            '\n[costs]\ncurrency = "yuan"\n',
            ConfigProblem(
                "line.toml",
                "costs.currency",
                "String should match pattern '^[A-Z]{3}$' (got 'yuan')",
            ),
        ),
        (
            "\n[costs]\nlabour_rate = 36.0\n",
            ConfigProblem("line.toml", "costs.labour_rate", "unknown key"),
        ),
        (
            "\n[costs.stations.print-9]\nlabour_per_hour = 40.0\n",
            ConfigProblem(
                "line.toml",
                "costs.stations.print-9",
                "unknown station 'print-9': no station file has this id",
            ),
        ),
        (
            "\n[costs.capabilities.embroider]\nmachine_per_hour = 30.0\n",
            ConfigProblem(
                "line.toml", "costs.capabilities.embroider", "no station has capability 'embroider'"
            ),
        ),
        (
            "\n[costs.stations.pack-1]\nmachine_per_hour = 30.0\n",
            ConfigProblem(
                "line.toml",
                "costs.stations.pack-1.machine_per_hour",
                "station 'pack-1' has no machine (no opcua_machine device): no machine time "
                "is counted there",
            ),
        ),
    ],
)
def test_a_bad_costs_section_is_reported_with_its_key(
    tmp_path: Path, costs: str, problem: ConfigProblem
) -> None:
    folder = with_costs(tmp_path, costs)
    assert load_problems(folder) == [problem]
    out, err = io.StringIO(), io.StringIO()
    assert check_config(folder, out, err) == EX_CONFIG
    assert err.getvalue() == f"{problem}\n"


def test_a_line_built_in_code_refuses_costs_for_unknown_stations(tmp_path: Path) -> None:
    station = StationConfig(id="a", capabilities=["pack"])
    costs = CostsSection(stations={"b": CostRates(labour_per_hour=1.0)})
    with pytest.raises(ValidationError, match="unknown stations"):
        LineConfig(
            line=LineSection(site="s", line="l"),
            stations={"a": station},
            costs=costs,
            config_dir=tmp_path,
        )
