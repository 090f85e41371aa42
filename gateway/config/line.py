"""Typed models of a line's configuration: line.toml plus one TOML file per station."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drivers.barcode_hid.config import HidScannerConfig
from drivers.barcode_serial.config import SerialScannerConfig
from drivers.label_printer.config import LabelPrinterConfig
from drivers.modbus_scale.config import ModbusScaleConfig
from drivers.opcua_machine.config import OpcUaMachineConfig
from gateway.config.alerts import AlarmsSection, alarm_problems
from gateway.config.calendar import Shift
from gateway.config.picking import PickingSection

__all__ = [
    "AccessSection",
    "CostRates",
    "CostsSection",
    "DeviceConfig",
    "DeviceKind",
    "HttpSection",
    "HttpTls",
    "HubSection",
    "LineConfig",
    "LineSection",
    "Operator",
    "PinAction",
    "Policies",
    "RetentionSection",
    "StationConfig",
    "StoreSection",
]

# Site and line become MQTT topic segments and the gateway id (hub-protocol.md, Addressing).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
BADGE_PATTERN = r"^OP-[A-Za-z0-9]{1,16}$"
CAPABILITY_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
DEFAULT_MQTT_PORT = 1883
DEFAULT_MQTTS_PORT = 8883

Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Badge = Annotated[str, StringConstraints(pattern=BADGE_PATTERN)]
Capability = Annotated[str, StringConstraints(pattern=CAPABILITY_PATTERN)]
DeviceKind = Literal[
    "opcua_machine", "modbus_scale", "barcode_serial", "barcode_hid", "label_printer"
]
DEVICE_KINDS: tuple[DeviceKind, ...] = (
    "opcua_machine",
    "modbus_scale",
    "barcode_serial",
    "barcode_hid",
    "label_printer",
)

# strict: TOML values are already typed, so "30" for an integer is a mistake to report, not
# a value to coerce.
_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)


def _duplicates(items: list[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for item in items:
        if item in seen and item not in dups:
            dups.append(item)
        seen.add(item)
    return dups


# The languages the screens and the operators' messages come in.
Language = Literal["zh-CN", "en"]


class LineSection(BaseModel):
    """[line]: who this gateway is and the local time its people work in."""

    model_config = _MODEL_CONFIG

    site: Ident
    line: Ident
    name: str = ""
    timezone: str = "UTC"
    # The language of the line's screens (boards, terminals) unless an operator or a
    # board asks for another: the catalogs the gateway carries (gateway/i18n).
    language: Language = "zh-CN"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA key such as 'Asia/Shanghai')"
            ) from None
        return value

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class HubSection(BaseModel):
    """[hub]: the link to the central hub, over MQTT or HTTP; "none" runs the line offline.

    ``mqtts://`` and ``https://`` speak TLS, with the server's certificate and host name
    verified against ``ca_file`` (or the system's CAs). Secrets never sit in this file:
    ``password_file`` and ``token_file`` name files (relative to the config folder) or
    systemd credentials (LoadCredential=, found in $CREDENTIALS_DIRECTORY)."""

    model_config = _MODEL_CONFIG

    transport: Literal["mqtt", "http", "none"] = "mqtt"
    url: str = f"mqtt://127.0.0.1:{DEFAULT_MQTT_PORT}"
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    keepalive_s: int = Field(default=30, ge=5, le=600)
    # TLS: the CA that signed the hub's certificate (default: the system's), and this
    # gateway's own certificate and key when the hub asks for one (mutual TLS).
    ca_file: str | None = Field(default=None, min_length=1)
    cert_file: str | None = Field(default=None, min_length=1)
    key_file: str | None = Field(default=None, min_length=1)
    # Off only for a lab hub with a self-signed certificate: it accepts any certificate.
    verify: bool = True
    username: str | None = Field(default=None, min_length=1, max_length=256)
    password_file: str | None = Field(default=None, min_length=1)
    # HTTP: the bearer token, and how often orders and master data are asked for.
    token_file: str | None = Field(default=None, min_length=1)
    poll_s: float = Field(default=2.0, gt=0, le=3600)
    masterdata_poll_s: float = Field(default=60.0, gt=0, le=86_400)
    # order.progress goes out on every change of an order's stage, and when a new plan
    # moves its predicted completion by more than this many minutes (contract 1.1).
    progress_step_min: float = Field(default=15.0, gt=0, le=1440)
    # Secrets written into the file itself are refused, with where they belong instead.
    password: None = None
    token: None = None

    @field_validator("password", "token", mode="before")
    @classmethod
    def _no_secrets_here(cls, value: object, info: ValidationInfo) -> None:
        raise ValueError(
            f"a {info.field_name} does not belong in line.toml (it is readable and gets "
            f"copied): put it in a file and name it with {info.field_name}_file"
        )

    @field_validator("url")
    @classmethod
    def _url_fits_transport(cls, value: str, info: ValidationInfo) -> str:
        transport = info.data.get("transport", "mqtt")
        if transport != "none":
            _split_hub_url(value, transport)
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "https")

    @property
    def host(self) -> str:
        host = urlsplit(self.url).hostname
        assert host is not None  # the validator refused a url without a host
        return host

    @property
    def port(self) -> int:
        default = DEFAULT_MQTTS_PORT if self.tls else DEFAULT_MQTT_PORT
        return urlsplit(self.url).port or default


_SCHEMES = {"mqtt": ("mqtt", "mqtts"), "http": ("http", "https")}


def _split_hub_url(url: str, transport: str) -> SplitResult:
    schemes = _SCHEMES[transport]
    shape = " or ".join(f"{s}://host[:port]" for s in schemes)
    if transport == "http":
        shape = " or ".join(f"{s}://host[:port][/base]" for s in schemes)

    def bad(why: str) -> ValueError:
        return ValueError(f"{why}: expected {shape}, got {url!r}")

    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise bad(f"bad port ({exc})") from None
    if parts.scheme not in schemes:
        raise bad(f"scheme is not {' or '.join(schemes)}")
    if not parts.hostname:
        raise bad("no host")
    if port == 0:
        raise bad("port 0")
    # Credentials in the URL would be a secret in the file; queries mean nothing here.
    extra_path = transport == "mqtt" and parts.path not in ("", "/")
    if parts.username is not None or extra_path or parts.query or parts.fragment:
        raise bad("extra parts")
    return parts


class StoreSection(BaseModel):
    """[store]: the SQLite database; a relative path is relative to the config folder."""

    model_config = _MODEL_CONFIG

    path: str = "linegate.db"

    @field_validator("path")
    @classmethod
    def _names_a_file(cls, value: str) -> str:
        if not Path(value).name:
            raise ValueError(f"store path {value!r} does not name a file")
        return value


class HttpTls(BaseModel):
    """[http.tls]: the station API speaks HTTPS, and only HTTPS, on [http] port
    (gateway/config/tls.py checks the files)."""

    model_config = _MODEL_CONFIG

    # PEM: the gateway's certificate, then the intermediate CAs' if any; relative to the
    # config folder.
    cert_file: str = Field(min_length=1)
    # PEM, not encrypted (the gateway starts unattended): relative to the config folder,
    # or a systemd credential (LoadCredential=), found as the hub's secret files are.
    key_file: str = Field(min_length=1)


class HttpSection(BaseModel):
    """[http]: where the web UI and API listen, over TLS or not, and whether the API shows
    its map (the docs)."""

    model_config = _MODEL_CONFIG

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8080, ge=0, le=65535)  # 0 = pick a free port (tests, demo)
    # Off by default: plain HTTP is fine on 127.0.0.1; terminals on the floor network need
    # it (README, Security).
    tls: HttpTls | None = None
    # With tls: plain HTTP on this port sends a GET to the same path over HTTPS (a
    # terminal's old http:// bookmark) and refuses anything else. Left out: no plain HTTP.
    redirect_port: int | None = Field(default=None, ge=0, le=65535)
    # /api/docs, /redoc and /api/openapi.json: a map of every route, for developers (the
    # demo turns it on); a line's gateway need not hand it to whoever asks.
    api_docs: bool = False

    @field_validator("redirect_port")
    @classmethod
    def _redirect_needs_tls(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        # A [http.tls] with mistakes of its own is not in info.data: those are reported.
        if "tls" in info.data and info.data["tls"] is None:
            raise ValueError(
                "redirect_port needs [http.tls]: without TLS, port itself answers plain HTTP"
            )
        if value != 0 and value == info.data.get("port"):
            raise ValueError(f"redirect_port is port ({value}): plain HTTP needs a port of its own")
        return value

    @property
    def tls_enabled(self) -> bool:
        """The station API speaks HTTPS only: a cookie it sets must be Secure."""
        return self.tls is not None


class Policies(BaseModel):
    """[policies]: the line's rules for accepting and running orders."""

    model_config = _MODEL_CONFIG

    max_units_per_order: int = Field(default=1000, ge=1, le=100_000)
    # Characters of one personalisation value (an engraving, a print text): longer ones are
    # refused (TOO_LONG). Terminals load the text with every change of the station's screen.
    max_personalization_chars: int = Field(default=2048, ge=16, le=65_536)
    lot_expiry_margin_days: int = Field(default=0, ge=0)
    dispatch_rule: Literal["ship_by_priority"] = "ship_by_priority"
    shipping_label_prefix: str = Field(default="SHP", pattern=r"^[A-Za-z0-9_-]{1,16}$")
    # kpi.snapshot periods, aligned to the clock (3600: on every full hour).
    kpi_interval_s: int = Field(default=3600, ge=60, le=86_400)
    # Device reconnects: the first retry after device_retry_initial_s, doubling up to
    # device_retry_max_s (±20 % jitter); more than device_restart_budget restarts within
    # device_restart_window_s raise an alarm (cleared when the device is back).
    device_retry_initial_s: float = Field(default=0.5, gt=0, le=60)
    device_retry_max_s: float = Field(default=30.0, gt=0, le=3600)
    device_restart_budget: int = Field(default=5, ge=0, le=1000)
    device_restart_window_s: float = Field(default=60.0, gt=0, le=86_400)

    # Storage: intake pauses (orders wait in the broker) while the data folder's disk has
    # less free space than this, so operators' actions and their events always have room;
    # an alarm when the outbox (events not yet at the hub) passes 80 % of its budget.
    disk_free_floor_mib: int = Field(default=64, ge=0, le=1_000_000)
    outbox_budget_mib: int = Field(default=1024, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _retry_bounds(self) -> Self:
        if self.device_retry_initial_s > self.device_retry_max_s:
            raise ValueError("device_retry_initial_s is more than device_retry_max_s")
        return self


class RetentionSection(BaseModel):
    """[retention]: how long the store keeps the raw history (gateway/numbers/retention.py).

    An SD card cannot hold every order forever: an order's rows (its units, tasks,
    attempts, lots, checks, defects, labels) and the line's state records are deleted once
    older than ``raw_days``, the hub has acknowledged every event up to then and the
    periods they belong to are closed; the numbers of every shift, day, week and month
    stay (their reports regenerate from them)."""

    model_config = _MODEL_CONFIG

    raw_days: int = Field(default=90, ge=1, le=36_500)
    # Intraday kpi.snapshot periods ([policies] kpi_interval_s) are kept this long.
    interval_days: int = Field(default=35, ge=1, le=36_500)


class PlannerSection(BaseModel):
    """[planner]: the CP-SAT plan of the line (gateway/planning/planner.py).

    Times in real seconds (the solver's wall time), except ``down_assumed_s`` and
    ``overrun_grace_s``, which are line time."""

    model_config = _MODEL_CONFIG

    # Off: every station's queue follows the dispatch rule alone.
    enabled: bool = True
    # A replan at least this often, and on events (orders arrived, a station down or
    # back, a shortage cleared, a task far off its standard time).
    interval_s: float = Field(default=300.0, ge=1, le=86_400)
    # Events within this long of each other make one replan.
    settle_s: float = Field(default=0.5, ge=0, le=60)
    # The solver's limits: wall time, memory of its process, search threads. The worker
    # uses at most one thread fewer than the cores it may run on (at least one), so
    # ``workers`` is a ceiling: 1 on a 2-core box whatever it says (worker_child.py).
    time_limit_s: float = Field(default=10.0, gt=0, le=600)
    memory_mib: int = Field(default=1024, ge=256, le=65_536)
    workers: int = Field(default=2, ge=1, le=16)
    # A replan ends once the solver found nothing better for this long (its first plan is
    # out long before): a solver that stopped improving gives the CPU back to the line.
    patience_s: float = Field(default=3.0, gt=0, le=600)
    # Under a CPU quota (a container's limit, systemd's CPUQuota=), the worker is paced to
    # what the gateway leaves of it, measured as it goes, less this margin for bursts of
    # the station API (gateway/planning/cpu.py).
    api_reserve_cores: float = Field(default=0.3, ge=0.05, le=64)
    # A running task past factor × its standard time (plus the grace) asks for a replan.
    overrun_factor: float = Field(default=2.0, gt=1, le=100)
    overrun_grace_s: float = Field(default=60.0, ge=0)
    # A station whose machine is faulted or offline is planned back after this long.
    down_assumed_s: int = Field(default=900, ge=0, le=86_400)
    # How many days of shifts the plan may use.
    calendar_days: int = Field(default=7, ge=1, le=60)
    # A plan older than this (no replan succeeded since) is dropped for the dispatch rule.
    stale_s: float = Field(default=1800.0, gt=0)


# An argon2id hash as argon2-cffi writes it (a PHC string):
# $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, salt and hash in base64.
_ARGON2ID = re.compile(
    r"\$argon2id\$v=19\$m=(\d{1,7}),t=(\d{1,3}),p=(\d{1,2})"
    r"\$[A-Za-z0-9+/]{8,}\$[A-Za-z0-9+/]{16,}"
)
# Each PIN check costs this memory at most (a hash pasted from elsewhere must not make one
# check take a gigabyte) and this many passes.
_PIN_HASH_MAX_KIB = 256 * 1024
_PIN_HASH_MAX_PASSES = 16


class Operator(BaseModel):
    """One [[operators]] entry: a person who logs in at a station by scanning a badge."""

    model_config = _MODEL_CONFIG

    badge: Badge
    name: str = Field(min_length=1)
    # The language this operator's terminal speaks once they sign in; none: the line's.
    language: Language | None = None
    # The operator's PIN as its argon2id hash (``linegate users pin-hash``), for the actions
    # a line asks a PIN for; none: this operator has no PIN. Kept out of repr (and logs).
    pin_hash: str | None = Field(default=None, repr=False)

    @field_validator("pin_hash", mode="before")
    @classmethod
    def _argon2id(cls, value: Any) -> Any:
        # Before pydantic's own checks, and never quoting the value: what is written here
        # by mistake is often the PIN itself, which must not end up in an error or a log.
        if value is None:
            return None
        found = _ARGON2ID.fullmatch(value) if isinstance(value, str) else None
        if found is None:
            raise ValueError(
                "not an argon2id hash: write the output of `linegate users pin-hash` here, "
                "never the PIN itself"
            )
        memory_kib, passes = int(found.group(1)), int(found.group(2))
        if memory_kib > _PIN_HASH_MAX_KIB or passes > _PIN_HASH_MAX_PASSES:
            raise ValueError(
                f"this argon2id hash asks for {memory_kib // 1024} MiB and {passes} passes "
                f"per check (at most {_PIN_HASH_MAX_KIB // 1024} MiB and "
                f"{_PIN_HASH_MAX_PASSES}): make one with `linegate users pin-hash`"
            )
        return value


# A [devices.NAME] table: its `kind` picks the driver's own config model, which lives
# with the driver (drivers/<kind>/config.py) and rejects unknown keys like the rest.
DeviceConfig = Annotated[
    OpcUaMachineConfig
    | ModbusScaleConfig
    | SerialScannerConfig
    | HidScannerConfig
    | LabelPrinterConfig,
    Field(discriminator="kind"),
]


class StationConfig(BaseModel):
    """One station file: [station] and its [devices.NAME] tables."""

    model_config = _MODEL_CONFIG

    id: Ident
    name: str = ""
    capabilities: list[Capability] = Field(min_length=1)
    operators: list[Badge] | None = None
    devices: dict[Ident, DeviceConfig] = {}

    @field_validator("capabilities")
    @classmethod
    def _unique_capabilities(cls, value: list[str]) -> list[str]:
        if dups := _duplicates(value):
            raise ValueError(f"duplicate capability: {', '.join(dups)}")
        return value

    @field_validator("operators")
    @classmethod
    def _badges(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            # An empty list would lock everyone out; "everyone" is spelt by omitting the key.
            raise ValueError("empty list: omit the key to allow every operator of the line")
        if dups := _duplicates(value):
            raise ValueError(f"duplicate badge: {', '.join(dups)}")
        return value

    def _first_device(self, kind: DeviceKind) -> str | None:
        return next((name for name, dev in self.devices.items() if dev.kind == kind), None)

    @property
    def machine(self) -> str | None:
        """Name of the station's first OPC UA machine, if any."""
        return self._first_device("opcua_machine")

    @property
    def printer(self) -> str | None:
        """Name of the station's first label printer, if any."""
        return self._first_device("label_printer")

    @property
    def machine_id(self) -> str | None:
        """The machine as the line knows it: ``station/device`` (device names are local)."""
        return f"{self.id}/{self.machine}" if self.machine else None

    @property
    def printer_id(self) -> str:
        """The label printer as the line knows it: ``station/device``."""
        return f"{self.id}/{self.printer or 'printer'}"


class PinAction(StrEnum):
    """Station actions a line may ask the operator's PIN for ([access] pin_required)."""

    LOGIN = "login"  # also a badge scanned to sign in
    LOGOUT = "logout"
    PAUSE = "pause"
    RESUME = "resume"
    COMPLETE = "complete"
    FAIL = "fail"


class AccessSection(BaseModel):
    """[access]: who may do what beyond the roles (gateway/access)."""

    model_config = _MODEL_CONFIG

    # The actions that ask the operator's PIN (header X-Operator-PIN) as well as the badge:
    # a badge can be picked up or copied, a PIN is in the operator's head. None by default.
    # Not strict: TOML gives the actions as text.
    pin_required: list[Annotated[PinAction, Strict(False)]] = []


# Money per hour, in [costs] currency.
Rate = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]


class CostRates(BaseModel):
    """[costs.capabilities.NAME] or [costs.stations.ID]: rates that replace the line's for
    that capability or station; a rate left out falls back to the next (station, then
    capability, then the line's)."""

    model_config = _MODEL_CONFIG

    labour_per_hour: Rate | None = None
    machine_per_hour: Rate | None = None


class CostsSection(BaseModel):
    """[costs]: what an hour of work costs, for order.costed (contract 1.1; the costing is
    gateway/orderbook/costing.py). Labour is paid for every second of an attempt (and of
    its changeover); a station with a machine also pays the machine's rate for them."""

    model_config = _MODEL_CONFIG

    # ISO 4217; left out: the catalog's currency (what materials' standard_cost is in).
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    labour_per_hour: Rate = 0.0
    machine_per_hour: Rate = 0.0
    capabilities: dict[Capability, CostRates] = {}
    stations: dict[Ident, CostRates] = {}

    def labour_rate(self, station: str | None, capability: str | None) -> float:
        """Per hour: the station's, else its capability's, else the line's."""
        found = (r.labour_per_hour for r in self._overrides(station, capability))
        return next((v for v in found if v is not None), self.labour_per_hour)

    def machine_rate(self, station: str | None, capability: str | None) -> float:
        """Per hour: the station's, else its capability's, else the line's."""
        found = (r.machine_per_hour for r in self._overrides(station, capability))
        return next((v for v in found if v is not None), self.machine_per_hour)

    def _overrides(self, station: str | None, capability: str | None) -> list[CostRates]:
        """The rates that apply, the most particular first."""
        tables = (self.stations.get(station or ""), self.capabilities.get(capability or ""))
        return [r for r in tables if r is not None]


class LineConfig(BaseModel):
    """The whole line: what load_line_config returns."""

    model_config = _MODEL_CONFIG

    line: LineSection
    hub: HubSection = HubSection()
    store: StoreSection = StoreSection()
    http: HttpSection = HttpSection()
    policies: Policies = Policies()
    planner: PlannerSection = PlannerSection()
    retention: RetentionSection = RetentionSection()
    access: AccessSection = AccessSection()
    costs: CostsSection = CostsSection()
    # Pick requests to the warehouse from the plan (gateway/config/picking.py).
    picking: PickingSection = PickingSection()
    # Who is told of which alarm, by which channel (gateway/config/alerts.py).
    alarms: AlarmsSection = AlarmsSection()
    operators: list[Operator] = []
    # The working time of the line's stations (gateway/config/calendar.py); none: always open.
    shifts: list[Shift] = []
    stations: dict[str, StationConfig]
    config_dir: Path

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # load_line_config reports these with file and key; this guards models built in code.
        if not self.stations:
            raise ValueError("a line needs at least one station")
        for key, station in self.stations.items():
            if key != station.id:
                raise ValueError(f"station {station.id!r} is filed under key {key!r}")
        badges = [op.badge for op in self.operators]
        if dups := _duplicates(badges):
            raise ValueError(f"duplicate operator badge: {', '.join(dups)}")
        for station in self.stations.values():
            unknown = sorted(set(station.operators or ()) - set(badges))
            if unknown:
                raise ValueError(f"station {station.id!r} lists unknown badges: {unknown}")
        if self.access.pin_required:
            # Caught at load, not when an operator is refused at the start of a shift.
            without = [op.badge for op in self.operators if op.pin_hash is None]
            if without:
                raise ValueError(
                    f"[access] pin_required is set but operators {without} have no pin_hash "
                    "(make one with `linegate users pin-hash`)"
                )
        for shift in self.shifts:
            unknown = sorted(set(shift.stations or ()) - set(self.stations))
            if unknown:
                raise ValueError(f"shift {shift.name!r} names unknown stations: {unknown}")
        unknown = sorted(set(self.costs.stations) - set(self.stations))
        if unknown:
            raise ValueError(f"[costs.stations] names unknown stations: {unknown}")
        offered = {c for station in self.stations.values() for c in station.capabilities}
        unknown = sorted(set(self.costs.capabilities) - offered)
        if unknown:
            raise ValueError(f"[costs.capabilities] names capabilities no station has: {unknown}")
        for key, why in alarm_problems(self.alarms, (s.name for s in self.shifts), None):
            raise ValueError(f"[alarms] {key}: {why}")
        return self

    @property
    def gateway_id(self) -> str:
        return f"{self.line.site}/{self.line.line}"

    @property
    def mqtt_client_id(self) -> str:
        """hub.client_id, else one derived from the gateway id (stable across restarts)."""
        return self.hub.client_id or f"linegate-{self.line.site}-{self.line.line}"

    def store_path(self, data_dir: Path | None = None) -> Path:
        """The database file: in data_dir when given, else store.path against config_dir."""
        if data_dir is not None:
            return data_dir / Path(self.store.path).name
        return self.config_dir / self.store.path  # an absolute store.path wins over the join
