"""SHA-256 of the long random secrets (tokens, terminal credentials, pairing codes).

They are random and long (or, for a pairing code, short-lived and tried a few times at
most), so a plain digest is enough: a slow hash only pays off for what people choose.
"""

from __future__ import annotations

import hashlib
import hmac


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_sha256: str) -> bool:
    """``secret`` hashes to ``stored_sha256``, compared in constant time (the time taken
    says nothing about how much of it was right)."""
    return hmac.compare_digest(sha256_hex(secret), stored_sha256)
