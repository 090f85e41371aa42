"""Asking the running gateway from a command (``linegate devices``, ``linegate plan``)."""

from __future__ import annotations

import os
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx

from gateway.config.line import LineConfig

__all__ = ["TOKEN_ENV", "ask_gateway"]

# Where a command finds the API token it asks the gateway with, if not given --token.
TOKEN_ENV = "LINEGATE_TOKEN"
EX_NOPERM = 77  # sysexits.h: the gateway refused who is asking


def ask_gateway(
    command: str,
    config: LineConfig,
    url: str | None,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    otherwise: str,
    token: str | None = None,
) -> tuple[Any, str] | None:
    """(the JSON answer, the gateway's address), or None when no gateway answers, saying
    so on stderr with what the command does ``otherwise``. The gateway asks who is
    asking: ``token`` (``--token``), else the environment's ``LINEGATE_TOKEN``, an API
    token of any role that reads the board (``linegate tokens create --role viewer``)."""
    token = token or os.environ.get(TOKEN_ENV) or None
    headers = {} if token is None else {"Authorization": f"Bearer {token.strip()}"}
    host = config.http.host if config.http.host not in ("0.0.0.0", "::") else "127.0.0.1"
    scheme = "https" if config.http.tls_enabled else "http"
    base = url or f"{scheme}://{host}:{config.http.port}"
    try:
        verify: ssl.SSLContext | bool = True
        if url is None and config.http.tls is not None:
            verify = _pinned(Path(config.http.tls.cert_file))
        answer = httpx.get(
            f"{base}{path}", params=params, timeout=3.0, verify=verify, headers=headers
        )
        if answer.status_code in (401, 403):
            said = answer.json().get("message", answer.text) if _is_json(answer) else answer.text
            print(  # noqa: T201 - a command's word to its user
                f"linegate {command}: the gateway at {base} refused: {said}\n"
                f"  pass an API token with --token or {TOKEN_ENV} "
                "(make one with: linegate tokens create NAME --role viewer)",
                file=sys.stderr,
            )
            # Not None: the gateway is there, so what the command does without one
            # (probing the devices, planning from the database) would compete with it.
            raise SystemExit(EX_NOPERM)
        answer.raise_for_status()
        return answer.json(), base
    except (httpx.HTTPError, OSError) as exc:  # OSError: the certificate file
        print(  # noqa: T201 - a command's word to its user
            f"linegate {command}: no gateway answers at {base} ({exc}); {otherwise}",
            file=sys.stderr,
        )
        return None


def _pinned(cert_file: Path) -> ssl.SSLContext:
    """Trust the gateway's own certificate, as its config names it, and nothing else: the
    command asks its own gateway, by an address (127.0.0.1) its certificate need not name,
    and the CA that signed it (a lab's) need not be in this box's store."""
    context = ssl.create_default_context(cafile=str(cert_file))
    context.check_hostname = False
    # The certificate itself is the trust anchor, not a CA above it.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _is_json(answer: httpx.Response) -> bool:
    kind: str = answer.headers.get("content-type", "")
    return kind.startswith("application/json")
