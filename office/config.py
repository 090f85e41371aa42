"""``office.toml``: the office's settings, checked strictly, every problem named.

Secrets (the database password, the lines' bearer tokens) are read from files named here,
never written in the config: a config gets copied around and read by more people than it
should. A relative secret path is taken from the config's folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cloud_sync.contract import SEGMENT

__all__ = [
    "ConfigError",
    "GapsConfig",
    "HttpConfig",
    "LineConfig",
    "MqttConfig",
    "OfficeConfig",
    "ReaderConfig",
    "ShopConfig",
    "StoreConfig",
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


class LineConfig(_Strict):
    gateway_id: str
    token_file: str  # the bearer token this line's gateway sends: it speaks for this line only

    @field_validator("gateway_id")
    @classmethod
    def _site_line(cls, value: str) -> str:
        parts = value.split("/")
        if len(parts) != 2 or not all(SEGMENT.match(p) for p in parts):
            raise ValueError("must be site/line, each [A-Za-z0-9_-]{1,32}")
        return value


class ReaderConfig(_Strict):
    """Who may read ``GET /v1/lines`` and ``GET /metrics`` (operations, Prometheus)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    token_file: str


class ShopConfig(_Strict):
    """A shop that may send orders (``POST /v1/orders``): its token speaks for no line."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    token_file: str


class GapsConfig(_Strict):
    # A gap still open after this long is logged (once) at WARNING.
    report_after_s: Annotated[float, Field(gt=0)] = 300.0
    check_every_s: Annotated[float, Field(gt=0)] = 30.0


class OfficeConfig(_Strict):
    store: StoreConfig = StoreConfig()
    mqtt: MqttConfig = MqttConfig()
    http: HttpConfig = HttpConfig()
    lines: list[LineConfig] = Field(default_factory=list)
    readers: list[ReaderConfig] = Field(default_factory=list)
    shops: list[ShopConfig] = Field(default_factory=list)
    gaps: GapsConfig = GapsConfig()
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

    def reader_tokens(self) -> dict[str, str]:
        """Reader's bearer token -> its name; never a line's token (a line speaks for
        itself only, a reader sees every line)."""
        lines = self.tokens()
        found: dict[str, str] = {}
        for reader in self.readers:
            token = read_secret(self.base_dir / reader.token_file, f"token of reader {reader.name}")
            if token in lines:
                raise ConfigError(
                    f"reader {reader.name} has the token of line {lines[token]}: a reader "
                    "needs a token of its own"
                )
            if token in found:
                raise ConfigError(f"readers {reader.name} and {found[token]} share a token")
            found[token] = reader.name
        return found

    def shop_tokens(self) -> dict[str, str]:
        """Shop's bearer token -> its name; never a line's or a reader's token."""
        taken = {**{t: f"line {g}" for t, g in self.tokens().items()}}
        taken |= {t: f"reader {n}" for t, n in self.reader_tokens().items()}
        found: dict[str, str] = {}
        for shop in self.shops:
            token = read_secret(self.base_dir / shop.token_file, f"token of shop {shop.name}")
            if token in taken:
                raise ConfigError(
                    f"shop {shop.name} has the token of {taken[token]}: a shop needs a "
                    "token of its own"
                )
            if token in found:
                raise ConfigError(f"shops {shop.name} and {found[token]} share a token")
            found[token] = shop.name
        return found


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
    config.shop_tokens()  # every token file readable, no token shared
    return config
