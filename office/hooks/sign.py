"""The signature a receiver checks: ``X-Linegate-Signature: t=<unix seconds>,v1=<hex>``
where ``hex = HMAC-SHA256(secret, f"{t}." + body)`` over the exact bytes of the body. The
time in it lets a receiver refuse an old delivery replayed (its own tolerance)."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-Linegate-Signature"


def _mac(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, t: int, body: bytes) -> str:
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """For receivers written in Python (and the tests' receiver is not: it recomputes)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(_mac(secret, t, body), parts.get("v1", ""))
