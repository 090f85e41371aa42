"""``office.toml``: the office's settings, checked strictly, every problem named.

Secrets (the database password, the lines' bearer tokens) are read from files named here,
never written in the config: a config gets copied around and read by more people than it
should. A relative secret path is taken from the config's folder.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cloud_sync.contract import SEGMENT

__all__ = [
    "ConfigError",
    "FeedConfig",
    "GapsConfig",
    "HttpConfig",
    "LineConfig",
    "MqttConfig",
    "OfficeConfig",
    "ProgramTokens",
    "ReaderConfig",
    "Secrets",
    "ShopConfig",
    "SiteConfig",
    "StoreConfig",
    "UserConfig",
    "WebhookConfig",
    "WmsConfig",
    "load_config",
    "read_secret",
]


class ConfigError(Exception):
    """office.toml is unreadable or wrong; the message names every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StoreConfig(_Strict):
    # None: a SQLite file in the data folder (one command, no server to install).
    url: str | None = None
    password_file: str | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme = urlsplit(url).scheme
        if scheme not in ("sqlite", "postgresql"):
            raise ValueError("must be sqlite:///PATH or postgresql://user@host:port/db")
        if urlsplit(url).password:
            raise ValueError("must not carry a password: name a password_file instead")
        return url


class MqttConfig(_Strict):
    url: str | None = None  # mqtt://host:port; None: no MQTT, HTTP only
    group: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "linegate-office"
    # A persistent session needs a stable id per instance; two instances need two ids.
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "linegate-office"
    username: str | None = None
    password_file: str | None = None

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError("must be mqtt://host[:port]")
        return url


class HttpConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8470
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 << 20
    # HTTPS when both are named (PEM; relative: from the config's folder). Lines' tokens and
    # shops' orders cross the site's network: plain HTTP only on loopback or behind a proxy
    # that terminates TLS.
    certfile: str | None = None
    keyfile: str | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> HttpConfig:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together: name both or neither")
        return self


class LineConfig(_Strict):
    gateway_id: str
    token_file: str  # the bearer token this line's gateway sends: it speaks for this line only
    # The site board scrapes the gateway's Prometheus /metrics (outbox, devices, plan age)
    # with a gateway token of the viewer role; both or neither.
    metrics_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    metrics_token_file: str | None = None

    @model_validator(mode="after")
    def _metrics_both(self) -> LineConfig:
        if (self.metrics_url is None) != (self.metrics_token_file is None):
            raise ValueError("metrics_url and metrics_token_file go together")
        return self

    @field_validator("gateway_id")
    @classmethod
    def _site_line(cls, value: str) -> str:
        parts = value.split("/")
        if len(parts) != 2 or not all(SEGMENT.match(p) for p in parts):
            raise ValueError("must be site/line, each [A-Za-z0-9_-]{1,32}")
        return value


class ReaderConfig(_Strict):
    """A program's token: what it may read is its role's (office.access.roles); the
    default ``reader`` reads the lines, the board, the reports and ``/metrics``."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    token_file: str
    role: Literal["reader", "service", "lead", "manager", "admin"] = "reader"


class UserConfig(_Strict):
    """A person who signs in at the office's pages; ``password_file`` holds the argon2id
    hash of the password (``linegate-office hash-password`` makes it), never the password."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    role: Literal["service", "lead", "manager", "admin"]
    password_file: str


class ShopConfig(_Strict):
    """A shop that may send orders (``POST /v1/orders``): its token speaks for no line."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    token_file: str


class GapsConfig(_Strict):
    # A gap still open after this long is logged (once) at WARNING.
    report_after_s: Annotated[float, Field(gt=0)] = 300.0
    check_every_s: Annotated[float, Field(gt=0)] = 30.0


_EVENT_TYPE = r"^[a-z_]+\.[a-z_]+$"


class WebhookConfig(_Strict):
    """A receiver of events over HTTP POST (office/hooks: signed, retried, sent once per
    key). ``shop``: a shop's hook, sent only the orders that shop sent."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    url: str
    secret_file: str  # the HMAC-SHA256 key the receiver checks the signature with
    events: Annotated[list[Annotated[str, Field(pattern=_EVENT_TYPE)]], Field(min_length=1)]
    lines: list[str] | None = None  # None: every line
    shop: str | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 10.0  # the deadline of one attempt
    max_attempts: Annotated[int, Field(ge=1)] = 12
    first_retry_s: Annotated[float, Field(gt=0)] = 5.0  # doubled after each failed attempt
    max_retry_s: Annotated[float, Field(gt=0)] = 3600.0  # up to this

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be http(s)://host[:port]/path")
        return url


class WmsConfig(_Strict):
    """A WMS that may send stock (``POST /v1/wms/stock``): its token speaks for no line."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    token_file: str


class FeedConfig(_Strict):
    # An order fed to a line that answered neither order.accepted nor order.rejected within
    # this long is reported to its shop (order.unanswered, office/hooks), once.
    answer_within_s: Annotated[float, Field(gt=0)] = 600.0
    unanswered_check_s: Annotated[float, Field(gt=0)] = 30.0
    # A watched folder of shops' CSV exports (relative: to the config's folder); its
    # orders are taken as this shop's. None: no folder.
    csv_dir: str | None = None
    csv_shop: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "csv-folder"
    csv_poll_s: Annotated[float, Field(gt=0)] = 2.0


class SiteConfig(_Strict):
    # The site's days, weeks (from Monday) and months: the board's "today", the reports.
    timezone: str = "Asia/Shanghai"
    # How often the board scrapes each line's /metrics.
    scrape_every_s: Annotated[float, Field(gt=0)] = 15.0

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name)") from None
        return value


class OfficeConfig(_Strict):
    store: StoreConfig = StoreConfig()
    site: SiteConfig = SiteConfig()
    mqtt: MqttConfig = MqttConfig()
    http: HttpConfig = HttpConfig()
    lines: list[LineConfig] = Field(default_factory=list)
    readers: list[ReaderConfig] = Field(default_factory=list)
    users: list[UserConfig] = Field(default_factory=list)
    shops: list[ShopConfig] = Field(default_factory=list)
    gaps: GapsConfig = GapsConfig()
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    wms: list[WmsConfig] = Field(default_factory=list)
    feed: FeedConfig = FeedConfig()
    # Where relative secret files are found: the config's own folder (set by load_config).
    base_dir: Path = Path()

    @field_validator("lines")
    @classmethod
    def _unique(cls, lines: list[LineConfig]) -> list[LineConfig]:
        seen = [line.gateway_id for line in lines]
        twice = sorted({g for g in seen if seen.count(g) > 1})
        if twice:
            raise ValueError(f"gateway_id listed twice: {', '.join(twice)}")
        return lines

    def tls_files(self) -> tuple[Path, Path] | None:
        """(certificate, key) of the HTTPS end, both readable; None: plain HTTP."""
        if self.http.certfile is None or self.http.keyfile is None:
            return None
        files = (self.base_dir / self.http.certfile, self.base_dir / self.http.keyfile)
        for path, what in zip(files, ("certificate", "key"), strict=True):
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                raise ConfigError(f"cannot read the HTTPS {what} {path}: {exc.strerror}") from None
        return files

    def password_hashes(self) -> dict[str, tuple[str, str]]:
        """User name -> (role, argon2id hash), each hash file read and checked."""
        found: dict[str, tuple[str, str]] = {}
        for user in self.users:
            if user.name in found:
                raise ConfigError(f"user {user.name} listed twice")
            phc = read_secret(self.base_dir / user.password_file, f"password hash of {user.name}")
            if not phc.startswith("$argon2id$"):
                raise ConfigError(
                    f"{self.base_dir / user.password_file} must hold an argon2id hash "
                    "(linegate-office hash-password), not a password"
                )
            found[user.name] = (user.role, phc)
        return found

    def store_url(self, data_dir: Path) -> str:
        """The SQLAlchemy URL of the store (the driver named), the password read in."""
        url = self.store.url or f"sqlite:///{data_dir / 'office.sqlite3'}"
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            return "sqlite+aiosqlite:" + url[len("sqlite:") :]
        netloc = parts.netloc
        if self.store.password_file is not None:
            password = read_secret(self.base_dir / self.store.password_file, "database password")
            user, _, host = netloc.rpartition("@")
            netloc = f"{user}:{quote(password, safe='')}@{host}"
        return f"postgresql+psycopg://{netloc}{parts.path}"

    def tokens(self) -> dict[str, str]:
        """Bearer token -> the one gateway_id it speaks for."""
        found: dict[str, str] = {}
        for line in self.lines:
            token = read_secret(self.base_dir / line.token_file, f"token of {line.gateway_id}")
            if token in found:
                raise ConfigError(
                    f"{line.gateway_id} and {found[token]} share a token: a token speaks "
                    "for one line"
                )
            found[token] = line.gateway_id
        return found

    def metrics_tokens(self) -> dict[str, str]:
        """gateway_id -> the gateway token the board scrapes its /metrics with."""
        return {
            line.gateway_id: read_secret(
                self.base_dir / line.metrics_token_file, f"metrics token of {line.gateway_id}"
            )
            for line in self.lines
            if line.metrics_token_file is not None
        }

    def reader_tokens(self) -> dict[str, str]:
        """Reader's bearer token -> its name; never a line's token (a line speaks for
        itself only, a reader sees every line)."""
        return self.program_tokens().readers

    def shop_tokens(self) -> dict[str, str]:
        """Shop's bearer token -> its name; never a line's or a reader's token."""
        return self.program_tokens().shops

    def wms_tokens(self) -> dict[str, str]:
        """WMS bearer token -> its name; never a line's, a reader's or a shop's token."""
        return self.program_tokens().wms

    def program_tokens(self) -> ProgramTokens:
        """Every token a line or a program sends, each file read once; a token is one
        line's or one program's, never shared (who sends it is what it may do)."""
        lines = self.tokens()
        taken = {t: f"line {g}" for t, g in lines.items()}
        found: list[dict[str, str]] = []
        for kind, plural, entries in (
            ("reader", "readers", self.readers),
            ("shop", "shops", self.shops),
            ("WMS", "WMS", self.wms),
        ):
            mine: dict[str, str] = {}
            for entry in entries:
                token = read_secret(
                    self.base_dir / entry.token_file, f"token of {kind} {entry.name}"
                )
                if token in taken:
                    raise ConfigError(
                        f"{kind} {entry.name} has the token of {taken[token]}: a {kind} needs "
                        "a token of its own"
                    )
                if token in mine:
                    raise ConfigError(f"{plural} {entry.name} and {mine[token]} share a token")
                mine[token] = entry.name
            taken |= {t: f"{kind} {n}" for t, n in mine.items()}
            found.append(mine)
        readers, shops, wms = found
        return ProgramTokens(lines, readers, shops, wms)

    def webhook_secrets(self) -> dict[str, str]:
        """Each webhook's name -> its signing secret."""
        return {
            hook.name: read_secret(
                self.base_dir / hook.secret_file, f"secret of webhook {hook.name}"
            )
            for hook in self.webhooks
        }

    def read_secrets(self, data_dir: Path) -> Secrets:
        """Every secret office.toml names, read and checked once, before the office's loop
        starts (its files are never read on the loop)."""
        tokens = self.program_tokens()
        return Secrets(
            store_url=self.store_url(data_dir),
            lines=tokens.lines,
            readers=tokens.readers,
            shops=tokens.shops,
            users=self.password_hashes(),
            hooks=self.webhook_secrets(),
            wms=tokens.wms,
        )

    @model_validator(mode="after")
    def _hooks_known(self) -> OfficeConfig:
        names = [hook.name for hook in self.webhooks]
        problems = [
            f"webhook {n} listed twice" for n in sorted({n for n in names if names.count(n) > 1})
        ]
        lines, shops = {line.gateway_id for line in self.lines}, {s.name for s in self.shops}
        for hook in self.webhooks:
            problems += [
                f"webhook {hook.name}: line {g} is not in [[lines]]"
                for g in hook.lines or []
                if g not in lines
            ]
            if hook.shop is not None and hook.shop not in shops:
                problems.append(f"webhook {hook.name}: shop {hook.shop} is not in [[shops]]")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True)
class ProgramTokens:
    """Bearer token -> who sends it, for the lines (gateway_id) and each kind of program."""

    lines: dict[str, str] = field(repr=False)
    readers: dict[str, str] = field(repr=False)
    shops: dict[str, str] = field(repr=False)
    wms: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class Secrets:
    """What the office's secret files say (:meth:`OfficeConfig.read_secrets`)."""

    store_url: str  # the SQLAlchemy URL, the database password in it
    lines: dict[str, str] = field(repr=False)  # bearer token -> the gateway_id it speaks for
    readers: dict[str, str] = field(default_factory=dict, repr=False)  # token -> name
    shops: dict[str, str] = field(default_factory=dict, repr=False)  # token -> shop
    users: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # (role, hash)
    hooks: dict[str, str] = field(default_factory=dict, repr=False)  # webhook -> its secret
    wms: dict[str, str] = field(default_factory=dict, repr=False)  # token -> WMS name


def read_secret(path: Path, what: str) -> str:
    """The first line of a secret file; errors name the file, never its content."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} from {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} in {path} is not UTF-8 text") from None
    value = text.splitlines()[0].strip() if text else ""
    if not value:
        raise ConfigError(f"the {what} file {path} is empty")
    return value


def load_config(path: Path) -> OfficeConfig:
    """Read and check office.toml; ConfigError names every problem, by its place."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if "base_dir" in raw:
        raise ConfigError(f"{path}: base_dir: not a setting")
    try:
        config = OfficeConfig.model_validate({**raw, "base_dir": path.parent.resolve()})
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError(f"{path}:\n  " + "\n  ".join(problems)) from None
    config.program_tokens()  # every token file readable, no token shared
    config.password_hashes()  # every user's hash readable
    config.metrics_tokens()  # the board's scrape tokens readable (read again at each scrape)
    config.webhook_secrets()
    config.tls_files()  # the HTTPS files readable
    return config
