"""The office of the site demo, configured as a site would configure it: an office.toml
with its lines, a shop, a reader and one person per role, the secrets in files beside it
(new random ones each run, shown once: there is no default password)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from office.access import hash_password

__all__ = ["PEOPLE", "OfficeSecrets", "write_office_config"]

# One person per role of the office's pages (office.access.roles).
PEOPLE = (("service", "service"), ("lead", "lead"), ("manager", "manager"), ("admin", "admin"))
SHOP = "demo-shop"
READER = "demo-reader"


@dataclass(frozen=True)
class OfficeSecrets:
    config: Path
    shop_token: str
    reader_token: str
    passwords: dict[str, tuple[str, str]]  # user -> (role, password)


@dataclass(frozen=True)
class LineEntry:
    gateway_id: str
    metrics_url: str  # the line's own /metrics, that the site board scrapes


def _secret(folder: Path, name: str, value: str) -> str:
    path = folder / name
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return name


def write_office_config(
    folder: Path, broker_url: str, http_port: int, lines: list[LineEntry]
) -> OfficeSecrets:
    """office.toml in ``folder``; each line's metrics token file is written once the line
    told its viewer token (:func:`set_metrics_token`)."""
    folder.mkdir(parents=True, exist_ok=True)
    shop_token = "shop_" + secrets.token_urlsafe(24)
    reader_token = "reader_" + secrets.token_urlsafe(24)
    text = [
        "# Written by the site demo (python -m sitedemo): a site's office, one of each part.",
        "[mqtt]",
        f'url = "{broker_url}"',
        "",
        "[http]",
        'host = "127.0.0.1"',
        f"port = {http_port}",
        "",
    ]
    for entry in lines:
        slug = entry.gateway_id.replace("/", "_")
        # The lines speak MQTT here; the token is their HTTP transport's, unused but
        # required (each line its own).
        token = _secret(folder, f"{slug}.token", "line_" + secrets.token_urlsafe(24))
        metrics = metrics_token_file(entry.gateway_id)
        # Until the line told its viewer token: a scrape is refused, never an error.
        _secret(folder, metrics, "not-yet-known")
        text += [
            "[[lines]]",
            f'gateway_id = "{entry.gateway_id}"',
            f'token_file = "{token}"',
            f'metrics_url = "{entry.metrics_url}"',
            f'metrics_token_file = "{metrics}"',
            "",
        ]
    text += [
        "[[shops]]",
        f'name = "{SHOP}"',
        f'token_file = "{_secret(folder, "shop.token", shop_token)}"',
        "",
        "[[readers]]",
        f'name = "{READER}"',
        f'token_file = "{_secret(folder, "reader.token", reader_token)}"',
        "",
    ]
    passwords: dict[str, tuple[str, str]] = {}
    for name, role in PEOPLE:
        password = secrets.token_urlsafe(12)
        passwords[name] = (role, password)
        text += [
            "[[users]]",
            f'name = "{name}"',
            f'role = "{role}"',
            f'password_file = "{_secret(folder, f"{name}.hash", hash_password(password))}"',
            "",
        ]
    config = folder / "office.toml"
    config.write_text("\n".join(text), encoding="utf-8")
    return OfficeSecrets(config, shop_token, reader_token, passwords)


def metrics_token_file(gateway_id: str) -> str:
    return f"{gateway_id.replace('/', '_')}.metrics-token"


def set_metrics_token(folder: Path, gateway_id: str, token: str) -> None:
    _secret(folder, metrics_token_file(gateway_id), token)
