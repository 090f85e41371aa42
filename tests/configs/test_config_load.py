"""Loading a line's config folder: the reference line, and every kind of mistake located."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.opcua_machine import OpcUaMachineConfig
from gateway.config.line import HubSection, LineConfig, LineSection, StationConfig
from gateway.config.load import ConfigError, ConfigProblem, check_config, load_line_config

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_LINE = ROOT / "station_configs" / "reference-line"
REFERENCE_CATALOG = ROOT / "simulators" / "data" / "reference-catalog.json"

LINE_TOML = """\
[line]
site = "s1"
line = "l1"

[hub]
url = "mqtt://broker.local"

[[operators]]
badge = "OP-1"
name = "One"

[[operators]]
badge = "OP-2"
name = "Two"
"""

PRINT_TOML = """\
[station]
id = "print-1"
capabilities = ["dtg_print"]
operators = ["OP-1"]

[devices.machine]
kind = "opcua_machine"
url = "opc.tcp://10.0.3.21:4840/"
namespace_uri = "urn:example:printer"
security_policy = "None"
allow_insecure = true
nodes = { state = "M/State", good_count = "M/Good", bad_count = "M/Bad", job_id = "M/Job" }
job = { mode = "method", method = "M/Start" }

[devices.printer]
kind = "label_printer"
url = "tcp://10.0.3.31"
"""

PACK_TOML = """\
[station]
id = "pack-1"
capabilities = ["pack"]

[devices.scale]
kind = "modbus_scale"
transport = "tcp"
host = "10.0.3.41"
"""

RTU_SCALE = """\
[station]
id = "{id}"
capabilities = ["pack"]

[devices.scale]
kind = "modbus_scale"
transport = "rtu"
port = "/dev/ttyUSB0"
baudrate = {baud}
device_id = 1
"""

BASE_FILES = {"line.toml": LINE_TOML, "print-1.toml": PRINT_TOML, "pack-1.toml": PACK_TOML}


def write_line(folder: Path, changes: dict[str, str | None]) -> Path:
    """The base line with files replaced, added, or (None) removed."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | None] = {**BASE_FILES, **changes}
    for name, text in files.items():
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
    return folder


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def load_problems(folder: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_line_config(folder)
    return caught.value.problems


# --- the reference line -------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> LineConfig:
    return load_line_config(REFERENCE_LINE)


def catalog_routings() -> list[list[str]]:
    catalog = json.loads(REFERENCE_CATALOG.read_text(encoding="utf-8"))
    return [[op["capability"] for op in r["operations"]] for r in catalog["routings"]]


def test_reference_line_loads(reference: LineConfig) -> None:
    assert reference.gateway_id == "hz01/line3"
    assert reference.line.timezone == "Asia/Shanghai"
    assert (reference.hub.transport, reference.hub.host, reference.hub.port) == (
        "mqtt",
        "127.0.0.1",
        1883,
    )
    assert reference.http.port == 8080
    assert reference.config_dir == REFERENCE_LINE
    assert reference.store_path() == REFERENCE_LINE / "linegate.db"
    assert sorted(reference.stations) == [
        "dtg-1",
        "dtg-2",
        "emb-1",
        "kit-1",
        "kit-2",
        "laser-1",
        "pack-1",
        "pack-2",
        "qc-1",
    ]
    assert all(key == station.id for key, station in reference.stations.items())
    assert len(reference.operators) >= 8


def test_reference_stations_cover_every_catalog_capability(reference: LineConfig) -> None:
    used = {cap for routing in catalog_routings() for cap in routing}
    offered = {cap for station in reference.stations.values() for cap in station.capabilities}
    assert used, "the catalog has no routing"
    assert used <= offered


def test_reference_first_operations_have_a_label_printer(reference: LineConfig) -> None:
    first_ops = {routing[0] for routing in catalog_routings()}
    stations = [s for s in reference.stations.values() if first_ops & set(s.capabilities)]
    assert stations
    assert [s.id for s in stations if s.printer is None] == []


@pytest.mark.parametrize(
    ("station_id", "machine", "printer"),
    [
        ("dtg-1", "machine", "printer"),
        ("dtg-2", "machine", "printer"),
        ("emb-1", "machine", "printer"),
        ("laser-1", "machine", "printer"),
        ("kit-1", None, "printer"),
        ("pack-1", None, "printer"),
        ("qc-1", None, None),
    ],
)
def test_reference_station_devices(
    reference: LineConfig, station_id: str, machine: str | None, printer: str | None
) -> None:
    station = reference.stations[station_id]
    assert (station.machine, station.printer) == (machine, printer)


def test_check_config_ok_line() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert check_config(REFERENCE_LINE, out, err) == 0
    assert out.getvalue() == (
        "ok: hz01/line3, 9 stations "
        "(dtg-1, dtg-2, emb-1, kit-1, kit-2, laser-1, pack-1, pack-2, qc-1)\n"
    )
    assert err.getvalue() == ""


# --- a minimal line -----------------------------------------------------------------------


def test_minimal_line_defaults(tmp_path: Path) -> None:
    config = load_line_config(write_line(tmp_path / "line", {}))
    assert config.gateway_id == "s1/l1"
    assert list(config.stations) == ["pack-1", "print-1"]
    assert (config.hub.host, config.hub.port, config.hub.keepalive_s) == ("broker.local", 1883, 30)
    assert config.mqtt_client_id == "linegate-s1-l1"
    assert config.line.timezone == "UTC"
    assert config.stations["pack-1"].operators is None
    assert config.stations["print-1"].operators == ["OP-1"]
    assert config.store_path() == tmp_path / "line" / "linegate.db"
    assert config.store_path(tmp_path / "data") == tmp_path / "data" / "linegate.db"
    # The planner is on with its defaults when line.toml says nothing of it.
    assert config.planner.enabled
    assert (config.planner.time_limit_s, config.planner.interval_s) == (10.0, 300.0)


@pytest.mark.parametrize(
    ("store_path", "expected"),
    [
        ("sub/gate.db", "cfg/sub/gate.db"),
        ("/var/lib/linegate/gate.db", "/var/lib/linegate/gate.db"),
    ],
)
def test_store_path_resolution(tmp_path: Path, store_path: str, expected: str) -> None:
    line = LINE_TOML + f'\n[store]\npath = "{store_path}"\n'
    config = load_line_config(write_line(tmp_path / "cfg", {"line.toml": line}))
    assert config.store_path() == tmp_path / expected
    assert config.store_path(tmp_path / "data") == tmp_path / "data" / "gate.db"


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883),
        ("mqtt://broker", "broker", 1883),
        ("mqtt://broker:8883/", "broker", 8883),
        ("mqtt://[::1]:1884", "::1", 1884),
    ],
)
def test_hub_url_host_and_port(url: str, host: str, port: int) -> None:
    hub = HubSection(url=url)
    assert (hub.host, hub.port) == (host, port)


@pytest.mark.parametrize(
    "url",
    ["http://broker", "mqtt://", "mqtt://broker:99999", "mqtt://broker:x", "mqtt://b/topic"],
)
def test_hub_url_refused_by_the_model(url: str) -> None:
    with pytest.raises(ValidationError):
        HubSection(url=url)


def test_line_section_tzinfo() -> None:
    section = LineSection(site="a", line="b", timezone="Asia/Shanghai")
    assert section.tzinfo.key == "Asia/Shanghai"


def test_station_without_devices_has_no_machine_or_printer() -> None:
    station = StationConfig(id="qc-1", capabilities=["qc_inspect"])
    assert (station.machine, station.printer) == (None, None)


def test_line_config_built_in_code_is_checked(tmp_path: Path) -> None:
    station = StationConfig(id="a", capabilities=["pack"], operators=["OP-9"])
    with pytest.raises(ValidationError, match="unknown badges"):
        LineConfig(
            line=LineSection(site="s", line="l"), stations={"a": station}, config_dir=tmp_path
        )


# --- mistakes, each with its file and dotted key ------------------------------------------


@dataclass(frozen=True)
class Bad:
    changes: dict[str, str | None]
    # (file, path, a piece of the message) for every problem, in the order reported:
    # line.toml, then the stations by file name, then the folder
    expected: list[tuple[str, str, str]]


BAD_CASES = {
    "unknown key in line.toml": Bad(
        {"line.toml": replace(LINE_TOML, "[hub]\n", "[hub]\ncolour = 1\n")},
        [("line.toml", "hub.colour", "unknown key")],
    ),
    "planner: a zero time limit and an unknown key": Bad(
        {"line.toml": LINE_TOML + "\n[planner]\ntime_limit_s = 0\nhorizon_days = 3\n"},
        [
            ("line.toml", "planner.time_limit_s", "greater than 0"),
            ("line.toml", "planner.horizon_days", "unknown key"),
        ],
    ),
    "unknown table in line.toml": Bad(
        {"line.toml": LINE_TOML + "\n[stations]\na = 1\n"},
        [("line.toml", "stations", "unknown key")],
    ),
    "unknown key in a station": Bad(
        {"pack-1.toml": replace(PACK_TOML, "[station]\n", "[station]\nshift = 2\n")},
        [("pack-1.toml", "station.shift", "unknown key")],
    ),
    "unknown key in a device": Bad(
        {"pack-1.toml": PACK_TOML + 'colour = "red"\n'},
        [("pack-1.toml", "devices.scale.colour", "unknown key")],
    ),
    "unknown table in a station file": Bad(
        {"pack-1.toml": PACK_TOML + "\n[extras]\nx = 1\n"},
        [("pack-1.toml", "extras", "unknown key")],
    ),
    "devices spelt inside [station]": Bad(
        {"pack-1.toml": replace(PACK_TOML, "[station]\n", "[station]\ndevices = {}\n")},
        [("pack-1.toml", "station.devices", "unknown key")],
    ),
    "wrong type: string for an integer": Bad(
        {"line.toml": replace(LINE_TOML, "[hub]\n", '[hub]\nkeepalive_s = "30"\n')},
        [("line.toml", "hub.keepalive_s", "valid integer (got '30')")],
    ),
    "wrong type: list item": Bad(
        {"pack-1.toml": replace(PACK_TOML, '["pack"]', '["pack", 3]')},
        [("pack-1.toml", "station.capabilities.1", "valid string (got 3)")],
    ),
    "wrong type: string for a list": Bad(
        {"pack-1.toml": replace(PACK_TOML, '["pack"]', '"pack"')},
        [("pack-1.toml", "station.capabilities", "must be an array")],
    ),
    "wrong type: value for a table": Bad(
        {"line.toml": "http = 8080\n" + LINE_TOML},
        [("line.toml", "http", "must be a table")],
    ),
    "out of range": Bad(
        {"line.toml": replace(LINE_TOML, "[hub]\n", "[hub]\nkeepalive_s = 900\n")},
        [("line.toml", "hub.keepalive_s", "less than or equal to 600 (got 900)")],
    ),
    "bad site pattern": Bad(
        {"line.toml": replace(LINE_TOML, 'site = "s1"', 'site = "hz 01"')},
        [("line.toml", "line.site", "should match pattern")],
    ),
    "missing [line]": Bad(
        {"line.toml": "[hub]" + LINE_TOML.split("[hub]", 1)[1]},
        [("line.toml", "line", "missing required key")],
    ),
    "bad time zone": Bad(
        {"line.toml": replace(LINE_TOML, 'line = "l1"', 'line = "l1"\ntimezone = "Mars/Base"')},
        [("line.toml", "line.timezone", "unknown time zone 'Mars/Base'")],
    ),
    "bad url scheme": Bad(
        {"line.toml": replace(LINE_TOML, "mqtt://broker.local", "http://broker.local")},
        [("line.toml", "hub.url", "scheme is not mqtt or mqtts")],
    ),
    "bad url port": Bad(
        {"line.toml": replace(LINE_TOML, "mqtt://broker.local", "mqtt://broker.local:70000")},
        [("line.toml", "hub.url", "bad port (Port out of range")],
    ),
    "bad url without host": Bad(
        {"line.toml": replace(LINE_TOML, "mqtt://broker.local", "mqtt://:1883")},
        [("line.toml", "hub.url", "no host")],
    ),
    "unknown transport": Bad(
        {"line.toml": replace(LINE_TOML, "[hub]\n", '[hub]\ntransport = "pigeon"\n')},
        [("line.toml", "hub.transport", "'mqtt', 'http' or 'none' (got 'pigeon')")],
    ),
    "an http hub with an mqtt url": Bad(
        {"line.toml": replace(LINE_TOML, "[hub]\n", '[hub]\ntransport = "http"\n')},
        [("line.toml", "hub.url", "scheme is not http or https")],
    ),
    "a password in line.toml": Bad(
        {
            "line.toml": replace(
                LINE_TOML, "[hub]\n", '[hub]\nusername = "gw"\npassword = "s3cret"\n'
            )
        },
        [("line.toml", "hub.password", "put it in a file and name it with password_file")],
    ),
    "a client certificate without its key": Bad(
        {"line.toml": replace(LINE_TOML, "[hub]\n", '[hub]\ncert_file = "gw.crt"\n')},
        [("line.toml", "hub", "cert_file and key_file go together")],
    ),
    "duplicate operator badge": Bad(
        {"line.toml": LINE_TOML + '\n[[operators]]\nbadge = "OP-1"\nname = "Again"\n'},
        [("line.toml", "operators.2.badge", "duplicate badge 'OP-1' (also operators.0)")],
    ),
    "bad badge pattern in line.toml": Bad(
        {"line.toml": replace(LINE_TOML, '"OP-2"', '"2"')},
        [("line.toml", "operators.1.badge", "should match pattern")],
    ),
    "duplicate station id": Bad(
        {"print-2.toml": PRINT_TOML},
        [("print-2.toml", "station.id", "duplicate station id 'print-1' (also in print-1.toml)")],
    ),
    "unknown operator badge": Bad(
        {"print-1.toml": replace(PRINT_TOML, '["OP-1"]', '["OP-1", "OP-9"]')},
        [("print-1.toml", "station.operators.1", "unknown operator badge 'OP-9'")],
    ),
    "empty operator list": Bad(
        {"print-1.toml": replace(PRINT_TOML, '["OP-1"]', "[]")},
        [("print-1.toml", "station.operators", "omit the key")],
    ),
    "duplicate capability": Bad(
        {"pack-1.toml": replace(PACK_TOML, '["pack"]', '["pack", "pack"]')},
        [("pack-1.toml", "station.capabilities", "duplicate capability: pack")],
    ),
    "no capability": Bad(
        {"pack-1.toml": replace(PACK_TOML, '["pack"]', "[]")},
        [("pack-1.toml", "station.capabilities", "at least 1 item")],
    ),
    "bad capability pattern": Bad(
        {"pack-1.toml": replace(PACK_TOML, '["pack"]', '["Pack"]')},
        [("pack-1.toml", "station.capabilities.0", "should match pattern")],
    ),
    "unknown device kind": Bad(
        {"pack-1.toml": replace(PACK_TOML, '"modbus_scale"', '"scale"')},
        [("pack-1.toml", "devices.scale.kind", "unknown kind 'scale'")],
    ),
    "bad device name": Bad(
        {"pack-1.toml": replace(PACK_TOML, "[devices.scale]", '[devices."my scale"]')},
        [("pack-1.toml", "devices.my scale", "bad name")],
    ),
    "two scales with one device id on one RS-485 line": Bad(
        {
            "pack-1.toml": RTU_SCALE.format(id="pack-1", baud=9600),
            "pack-2.toml": RTU_SCALE.format(id="pack-2", baud=9600),
        },
        [("pack-2.toml", "devices.scale.device_id", "device_id 1 on /dev/ttyUSB0 is also")],
    ),
    "scales on one RS-485 line at different speeds": Bad(
        {
            "pack-1.toml": RTU_SCALE.format(id="pack-1", baud=9600),
            "pack-2.toml": RTU_SCALE.format(id="pack-2", baud=19200).replace(
                "device_id = 1", "device_id = 2"
            ),
        },
        [("pack-2.toml", "devices.scale", "disagree on the line settings")],
    ),
    "missing [station]": Bad(
        {"pack-1.toml": PACK_TOML.split("\n\n")[1]},
        [("pack-1.toml", "station", "missing table [station]")],
    ),
    "TOML syntax error": Bad(
        {"pack-1.toml": '[station]\nid = "pack-1\n'},
        [("pack-1.toml", "line 2", "invalid TOML")],
    ),
    "missing line.toml": Bad(
        {"line.toml": None},
        [("line.toml", "-", "file not found")],
    ),
    "no station": Bad(
        {"print-1.toml": None, "pack-1.toml": None},
        [(".", "-", "no station")],
    ),
    "every problem in every file": Bad(
        {
            "line.toml": replace(
                replace(LINE_TOML, 'site = "s1"', 'site = "s/1"'), "[hub]\n", "[hub]\nqos = 1\n"
            ),
            "print-1.toml": "[station\n",
            "pack-1.toml": replace(
                replace(PACK_TOML, '["pack"]', '["pack", 7]'), '"modbus_scale"', "1"
            ),
            # same id as pack-1.toml, and a badge line.toml does not know
            "pack-2.toml": replace(PACK_TOML, "[station]\n", '[station]\noperators = ["OP-7"]\n'),
        },
        [
            ("line.toml", "line.site", "pattern"),
            ("line.toml", "hub.qos", "unknown key"),
            ("pack-1.toml", "station.capabilities.1", "valid string"),
            ("pack-1.toml", "devices.scale.kind", "'opcua_machine'"),
            ("pack-2.toml", "station.id", "duplicate station id 'pack-1'"),
            ("pack-2.toml", "station.operators.0", "unknown operator badge 'OP-7'"),
            ("print-1.toml", "line 1", "invalid TOML"),
        ],
    ),
}


@pytest.mark.parametrize("case", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_bad_config_is_located(tmp_path: Path, case: Bad) -> None:
    problems = load_problems(write_line(tmp_path / "line", case.changes))
    assert [(p.file, p.path) for p in problems] == [(f, p) for f, p, _ in case.expected]
    for problem, (_, _, message) in zip(problems, case.expected, strict=True):
        assert message in problem.message, str(problem)


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert load_problems(missing) == [
        ConfigProblem(str(missing), "-", "config folder not found (or not a folder)")
    ]


def test_problem_and_error_text() -> None:
    problems = [
        ConfigProblem("line.toml", "hub.keepalive_s", "too big"),
        ConfigProblem("a.toml", "station.id", "duplicate"),
    ]
    assert str(problems[0]) == "line.toml: hub.keepalive_s: too big"
    assert (
        str(ConfigError(problems))
        == "line.toml: hub.keepalive_s: too big\na.toml: station.id: duplicate"
    )


def test_check_config_reports_every_problem(tmp_path: Path) -> None:
    folder = write_line(tmp_path / "line", BAD_CASES["every problem in every file"].changes)
    expected = [str(p) for p in load_problems(folder)]
    out, err = io.StringIO(), io.StringIO()
    assert check_config(folder, out, err) == 78
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == expected
    assert len(expected) == 7


def test_device_files_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    secure = PRINT_TOML.replace('security_policy = "None"\nallow_insecure = true\n', "").replace(
        'namespace_uri = "urn:example:printer"\n',
        'namespace_uri = "urn:example:printer"\ncertificate = "pki/gw.der"\n'
        'private_key = "/etc/linegate/pki/gw.pem"\n',
    )
    config = load_line_config(write_line(tmp_path / "cfg", {"print-1.toml": secure}))
    machine = config.stations["print-1"].devices["machine"]
    assert isinstance(machine, OpcUaMachineConfig)
    assert machine.certificate == str(tmp_path / "cfg" / "pki" / "gw.der")
    assert machine.private_key == "/etc/linegate/pki/gw.pem"


def test_a_secret_in_line_toml_is_refused_without_being_repeated(tmp_path: Path) -> None:
    folder = write_line(
        tmp_path / "line",
        {
            "line.toml": replace(
                LINE_TOML, "[hub]\n", '[hub]\nusername = "gw"\npassword = "s3cret"\n'
            )
        },
    )
    out, err = io.StringIO(), io.StringIO()
    assert check_config(folder, out, err) == 78
    assert "password_file" in err.getvalue()
    assert "s3cret" not in err.getvalue() + out.getvalue()
