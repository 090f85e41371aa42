"""Browser sessions: a cookie kept as SHA-256, refused once ended, expired, forged or its
account disabled; a CSRF token per session; the cookie's attributes with and without TLS."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.responses import Response

from gateway.access import accounts, passwords, sessions
from gateway.access.errors import AccessError
from gateway.access.sessions import SessionRefusal, SessionRefused
from gateway.clock import iso
from gateway.store.db import Store
from gateway.store.rows import Role, WebSessionRow
from tests.clocks import ManualClock

IDLE_S = 30 * 60
ABSOLUTE_S = 12 * 3600
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def password_hash() -> str:
    # One argon2id hash for the module: it is slow, and the password plays no part here.
    return passwords.hash_password("plum tree at noon", "wang.fang")


def _add(store: Store, clock: ManualClock, password_hash: str, name: str = "wang.fang") -> None:
    accounts.add_user(store, name, Role.LINE_LEAD, password_hash, clock.now())


def _refusal(found: WebSessionRow | SessionRefused) -> SessionRefusal | None:
    return found.reason if isinstance(found, SessionRefused) else None


def test_a_session_verifies_as_its_row(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    cookie, csrf, row = sessions.start(store, "Wang.Fang", clock.now(), "10.0.0.7")
    assert (row.username, row.csrf_token, row.client) == ("wang.fang", csrf, "10.0.0.7")
    assert row.created_at == iso(clock.now())
    clock.advance(5)
    found = sessions.verify(store, cookie, clock.now())
    assert isinstance(found, WebSessionRow)
    assert found.id_sha256 == row.id_sha256


def test_only_the_cookies_hash_is_stored(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    cookie, csrf, _ = sessions.start(store, "wang.fang", clock.now(), None)
    stored = store.one("SELECT * FROM web_sessions")
    assert stored is not None
    assert stored["id_sha256"] == hashlib.sha256(cookie.encode()).hexdigest()
    assert all(cookie not in str(value) for value in tuple(stored))
    assert cookie != csrf


def test_an_idle_session_expires_after_thirty_minutes(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    cookie, _, _ = sessions.start(store, "wang.fang", clock.now(), None)
    clock.advance(IDLE_S - 1)
    assert isinstance(sessions.verify(store, cookie, clock.now()), WebSessionRow)
    # That use moved the deadline: 30 minutes from it, not from the start.
    clock.advance(IDLE_S - 1)
    assert isinstance(sessions.verify(store, cookie, clock.now()), WebSessionRow)
    clock.advance(IDLE_S)
    assert _refusal(sessions.verify(store, cookie, clock.now())) is SessionRefusal.EXPIRED


def test_a_used_session_still_ends_twelve_hours_after_it_began(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    began = clock.now()
    cookie, _, _ = sessions.start(store, "wang.fang", began, None)
    # Used every 10 minutes: never idle for long.
    while (clock.now() - began).total_seconds() < ABSOLUTE_S - 600:
        clock.advance(600)
        assert isinstance(sessions.verify(store, cookie, clock.now()), WebSessionRow)
    row = sessions.find_session(store, cookie)
    assert row is not None
    assert datetime.fromisoformat(row.expires_at) <= began + sessions.ABSOLUTE
    clock.at = began + sessions.ABSOLUTE
    assert _refusal(sessions.verify(store, cookie, clock.now())) is SessionRefusal.EXPIRED


def test_the_idle_deadline_is_written_at_most_once_a_minute(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    cookie, _, row = sessions.start(store, "wang.fang", clock.now(), None)
    clock.advance(30)
    sessions.verify(store, cookie, clock.now())
    assert store.texts("SELECT expires_at FROM web_sessions") == [row.expires_at]
    clock.advance(31)
    sessions.verify(store, cookie, clock.now())
    assert store.texts("SELECT expires_at FROM web_sessions") == [iso(clock.now() + sessions.IDLE)]


def test_sign_out_ends_the_session(store: Store, clock: ManualClock, password_hash: str) -> None:
    _add(store, clock, password_hash)
    cookie, _, _ = sessions.start(store, "wang.fang", clock.now(), None)
    other, _, _ = sessions.start(store, "wang.fang", clock.now(), None)
    clock.advance(10)
    assert sessions.end(store, cookie, clock.now()) is True
    assert sessions.end(store, cookie, clock.now()) is False
    # Replaying the ended cookie is refused; the other browser stays signed in.
    assert _refusal(sessions.verify(store, cookie, clock.now())) is SessionRefusal.ENDED
    assert isinstance(sessions.verify(store, other, clock.now()), WebSessionRow)
    assert store.texts("SELECT ended_at FROM web_sessions WHERE ended_at IS NOT NULL") == [
        iso(clock.now())
    ]


def test_end_all_signs_a_user_out_everywhere(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    _add(store, clock, password_hash, "li.qiang")
    mine = [sessions.start(store, "wang.fang", clock.now(), None)[0] for _ in range(3)]
    theirs, _, _ = sessions.start(store, "li.qiang", clock.now(), None)
    sessions.end(store, mine[0], clock.now())
    assert sessions.end_all(store, "wang.fang", clock.now()) == 2
    assert [_refusal(sessions.verify(store, c, clock.now())) for c in mine] == [
        SessionRefusal.ENDED
    ] * 3
    assert isinstance(sessions.verify(store, theirs, clock.now()), WebSessionRow)


def test_a_disabled_users_session_is_refused(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    cookie, _, _ = sessions.start(store, "wang.fang", clock.now(), None)
    # Disabled behind the sessions' back (as a second process might, or a bug): the
    # session stays open in its table, and verify still refuses it.
    with store.transaction():
        store.conn.execute("UPDATE users SET disabled_at = ?", (iso(clock.now()),))
    assert store.texts("SELECT id_sha256 FROM web_sessions WHERE ended_at IS NULL") != []
    assert _refusal(sessions.verify(store, cookie, clock.now())) is SessionRefusal.DISABLED
    with pytest.raises(AccessError, match="disabled"):
        sessions.start(store, "wang.fang", clock.now(), None)


def test_no_session_for_an_unknown_user(store: Store, clock: ManualClock) -> None:
    with pytest.raises(AccessError, match="no user"):
        sessions.start(store, "nobody", clock.now(), None)


def test_a_changed_character_makes_a_cookie_unknown(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    cookie, _, _ = sessions.start(store, "wang.fang", clock.now(), None)
    for i in range(len(cookie)):
        swapped = "A" if cookie[i] != "A" else "B"
        forged = cookie[:i] + swapped + cookie[i + 1 :]
        assert _refusal(sessions.verify(store, forged, clock.now())) is SessionRefusal.UNKNOWN
    for forged in ("", cookie + "A", cookie[:-1], " " + cookie[1:], "x" * 100_000):
        assert _refusal(sessions.verify(store, forged, clock.now())) is SessionRefusal.UNKNOWN
        assert sessions.end(store, forged, clock.now()) is False


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(forged=st.text(alphabet=ALPHABET, min_size=43, max_size=43) | st.text(max_size=60))
def test_a_random_cookie_is_unknown(store: Store, clock: ManualClock, forged: str) -> None:
    # No session exists: whatever shape, a made-up cookie is unknown, never an error.
    assert _refusal(sessions.verify(store, forged, clock.now())) is SessionRefusal.UNKNOWN


def test_the_csrf_token_is_the_sessions_own(
    store: Store, clock: ManualClock, password_hash: str
) -> None:
    _add(store, clock, password_hash)
    _, csrf, row = sessions.start(store, "wang.fang", clock.now(), None)
    _, other_csrf, _ = sessions.start(store, "wang.fang", clock.now(), None)
    assert csrf != other_csrf
    assert sessions.check_csrf(row, csrf) is True
    assert sessions.check_csrf(row, other_csrf) is False
    assert sessions.check_csrf(row, None) is False
    assert sessions.check_csrf(row, "") is False
    assert sessions.check_csrf(row, csrf[:-1]) is False
    assert sessions.check_csrf(row, csrf + " ") is False
    assert sessions.check_csrf(row, "jeton-falsifié-é") is False


def _set_cookie_header(tls: bool) -> str:
    response = Response()
    response.set_cookie(value="v" * 43, **sessions.cookie_attributes(tls))
    return response.headers["set-cookie"]


def test_the_cookie_under_tls_is_host_prefixed_and_secure() -> None:
    attrs = sessions.cookie_attributes(True)
    assert attrs == {
        "key": "__Host-linegate_session",
        "max_age": ABSOLUTE_S,
        "path": "/",
        "secure": True,
        "httponly": True,
        "samesite": "strict",
    }
    header = _set_cookie_header(True)
    parts = [p.strip().lower() for p in header.split(";")]
    assert parts[0] == "__host-linegate_session=" + "v" * 43
    assert {"httponly", "samesite=strict", "secure", "path=/", f"max-age={ABSOLUTE_S}"} <= set(
        parts
    )
    # __Host- requires that no Domain be set.
    assert not any(p.startswith("domain") for p in parts)


def test_the_cookie_without_tls_is_not_secure_nor_host_prefixed() -> None:
    attrs = sessions.cookie_attributes(False)
    assert attrs["key"] == "linegate_session"
    assert attrs["secure"] is False
    parts = [p.strip().lower() for p in _set_cookie_header(False).split(";")]
    assert parts[0] == "linegate_session=" + "v" * 43
    assert {"httponly", "samesite=strict", "path=/", f"max-age={ABSOLUTE_S}"} <= set(parts)
    assert "secure" not in parts
