"""A user's browser session: an HttpOnly cookie, a CSRF token, two time limits.

The cookie holds a random id (``secrets.token_urlsafe(32)``, 256 bits) that the line keeps
only as its SHA-256, so that a copy of the database signs no one in. The CSRF token is
the synchronizer-token pattern: random per session, kept as it is (the page is given it
with every render, so it must be readable), and sent back by the page in the
``X-CSRF-Token`` header of every request that changes something; a cross-site form can
send the cookie but cannot read the page to learn the token.

Two limits, with no column beyond migration 4's: ``expires_at`` is the idle deadline,
moved to ``now + IDLE`` when the session is used (at most once a minute, to spare the
commits) and never past ``created_at + ABSOLUTE``. So a session ends 30 minutes after its
last use, and 12 hours after it began whatever happens. :func:`verify` checks the
account's ``disabled_at`` every time, so disabling an account also shuts sessions out
that a missed update of ``web_sessions`` might have left open.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, TypedDict

from gateway.access.accounts import end_sessions, find_user, normal_username
from gateway.access.digests import matches, sha256_hex
from gateway.access.errors import AccessError
from gateway.clock import iso
from gateway.store.db import Store
from gateway.store.rows import WebSessionRow

logger = logging.getLogger(__name__)

# A shift and a half: whoever signs in at a shift's start is not sent back to the sign-in
# page during it, and no session outlives the next shift's.
ABSOLUTE = timedelta(hours=12)
# A browser left open on an unattended desk stops being a way in after this long.
IDLE = timedelta(minutes=30)
# The idle deadline is moved at most this often: a write per request would cost every
# page a commit (fsync, synchronous=FULL), and a minute is nothing against IDLE.
RENEW_EVERY = timedelta(minutes=1)
# The header the page sends the CSRF token back in.
CSRF_HEADER = "X-CSRF-Token"
# __Host- makes a browser refuse the cookie unless it is Secure, for Path=/, without a
# Domain: no subdomain or plain-HTTP page can plant or overwrite it. Browsers refuse it
# without Secure, so a line served over plain HTTP uses the bare name.
COOKIE_NAME = "linegate_session"
TLS_COOKIE_NAME = f"__Host-{COOKIE_NAME}"
# What token_urlsafe(32) gives: 32 bytes in base64url, no padding. Anything else is
# refused before hashing, so a huge cookie costs nothing.
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")
# The client's address, as the web layer gives it: bounded, it is stored.
MAX_CLIENT_CHARS = 200


class SessionRefusal(StrEnum):
    # A malformed cookie and an unknown id are one answer: a guess learns nothing. The
    # others are only told to someone holding a real session's cookie.
    UNKNOWN = "unknown"
    ENDED = "ended"
    EXPIRED = "expired"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class SessionRefused:
    reason: SessionRefusal

    @property
    def message(self) -> str:
        return {
            SessionRefusal.UNKNOWN: "please sign in",
            SessionRefusal.ENDED: "you were signed out: please sign in",
            SessionRefusal.EXPIRED: "your session has expired: please sign in",
            SessionRefusal.DISABLED: "this account is disabled: ask an admin",
        }[self.reason]


class CookieAttributes(TypedDict):
    """Keyword arguments of Starlette's ``Response.set_cookie`` (all but ``value``)."""

    key: str
    max_age: int
    path: str
    secure: bool
    httponly: bool
    samesite: Literal["strict"]


def cookie_attributes(tls: bool) -> CookieAttributes:
    """How the session cookie is set: ``response.set_cookie(value=cookie_value,
    **cookie_attributes(tls))``. Max-Age is :data:`ABSOLUTE` (the server refuses an idle
    session sooner); SameSite=Strict keeps other sites' pages from sending it at all."""
    return CookieAttributes(
        key=TLS_COOKIE_NAME if tls else COOKIE_NAME,
        max_age=int(ABSOLUTE.total_seconds()),
        path="/",
        secure=tls,
        httponly=True,
        samesite="strict",
    )


def find_session(store: Store, cookie_value: str) -> WebSessionRow | None:
    """The session whose cookie is ``cookie_value``, in any state; None if none is."""
    if _COOKIE_VALUE.fullmatch(cookie_value) is None:
        return None
    row = store.fetch_one(
        WebSessionRow,
        "SELECT * FROM web_sessions WHERE id_sha256 = ?",
        (sha256_hex(cookie_value),),
    )
    # The lookup is by the digest (an index); the constant-time compare is kept so that
    # the check reads the same as the tokens' and terminals'.
    if row is None or not matches(cookie_value, row.id_sha256):
        return None
    return row


def start(
    store: Store, username: str, now: datetime, client: str | None
) -> tuple[str, str, WebSessionRow]:
    """A new session for ``username`` (who has just signed in): the cookie's value (its
    only time in clear), the CSRF token, the row."""
    user = find_user(store, username)
    if user is None:
        raise AccessError(f"no user {normal_username(username)!r}")
    if user.disabled_at is not None:
        raise AccessError(f"user {user.username!r} is disabled")
    cookie_value = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    with store.transaction():
        store.conn.execute(
            "INSERT INTO web_sessions (id_sha256, username, csrf_token, created_at, "
            "expires_at, ended_at, client) VALUES (?, ?, ?, ?, ?, NULL, ?)",
            (
                sha256_hex(cookie_value),
                user.username,
                csrf_token,
                iso(now),
                iso(_deadline(now, now)),
                None if client is None else client[:MAX_CLIENT_CHARS],
            ),
        )
    row = find_session(store, cookie_value)
    assert row is not None
    return cookie_value, csrf_token, row


def _deadline(created: datetime, used: datetime) -> datetime:
    return min(used + IDLE, created + ABSOLUTE)


def verify(store: Store, cookie_value: str, now: datetime) -> WebSessionRow | SessionRefused:
    """The session's row if ``cookie_value`` is a live session's cookie now; else why not.
    Using it moves its idle deadline (one write a minute at most)."""
    row = find_session(store, cookie_value)
    if row is None:
        return SessionRefused(SessionRefusal.UNKNOWN)
    if row.ended_at is not None:
        return SessionRefused(SessionRefusal.ENDED)
    created = datetime.fromisoformat(row.created_at)
    expires = datetime.fromisoformat(row.expires_at)
    if now >= expires or now >= created + ABSOLUTE:
        return SessionRefused(SessionRefusal.EXPIRED)
    user = find_user(store, row.username)
    if user is None or user.disabled_at is not None:
        return SessionRefused(SessionRefusal.DISABLED)
    renewed = _deadline(created, now)
    if renewed - expires >= RENEW_EVERY:
        try:
            with store.transaction():
                store.conn.execute(
                    "UPDATE web_sessions SET expires_at = ? WHERE id_sha256 = ?",
                    (iso(renewed), row.id_sha256),
                )
        except sqlite3.OperationalError as exc:
            # Not renewed, still valid until its deadline: a full disk does not sign
            # anyone out early, nor lock them out of the board that shows the alarm.
            logger.warning("a session of %s was not renewed: %s", row.username, exc)
            return row
        row = find_session(store, cookie_value) or row
    return row


def check_csrf(row: WebSessionRow, header_value: str | None) -> bool:
    """The ``X-CSRF-Token`` header sent is this session's token (constant time)."""
    if not header_value:
        return False
    return hmac.compare_digest(header_value.encode(), row.csrf_token.encode())


def end(store: Store, cookie_value: str, now: datetime) -> bool:
    """Sign-out: the session no longer verifies; False if there was no live one."""
    row = find_session(store, cookie_value)
    if row is None:
        return False
    with store.transaction():
        done = store.conn.execute(
            "UPDATE web_sessions SET ended_at = ? WHERE id_sha256 = ? AND ended_at IS NULL",
            (iso(now), row.id_sha256),
        )
    return done.rowcount == 1


def end_all(store: Store, username: str, now: datetime) -> int:
    """Every session of ``username`` ends (signed out everywhere); how many were open."""
    with store.transaction():
        return end_sessions(store, normal_username(username), now)
