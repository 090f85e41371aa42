"""API tokens: shown once, kept as SHA-256, refused when revoked, expired or altered."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access import tokens
from gateway.access.errors import AccessError
from gateway.access.tokens import TokenRefusal, TokenRefused, TokenState
from gateway.clock import iso
from gateway.store.db import Store
from gateway.store.rows import ApiTokenRow, Role
from tests.clocks import ManualClock

# lgt_, 8 hex digits of id, _, 43 characters of token_urlsafe(32) (32 bytes in base64url).
TOKEN_SHAPE = re.compile(r"lgt_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")


def test_a_token_is_shown_once_and_only_its_secrets_hash_is_kept(
    store: Store, clock: ManualClock
) -> None:
    new = tokens.create_token(store, "office-erp", Role.VIEWER, clock.now())
    shape = TOKEN_SHAPE.fullmatch(new.token)
    assert shape is not None
    token_id, secret = shape.groups()
    assert new.row.token_id == token_id
    row = store.one("SELECT * FROM api_tokens")
    assert row is not None
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    for value in tuple(row):
        assert secret not in str(value) and new.token not in str(value)
    listed = tokens.list_tokens(store)
    assert [t.token_id for t in listed] == [token_id]
    assert secret not in repr(listed)


def test_a_token_verifies_as_its_row(store: Store, clock: ManualClock) -> None:
    new = tokens.create_token(store, "monitoring", Role.MAINTENANCE, clock.now())
    found = tokens.verify_token(store, new.token, clock.now())
    assert isinstance(found, ApiTokenRow)
    assert (found.token_id, found.name, found.role) == (
        new.row.token_id,
        "monitoring",
        Role.MAINTENANCE,
    )


def test_last_use_is_written_at_most_once_a_minute(store: Store, clock: ManualClock) -> None:
    new = tokens.create_token(store, "monitoring", Role.VIEWER, clock.now())
    first = clock.now()

    def last_used() -> list[str]:
        return store.texts("SELECT last_used_at FROM api_tokens WHERE last_used_at IS NOT NULL")

    assert last_used() == []
    tokens.verify_token(store, new.token, first)
    assert last_used() == [iso(first)]
    clock.advance(59.9)
    tokens.verify_token(store, new.token, clock.now())
    assert last_used() == [iso(first)]
    clock.advance(0.1)
    tokens.verify_token(store, new.token, clock.now())
    assert last_used() == [iso(first + timedelta(seconds=60))]


def test_a_revoked_token_is_refused(store: Store, clock: ManualClock) -> None:
    new = tokens.create_token(store, "office-erp", Role.LINE_LEAD, clock.now())
    assert tokens.revoke_token(store, new.row.token_id, clock.now())
    assert not tokens.revoke_token(store, new.row.token_id, clock.now())
    assert tokens.verify_token(store, new.token, clock.now()) == TokenRefused(TokenRefusal.REVOKED)
    found = tokens.find_token(store, new.row.token_id)
    assert found is not None and found.revoked_at == iso(clock.now())
    assert tokens.token_state(found, clock.now()) is TokenState.REVOKED
    with pytest.raises(AccessError, match="no token 'ffffffff'"):
        tokens.revoke_token(store, "ffffffff", clock.now())


def test_a_token_expires_after_its_days(store: Store, clock: ManualClock) -> None:
    created = clock.now()
    new = tokens.create_token(store, "contractor", Role.VIEWER, created, expires_days=2)
    assert new.row.expires_at == iso(created + timedelta(days=2))
    clock.advance(2 * 86_400 - 1)
    assert isinstance(tokens.verify_token(store, new.token, clock.now()), ApiTokenRow)
    clock.advance(1)
    assert tokens.verify_token(store, new.token, clock.now()) == TokenRefused(TokenRefusal.EXPIRED)
    assert tokens.token_state(new.row, clock.now()) is TokenState.EXPIRED


def test_revoked_or_expired_is_told_only_to_the_real_secret(
    store: Store, clock: ManualClock
) -> None:
    new = tokens.create_token(store, "office-erp", Role.VIEWER, clock.now())
    tokens.revoke_token(store, new.row.token_id, clock.now())
    forged = new.token[:-1] + ("A" if new.token[-1] != "A" else "B")
    assert tokens.verify_token(store, forged, clock.now()) == TokenRefused(TokenRefusal.UNKNOWN)


@pytest.mark.parametrize(
    "token", ["", "lgt_", "lgt_0000000_x", "Bearer lgt_", "lgc_00000000_" + "A" * 43, "x" * 5000]
)
def test_what_is_not_a_token_is_unknown(store: Store, clock: ManualClock, token: str) -> None:
    tokens.create_token(store, "office-erp", Role.VIEWER, clock.now())
    assert tokens.verify_token(store, token, clock.now()) == TokenRefused(TokenRefusal.UNKNOWN)


def test_a_token_with_one_character_changed_never_verifies(
    store: Store, clock: ManualClock
) -> None:
    new = tokens.create_token(store, "office-erp", Role.ADMIN, clock.now())
    alphabet = "abcdef0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZghijklmnopqrstuvwxyz_-"

    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, len(new.token) - 1), st.sampled_from(alphabet))
    def altered(index: int, char: str) -> None:
        if new.token[index] == char:
            return
        token = new.token[:index] + char + new.token[index + 1 :]
        assert isinstance(tokens.verify_token(store, token, clock.now()), TokenRefused)

    altered()
    assert isinstance(tokens.verify_token(store, new.token, clock.now()), ApiTokenRow)


def test_what_a_token_may_not_be(store: Store, clock: ManualClock) -> None:
    with pytest.raises(AccessError, match="operator"):
        tokens.create_token(store, "scanner", Role.OPERATOR, clock.now())
    with pytest.raises(AccessError, match="1 to 3650 days"):
        tokens.create_token(store, "forever", Role.VIEWER, clock.now(), expires_days=0)
    with pytest.raises(AccessError, match="1 to 64 characters"):
        tokens.create_token(store, " ", Role.VIEWER, clock.now())
    assert tokens.list_tokens(store) == []


def test_two_tokens_never_verify_as_each_other(store: Store, clock: ManualClock) -> None:
    a = tokens.create_token(store, "a", Role.VIEWER, clock.now())
    b = tokens.create_token(store, "b", Role.ADMIN, clock.now())
    assert a.row.token_id != b.row.token_id
    secret_a = a.token.split("_", 2)[2]
    crossed = f"lgt_{b.row.token_id}_{secret_a}"
    assert tokens.verify_token(store, crossed, clock.now()) == TokenRefused(TokenRefusal.UNKNOWN)
