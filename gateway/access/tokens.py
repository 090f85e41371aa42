"""API tokens for programs (the office, a monitoring system): a role, an optional expiry.

A token reads ``lgt_<token_id>_<secret>``: the id names it in lists and the audit trail,
the secret (``secrets.token_urlsafe(32)``, 256 bits) is shown once, when it is created,
and kept only as its SHA-256. Revoked or expired tokens stay, for the audit trail.
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.access.digests import matches, sha256_hex
from gateway.access.errors import AccessError
from gateway.clock import iso
from gateway.store.db import Store
from gateway.store.rows import ApiTokenRow, Role

PREFIX = "lgt"
# The id has no "_" (the secret may), so the first two "_" split a token unambiguously.
TOKEN_PATTERN = re.compile(rf"{PREFIX}_([0-9a-f]{{8}})_([A-Za-z0-9_-]{{43}})")
logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
MAX_EXPIRES_DAYS = 3650
# A request with a token writes when it was last used at most this often: a write per
# request would cost every call of the station API a commit (fsync, synchronous=FULL).
LAST_USED_EVERY = timedelta(minutes=1)


class TokenRefusal(StrEnum):
    # A malformed token, an unknown id and a wrong secret are one answer: a guess learns
    # nothing. Revoked and expired are only told to someone holding the real secret.
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"


class TokenState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TokenRefused:
    reason: TokenRefusal

    @property
    def message(self) -> str:
        return {
            TokenRefusal.UNKNOWN: "unknown token",
            TokenRefusal.REVOKED: "this token was revoked",
            TokenRefusal.EXPIRED: "this token has expired",
        }[self.reason]


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: ``token`` is the only time its secret is seen."""

    row: ApiTokenRow
    token: str


def token_state(row: ApiTokenRow, now: datetime) -> TokenState:
    if row.revoked_at is not None:
        return TokenState.REVOKED
    if row.expires_at is not None and datetime.fromisoformat(row.expires_at) <= now:
        return TokenState.EXPIRED
    return TokenState.ACTIVE


def _name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise AccessError(f"a token's name has 1 to {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise AccessError("a token's name cannot contain control characters")
    return name


def find_token(store: Store, token_id: str) -> ApiTokenRow | None:
    return store.fetch_one(ApiTokenRow, "SELECT * FROM api_tokens WHERE token_id = ?", (token_id,))


def list_tokens(store: Store) -> list[ApiTokenRow]:
    return store.fetch_all(ApiTokenRow, "SELECT * FROM api_tokens ORDER BY created_at, token_id")


def create_token(
    store: Store, name: str, role: Role, now: datetime, expires_days: int | None = None
) -> NewToken:
    """A new token for a program acting as ``role`` (never an operator: operators act at a
    station, through its terminal)."""
    name = _name(name)
    if role is Role.OPERATOR:
        raise AccessError("a token cannot act as an operator: operators act through a terminal")
    expires_at = None
    if expires_days is not None:
        if not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise AccessError(f"a token expires after 1 to {MAX_EXPIRES_DAYS} days")
        expires_at = iso(now + timedelta(days=expires_days))
    secret = secrets.token_urlsafe(32)
    with store.transaction():
        token_id = secrets.token_hex(4)
        while find_token(store, token_id) is not None:  # 32 bits: a clash is rare, not never
            token_id = secrets.token_hex(4)
        store.conn.execute(
            "INSERT INTO api_tokens (token_id, name, role, secret_sha256, created_at, "
            "expires_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
            (token_id, name, role.value, sha256_hex(secret), iso(now), expires_at),
        )
    row = find_token(store, token_id)
    assert row is not None
    return NewToken(row, f"{PREFIX}_{token_id}_{secret}")


def revoke_token(store: Store, token_id: str, now: datetime) -> bool:
    """The token no longer verifies; False if it was revoked already."""
    with store.transaction():
        row = find_token(store, token_id.strip())
        if row is None:
            raise AccessError(f"no token {token_id.strip()!r}")
        if row.revoked_at is not None:
            return False
        store.conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ?", (iso(now), row.token_id)
        )
    return True


def verify_token(store: Store, token: str, now: datetime) -> ApiTokenRow | TokenRefused:
    """The token's row, if ``token`` is one and may be used now; else why not. Cheap (one
    SHA-256, one read; a write at most once a minute per token): fine on the event loop."""
    found = TOKEN_PATTERN.fullmatch(token.strip())
    if found is None:
        return TokenRefused(TokenRefusal.UNKNOWN)
    token_id, secret = found.groups()
    row = find_token(store, token_id)
    if row is None or not matches(secret, row.secret_sha256):
        return TokenRefused(TokenRefusal.UNKNOWN)
    state = token_state(row, now)
    if state is TokenState.REVOKED:
        return TokenRefused(TokenRefusal.REVOKED)
    if state is TokenState.EXPIRED:
        return TokenRefused(TokenRefusal.EXPIRED)
    last_used = None if row.last_used_at is None else datetime.fromisoformat(row.last_used_at)
    if last_used is None or last_used + LAST_USED_EVERY <= now:
        try:
            with store.transaction():
                store.conn.execute(
                    "UPDATE api_tokens SET last_used_at = ? WHERE token_id = ?",
                    (iso(now), row.token_id),
                )
        except sqlite3.OperationalError as exc:
            # A note, not a condition of the request: a full disk must not shut the
            # board out (it is where the disk alarm is read).
            logger.warning("token %s: last use not recorded: %s", row.token_id, exc)
            return row
        row = find_token(store, token_id) or row
    return row
