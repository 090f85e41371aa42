"""Read a line's config folder into LineConfig, reporting every problem with file and key."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from drivers.modbus_scale.config import ModbusScaleConfig
from gateway.config.alerts import AlarmsSection, alarm_problems
from gateway.config.calendar import Shift
from gateway.config.line import (
    BADGE_PATTERN,
    DEVICE_KINDS,
    AccessSection,
    CostsSection,
    HttpSection,
    HubSection,
    LineConfig,
    LineSection,
    Operator,
    PlannerSection,
    Policies,
    RetentionSection,
    StationConfig,
    StoreSection,
)
from gateway.config.picking import PickingSection

__all__ = [
    "EX_CONFIG",
    "LINE_FILE",
    "ConfigError",
    "ConfigProblem",
    "check_config",
    "load_line_config",
]

LINE_FILE = "line.toml"
EX_CONFIG = 78  # sysexits.h: configuration error; os.EX_CONFIG exists only on Unix

# A problem about a whole file or the folder has no key: this stands in the path column.
WHOLE = "-"
FOLDER = "."

_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_STATION_KEYS = ("station", "devices")
_BADGE = re.compile(BADGE_PATTERN)

_M = TypeVar("_M", bound=BaseModel)
_Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class ConfigProblem:
    """One problem: the file (relative to the config folder), the dotted key, what is wrong."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


class ConfigError(Exception):
    """The config folder has problems; str() lists them one per line."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__(problems)
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class _LineFile(BaseModel):
    """The shape of line.toml: LineConfig without what comes from elsewhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    line: LineSection
    hub: HubSection = HubSection()
    store: StoreSection = StoreSection()
    http: HttpSection = HttpSection()
    policies: Policies = Policies()
    planner: PlannerSection = PlannerSection()
    access: AccessSection = AccessSection()
    costs: CostsSection = CostsSection()
    picking: PickingSection = PickingSection()
    retention: RetentionSection = RetentionSection()
    alarms: AlarmsSection = AlarmsSection()
    operators: list[Operator] = []
    shifts: list[Shift] = []


@dataclass
class _StationFile:
    name: str
    doc: dict[str, Any] | None  # None: the file could not be read as TOML
    station: StationConfig | None  # None: it did not validate


def load_line_config(config_dir: Path, *, check_tls_at: datetime | None = None) -> LineConfig:
    """Load line.toml and every other *.toml (a station) of config_dir; raise ConfigError.

    With ``check_tls_at`` (check-config, run), the station API's certificate and key are
    read and checked as at that instant. The other commands leave them alone: they may run
    as a user who cannot read the key, and need no TLS of their own."""
    if not config_dir.is_dir():
        raise ConfigError(
            [ConfigProblem(str(config_dir), WHOLE, "config folder not found (or not a folder)")]
        )
    problems: list[ConfigProblem] = []

    line_doc = _read_toml(config_dir, LINE_FILE, problems)
    line_file: _LineFile | None = None
    if line_doc is not None:
        line_file = _validate(_LineFile, line_doc, LINE_FILE, _plain_path, problems)
        _check_unique_badges(line_doc, problems)
    if line_doc is not None and check_tls_at is not None:
        _check_tls(line_doc, config_dir.resolve(), check_tls_at, problems)

    station_files: list[_StationFile] = []
    for path in sorted(config_dir.glob("*.toml")):
        if path.name == LINE_FILE or not path.is_file():
            continue
        doc = _read_toml(config_dir, path.name, problems)
        station = None if doc is None else _validate_station(doc, path.name, problems)
        station_files.append(_StationFile(path.name, doc, station))

    if not station_files:
        problems.append(
            ConfigProblem(
                FOLDER, WHOLE, f"no station: add one *.toml per station beside {LINE_FILE}"
            )
        )
    _check_unique_station_ids(station_files, problems)
    _check_shared_buses(station_files, problems)
    if line_file is not None:
        _check_shift_stations(line_file, station_files, problems)
        _check_costs(line_file, station_files, problems)
        _check_pins(line_file, problems)
        # The alarms' secret files are read when the TLS files are (check-config, run).
        problems.extend(
            ConfigProblem(LINE_FILE, f"alarms.{key}", why)
            for key, why in alarm_problems(
                line_file.alarms,
                (s.name for s in line_file.shifts),
                config_dir.resolve() if check_tls_at is not None else None,
            )
        )
    if line_doc is not None:
        _check_station_badges(line_doc, station_files, problems)

    if problems or line_file is None:
        # Cross-file checks ran last; group each file's problems together for the reader.
        order = {LINE_FILE: 0} | {sf.name: i for i, sf in enumerate(station_files, start=1)}
        problems.sort(key=lambda p: order.get(p.file, len(order)))
        raise ConfigError(problems)
    stations = {
        s.station.id: _resolve_files(s.station, config_dir.resolve())
        for s in station_files
        if s.station is not None
    }
    hub = _resolve_hub_files(line_file.hub, config_dir.resolve())
    http = _resolve_http_files(line_file.http, config_dir.resolve())
    try:
        return LineConfig(
            **(dict(line_file) | {"hub": hub, "http": http}),
            stations=stations,
            config_dir=config_dir.resolve(),
        )
    except ValidationError as exc:
        # Every rule of LineConfig is checked above with its location; this is the backstop.
        raise ConfigError(
            [ConfigProblem(FOLDER, WHOLE, _message(err)) for err in exc.errors()]
        ) from None


def check_config(config_dir: Path, out: TextIO, err: TextIO, now: datetime | None = None) -> int:
    """The check-config command: 0 and an ok line, or 78 and every problem one per line.
    ``now`` (aware; default: the system's time) is when the TLS certificate must be valid."""
    now = datetime.now(UTC) if now is None else now
    try:
        config = load_line_config(config_dir, check_tls_at=now)
    except ConfigError as exc:
        for problem in exc.problems:
            err.write(f"{problem}\n")
        return EX_CONFIG
    ids = ", ".join(config.stations)
    out.write(f"ok: {config.gateway_id}, {len(config.stations)} stations ({ids})\n")
    if config.http.tls is not None:
        from gateway.config.tls import certificate_names  # cryptography: only when asked

        names, until = certificate_names(config.http.tls, config.config_dir)
        out.write(
            f"station API over TLS: certificate for {', '.join(names) or 'no name'}, "
            f"valid until {until:%Y-%m-%d}\n"
        )
    return 0


def _read_toml(config_dir: Path, name: str, problems: list[ConfigProblem]) -> dict[str, Any] | None:
    path = config_dir / name
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        problems.append(ConfigProblem(name, WHOLE, "file not found"))
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError only carries the position in its message.
        text = str(exc)
        where = WHOLE
        if match := _TOML_AT.search(text):
            where = f"line {match.group(1)}"
            text = f"{text[: match.start()]} (column {match.group(2)})"
        problems.append(ConfigProblem(name, where, f"invalid TOML: {text}"))
    except UnicodeDecodeError as exc:
        problems.append(ConfigProblem(name, WHOLE, f"not UTF-8 text: {exc.reason}"))
    except OSError as exc:
        problems.append(ConfigProblem(name, WHOLE, f"cannot read: {exc.strerror or exc}"))
    return None


def _validate_station(
    doc: dict[str, Any], name: str, problems: list[ConfigProblem]
) -> StationConfig | None:
    before = len(problems)
    for key in doc:
        if key not in _STATION_KEYS:
            problems.append(ConfigProblem(name, key, "unknown key"))
    table = doc.get("station")
    if table is None:
        problems.append(ConfigProblem(name, "station", "missing table [station]"))
        return None
    if not isinstance(table, dict):
        problems.append(ConfigProblem(name, "station", "must be a table"))
        return None
    if "devices" in table:
        # Devices sit in their own [devices.NAME] tables; refuse the other spelling rather
        # than letting it override them.
        problems.append(
            ConfigProblem(
                name, "station.devices", "unknown key (devices are [devices.NAME] tables)"
            )
        )
        table = {k: v for k, v in table.items() if k != "devices"}
    merged = {**table, "devices": doc.get("devices", {})}
    station = _validate(StationConfig, merged, name, _station_path, problems)
    return station if len(problems) == before else None


def _validate(
    model: type[_M],
    data: Mapping[str, Any],
    name: str,
    to_path: Callable[[_Loc], str],
    problems: list[ConfigProblem],
) -> _M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(
            ConfigProblem(name, to_path(_located(err)), _message(err)) for err in exc.errors()
        )
        return None


def _located(err: ErrorDetails) -> _Loc:
    # A tagged union's error sits on the table; the mistake is in its tag key ("kind").
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        key = str((err.get("ctx") or {}).get("discriminator", "kind")).strip("'")
        return (*err["loc"], key)
    return tuple(err["loc"])


def _dotted(loc: _Loc) -> str:
    # A bad dict key (a device name) is reported by pydantic as (..., key, "[key]").
    parts = loc[:-1] if loc and loc[-1] == "[key]" else loc
    return ".".join(str(part) for part in parts) or WHOLE


def _plain_path(loc: _Loc) -> str:
    return _dotted(loc)


def _station_path(loc: _Loc) -> str:
    # StationConfig merges [station] with the [devices.NAME] tables; map back to the file.
    if loc and loc[0] == "devices":
        return _dotted(_without_tags(loc))
    return ".".join(("station", *(str(part) for part in loc)))


# Tagged unions put the tag they tried in the error's location ("devices.m.opcua_machine.url",
# "job.method.method"); the file has no such level.
_TAGGED = {2: frozenset(DEVICE_KINDS)}
_JOB_MODES = frozenset({"method", "writes"})


def _without_tags(loc: _Loc) -> _Loc:
    parts = list(loc)
    if len(parts) > 2 and parts[2] in _TAGGED[2]:
        del parts[2]
    out: list[int | str] = []
    for part in parts:
        if out and out[-1] == "job" and part in _JOB_MODES:
            continue
        out.append(part)
    return tuple(out)


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table"
    if kind == "list_type":
        return "must be an array"
    ctx = err.get("ctx") or {}
    key = str(ctx.get("discriminator", "kind")).strip("'")
    if kind == "union_tag_invalid":
        return f"unknown {key} {ctx.get('tag')!r}: one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"missing required key ({key}: one of the device kinds)"
    text = err["msg"]
    if kind == "value_error":
        return text.removeprefix("Value error, ")
    if err["loc"] and err["loc"][-1] == "[key]":
        text = f"bad name: {text}"
    value = err.get("input")
    if isinstance(value, str | int | float | bool):
        text = f"{text} (got {value!r})"
    return text


def _check_unique_badges(line_doc: dict[str, Any], problems: list[ConfigProblem]) -> None:
    first: dict[str, int] = {}
    for index, badge in _raw_badges(line_doc):
        if badge in first:
            problems.append(
                ConfigProblem(
                    LINE_FILE,
                    f"operators.{index}.badge",
                    f"duplicate badge {badge!r} (also operators.{first[badge]})",
                )
            )
        else:
            first[badge] = index


def _check_unique_station_ids(files: list[_StationFile], problems: list[ConfigProblem]) -> None:
    first: dict[str, str] = {}
    for sf in files:
        table = sf.doc.get("station") if sf.doc is not None else None
        station_id = table.get("id") if isinstance(table, dict) else None
        if not isinstance(station_id, str):
            continue  # unreadable or missing ids are reported by validation
        if station_id in first:
            problems.append(
                ConfigProblem(
                    sf.name,
                    "station.id",
                    f"duplicate station id {station_id!r} (also in {first[station_id]})",
                )
            )
        else:
            first[station_id] = sf.name


# Files a device reads (certificates, keys, secrets): relative to the config folder, as
# the store path is, so a folder copied to /etc/linegate keeps working.
_FILE_KEYS = ("certificate", "private_key", "server_certificate", "password_file")


def _resolve_hub_files(hub: HubSection, config_dir: Path) -> HubSection:
    """The hub's TLS files relative to the config folder (secret files are resolved when
    read: they may be systemd credentials, see gateway/config/secrets.py)."""
    update = {
        key: str(config_dir / value)
        for key in ("ca_file", "cert_file", "key_file")
        if isinstance(value := getattr(hub, key), str) and not Path(value).is_absolute()
    }
    return hub.model_copy(update=update) if update else hub


def _resolve_http_files(http: HttpSection, config_dir: Path) -> HttpSection:
    """The station API's certificate relative to the config folder (its key is found when
    read: it may be a systemd credential, see gateway/config/tls.py)."""
    tls = http.tls
    if tls is None or Path(tls.cert_file).is_absolute():
        return http
    return http.model_copy(
        update={"tls": tls.model_copy(update={"cert_file": str(config_dir / tls.cert_file)})}
    )


def _check_tls(
    line_doc: dict[str, Any], config_dir: Path, now: datetime, problems: list[ConfigProblem]
) -> None:
    """The certificate and key of [http.tls], also when line.toml has other mistakes (a
    mistake in [http] itself is already reported)."""
    try:
        tls = HttpSection.model_validate(line_doc.get("http", {})).tls
    except ValidationError:
        return
    if tls is None:
        return
    # Imported here: cryptography costs every other command 70 ms it has no use for.
    from gateway.config.tls import check_tls_files

    problems.extend(
        ConfigProblem(LINE_FILE, f"http.tls.{p.key}", p.message)
        for p in check_tls_files(tls, config_dir, now)
    )


def _resolve_files(station: StationConfig, config_dir: Path) -> StationConfig:
    devices = {}
    for name, device in station.devices.items():
        update = {
            key: str(config_dir / value)
            for key in _FILE_KEYS
            if isinstance(value := getattr(device, key, None), str)
            and not Path(value).is_absolute()
        }
        devices[name] = device.model_copy(update=update) if update else device
    return station.model_copy(update={"devices": devices})


def _check_pins(line: _LineFile, problems: list[ConfigProblem]) -> None:
    """A line that asks PINs needs one for every operator, or those without one could not
    sign in at the shift's start."""
    if not line.access.pin_required:
        return
    without = [op.badge for op in line.operators if op.pin_hash is None]
    if without:
        problems.append(
            ConfigProblem(
                LINE_FILE,
                "access.pin_required",
                f"operators {', '.join(without)} have no pin_hash (make one with "
                "`linegate users pin-hash`), so they could not sign in",
            )
        )


def _check_shift_stations(
    line: _LineFile, files: list[_StationFile], problems: list[ConfigProblem]
) -> None:
    known = {sf.station.id for sf in files if sf.station is not None}
    for index, shift in enumerate(line.shifts):
        for k, station in enumerate(shift.stations or ()):
            if station not in known:
                problems.append(
                    ConfigProblem(
                        LINE_FILE,
                        f"shifts.{index}.stations.{k}",
                        f"unknown station {station!r}: no station file has this id",
                    )
                )


def _check_costs(line: _LineFile, files: list[_StationFile], problems: list[ConfigProblem]) -> None:
    """[costs] rates name stations and capabilities the line has (a typo would silently
    cost that station at the line's rate), and a machine rate only where there is one."""
    stations = {sf.station.id: sf.station for sf in files if sf.station is not None}
    for station_id, rates in line.costs.stations.items():
        station = stations.get(station_id)
        if station is None:
            problems.append(
                ConfigProblem(
                    LINE_FILE,
                    f"costs.stations.{station_id}",
                    f"unknown station {station_id!r}: no station file has this id",
                )
            )
        elif rates.machine_per_hour is not None and station.machine is None:
            problems.append(
                ConfigProblem(
                    LINE_FILE,
                    f"costs.stations.{station_id}.machine_per_hour",
                    f"station {station_id!r} has no machine (no opcua_machine device): "
                    "no machine time is counted there",
                )
            )
    offered = {c for station in stations.values() for c in station.capabilities}
    for capability in line.costs.capabilities:
        if capability not in offered:
            problems.append(
                ConfigProblem(
                    LINE_FILE,
                    f"costs.capabilities.{capability}",
                    f"no station has capability {capability!r}",
                )
            )


def _check_shared_buses(files: list[_StationFile], problems: list[ConfigProblem]) -> None:
    """Scales on one RS-485 line (or behind one Modbus TCP gateway) share its settings,
    and each needs its own device id there."""
    lines: dict[tuple[str, str], tuple[tuple[object, ...], str]] = {}
    ids: dict[tuple[str, int], str] = {}
    for sf in files:
        if sf.station is None:
            continue
        for name, device in sf.station.devices.items():
            if not isinstance(device, ModbusScaleConfig):
                continue
            where = f"{sf.name}: devices.{name}"
            line = (device.transport, device.endpoint)
            settings = (device.baudrate, device.parity, device.stopbits, device.bytesize)
            if line in lines and lines[line][0] != settings:
                first, other = lines[line]
                problems.append(
                    ConfigProblem(
                        sf.name,
                        f"devices.{name}",
                        f"scales on {device.endpoint} disagree on the line settings "
                        f"(baudrate, parity, stopbits, bytesize): {settings} here, "
                        f"{first} in {other}",
                    )
                )
                continue
            lines.setdefault(line, (settings, where))
            key = (device.endpoint, device.device_id)
            if key in ids:
                problems.append(
                    ConfigProblem(
                        sf.name,
                        f"devices.{name}.device_id",
                        f"device_id {device.device_id} on {device.endpoint} is also {ids[key]}: "
                        "each device on one line needs its own id",
                    )
                )
            else:
                ids[key] = where


def _check_station_badges(
    line_doc: dict[str, Any], files: list[_StationFile], problems: list[ConfigProblem]
) -> None:
    if not isinstance(line_doc.get("operators", []), list):
        return  # already reported; every badge would look unknown
    defined = {badge for _, badge in _raw_badges(line_doc)}
    for sf in files:
        table = sf.doc.get("station") if sf.doc is not None else None
        listed = table.get("operators") if isinstance(table, dict) else None
        if not isinstance(listed, list):
            continue
        for index, badge in enumerate(listed):
            # A badge of the wrong shape is already reported by validation.
            if isinstance(badge, str) and _BADGE.fullmatch(badge) and badge not in defined:
                problems.append(
                    ConfigProblem(
                        sf.name,
                        f"station.operators.{index}",
                        f"unknown operator badge {badge!r}: not in the [[operators]] of "
                        f"{LINE_FILE}",
                    )
                )


def _raw_badges(line_doc: dict[str, Any]) -> list[tuple[int, str]]:
    # Read from the raw document so that one bad operator entry does not hide the others.
    operators = line_doc.get("operators", [])
    if not isinstance(operators, list):
        return []
    return [
        (index, op["badge"])
        for index, op in enumerate(operators)
        if isinstance(op, dict) and isinstance(op.get("badge"), str)
    ]
