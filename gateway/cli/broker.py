"""``--broker mqtt://HOST:PORT``, as `linegate run` and `linegate demo` take it."""

from __future__ import annotations

from urllib.parse import urlsplit


def parse_broker(url: str) -> tuple[str, int]:
    """``mqtt://HOST:PORT`` → (host, port); 1883 when the port is left out."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise SystemExit(f"linegate: --broker must look like mqtt://HOST:PORT, not {url!r}")
    return parts.hostname, parts.port or 1883
