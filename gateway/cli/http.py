"""Asking the running gateway from a command (``linegate devices``, ``linegate plan``)."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
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
    scheme = "https" if config.http.tls_enabled else "http"
    base = url or f"{scheme}://{host}:{config.http.port}"
    try:
        verify: ssl.SSLContext | bool = True
        if url is None and config.http.tls is not None:
            verify = _pinned(Path(config.http.tls.cert_file))
        answer = httpx.get(f"{base}{path}", params=params, timeout=3.0, verify=verify)
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
