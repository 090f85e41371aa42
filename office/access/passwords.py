"""The office's people sign in with a password whose argon2id hash is in a file
(``[[users]] password_file``; ``linegate-office hash-password`` makes one). The same
parameters as the gateway's: one lane, 32 MiB, three passes."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["DUMMY_HASH", "hash_password", "verify_password"]

# Verified against when a name is unknown, so "unknown" takes as long as "wrong".
DUMMY_HASH = (
    "$argon2id$v=19$m=32768,t=3,p=1$KPHcUtHhKCTdIPhPPkRU1A"
    "$8fN2I2GmgsH4t81wTB85BIIOPhwcfNpfmCWvkt1o5DY"
)


def _hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=3, memory_cost=32 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(phc: str, password: str) -> bool:
    """Plain and synchronous (tens of ms of CPU): call it off the loop."""
    try:
        return _hasher().verify(phc, password)
    except (VerificationError, InvalidHashError):
        return False
