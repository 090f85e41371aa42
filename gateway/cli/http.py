"""Asking the running gateway from a command (``linegate devices``, ``linegate plan``)."""

from __future__ import annotations

import sys
from typing import Any

import httpx

from gateway.config.line import LineConfig

__all__ = ["ask_gateway"]


def ask_gateway(
    command: str,
    config: LineConfig,
    url: str | None,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    otherwise: str,
) -> tuple[Any, str] | None:
    """(the JSON answer, the gateway's address), or None when no gateway answers, saying
    so on stderr with what the command does ``otherwise``."""
    host = config.http.host if config.http.host not in ("0.0.0.0", "::") else "127.0.0.1"
    base = url or f"http://{host}:{config.http.port}"
    try:
        answer = httpx.get(f"{base}{path}", params=params, timeout=3.0)
        answer.raise_for_status()
        return answer.json(), base
    except httpx.HTTPError as exc:
        print(  # noqa: T201 - a command's word to its user
            f"linegate {command}: no gateway answers at {base} ({exc}); {otherwise}",
            file=sys.stderr,
        )
        return None
