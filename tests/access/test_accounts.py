"""Accounts: added, signed in, refused (unknown, wrong password, disabled), changed."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import pytest
from argon2 import PasswordHasher, extract_parameters

from gateway.access import accounts, passwords
from gateway.access.accounts import SignInRefusal, SignInRefused
from gateway.access.errors import AccessError
from gateway.clock import iso
from gateway.store.db import Store
from gateway.store.rows import Role, UserRow
from tests.clocks import ManualClock

PASSWORD = "plum tree at noon"


def _add(
    store: Store, clock: ManualClock, username: str = "wang.fang", role: Role = Role.LINE_LEAD
) -> UserRow:
    return accounts.add_user(
        store, username, role, passwords.hash_password(PASSWORD, username), clock.now()
    )


def test_a_new_line_has_no_account(store: Store) -> None:
    assert accounts.list_users(store) == []
    assert store.count("SELECT count(*) FROM users") == 0


def test_an_account_signs_in_with_its_password(store: Store, clock: ManualClock) -> None:
    _add(store, clock, name := "wang.fang")
    user = accounts.sign_in(store, name, PASSWORD)
    assert isinstance(user, UserRow)
    assert (user.username, user.role, user.name) == ("wang.fang", Role.LINE_LEAD, "wang.fang")
    assert user.created_at == user.password_set_at == iso(clock.now())
    assert user.disabled_at is None


def test_the_table_holds_an_argon2id_hash_not_the_password(
    store: Store, clock: ManualClock
) -> None:
    _add(store, clock)
    row = store.one("SELECT * FROM users")
    assert row is not None
    assert all(PASSWORD not in str(value) for value in tuple(row))
    assert passwords.is_argon2id_hash(str(row["password_hash"]))


def test_a_wrong_password_is_refused(store: Store, clock: ManualClock) -> None:
    _add(store, clock)
    refused = accounts.sign_in(store, "wang.fang", "plum tree at night")
    assert refused == SignInRefused(SignInRefusal.WRONG_PASSWORD, "wang.fang")


def test_an_unknown_user_is_told_what_a_wrong_password_is(store: Store, clock: ManualClock) -> None:
    _add(store, clock)
    unknown = accounts.sign_in(store, "li.qiang", PASSWORD)
    wrong = accounts.sign_in(store, "wang.fang", "plum tree at night")
    assert isinstance(unknown, SignInRefused) and isinstance(wrong, SignInRefused)
    assert unknown.reason is SignInRefusal.UNKNOWN_USER  # the audit trail tells them apart
    assert unknown.message == wrong.message == "unknown user or wrong password"


def test_an_unknown_user_takes_as_long_as_a_wrong_password(
    store: Store, clock: ManualClock
) -> None:
    _add(store, clock)

    def median_s(username: str) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            accounts.sign_in(store, username, "plum tree at night")
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    wrong, unknown = median_s("wang.fang"), median_s("li.qiang")
    # Without the dummy verification "unknown" would answer in microseconds, not in the
    # tens of milliseconds of an argon2id verification: a factor of thousands, not two.
    assert unknown > wrong / 2


def test_a_disabled_account_is_refused_and_enabled_again(store: Store, clock: ManualClock) -> None:
    _add(store, clock)
    clock.advance(60)
    assert accounts.disable_user(store, "wang.fang", clock.now())
    assert not accounts.disable_user(store, "wang.fang", clock.now())  # already
    refused = accounts.sign_in(store, "wang.fang", PASSWORD)
    assert refused == SignInRefused(SignInRefusal.DISABLED, "wang.fang")
    assert isinstance(refused, SignInRefused)
    assert "disabled" in refused.message
    # Only the right password learns that the account is disabled.
    wrong = accounts.sign_in(store, "wang.fang", "plum tree at night")
    assert wrong == SignInRefused(SignInRefusal.WRONG_PASSWORD, "wang.fang")
    kept = accounts.find_user(store, "wang.fang")
    assert kept is not None and kept.disabled_at == iso(clock.now())  # kept, for the audit
    assert accounts.enable_user(store, "wang.fang")
    assert not accounts.enable_user(store, "wang.fang")
    assert isinstance(accounts.sign_in(store, "wang.fang", PASSWORD), UserRow)


def test_disabling_or_a_new_password_ends_the_browser_sessions(
    store: Store, clock: ManualClock
) -> None:
    _add(store, clock)
    _add(store, clock, "li.qiang")
    at = iso(clock.now())
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO web_sessions (id_sha256, username, csrf_token, created_at, expires_at) "
            "VALUES (?, ?, 'csrf', ?, ?)",
            [
                (f"s{i}", name, at, iso(clock.now() + timedelta(hours=8)))
                for i, name in enumerate(("wang.fang", "li.qiang", "wang.fang"))
            ],
        )
    clock.advance(30)
    accounts.disable_user(store, "wang.fang", clock.now())
    ended = {str(r[0]): r[1] for r in store.all("SELECT id_sha256, ended_at FROM web_sessions")}
    assert ended == {"s0": iso(clock.now()), "s1": None, "s2": iso(clock.now())}
    clock.advance(30)
    accounts.set_password(
        store, "li.qiang", passwords.hash_password("a new password here", "li.qiang"), clock.now()
    )
    assert store.texts("SELECT ended_at FROM web_sessions WHERE id_sha256 = 's1'") == [
        iso(clock.now())
    ]


def test_a_new_password_replaces_the_old_one(store: Store, clock: ManualClock) -> None:
    _add(store, clock)
    clock.advance(3600)
    new = "an orange boat on the river"
    user = accounts.set_password(
        store, "wang.fang", passwords.hash_password(new, "wang.fang"), clock.now()
    )
    assert user.password_set_at == iso(clock.now()) != user.created_at
    assert accounts.sign_in(store, "wang.fang", PASSWORD) == SignInRefused(
        SignInRefusal.WRONG_PASSWORD, "wang.fang"
    )
    assert isinstance(accounts.sign_in(store, "wang.fang", new), UserRow)
    with pytest.raises(AccessError, match="no user 'nobody'"):
        accounts.set_password(store, "nobody", passwords.hash_secret(new), clock.now())


def test_usernames_are_one_case(store: Store, clock: ManualClock) -> None:
    user = _add(store, clock, "Wang.Fang")
    assert user.username == "wang.fang"
    assert isinstance(accounts.sign_in(store, " WANG.fang ", PASSWORD), UserRow)
    with pytest.raises(AccessError, match="exists already"):
        _add(store, clock, "wang.fang")


@pytest.mark.parametrize("username", ["a", "1abc", "OP-1001", "wang fang", "x" * 33, "王芳", ""])
def test_a_bad_username_is_refused(store: Store, clock: ManualClock, username: str) -> None:
    with pytest.raises(AccessError, match="bad username"):
        accounts.add_user(
            store, username, Role.VIEWER, passwords.hash_secret(PASSWORD), clock.now()
        )
    assert accounts.list_users(store) == []


def test_operators_have_no_account(store: Store, clock: ManualClock) -> None:
    with pytest.raises(AccessError, match="badge"):
        _add(store, clock, role=Role.OPERATOR)
    assert accounts.ACCOUNT_ROLES == (
        Role.LINE_LEAD,
        Role.QUALITY,
        Role.MAINTENANCE,
        Role.ADMIN,
        Role.VIEWER,
    )


def test_a_password_in_clear_is_not_taken_for_a_hash(store: Store, clock: ManualClock) -> None:
    with pytest.raises(AccessError, match="argon2id hash"):
        accounts.add_user(store, "ann", Role.VIEWER, PASSWORD, clock.now())
    with pytest.raises(AccessError, match="argon2id hash"):
        accounts.set_password(store, "ann", PASSWORD, clock.now())


def test_a_name_is_shown_as_given(store: Store, clock: ManualClock) -> None:
    user = accounts.add_user(
        store, "wang.fang", Role.QUALITY, passwords.hash_secret(PASSWORD), clock.now(), " 王芳 "
    )
    assert user.name == "王芳"
    with pytest.raises(AccessError, match="1 to 100 characters"):
        accounts.add_user(
            store, "ann", Role.VIEWER, passwords.hash_secret(PASSWORD), clock.now(), ""
        )


def test_an_old_hash_is_replaced_at_the_next_sign_in(store: Store, clock: ManualClock) -> None:
    _add(store, clock)
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with store.transaction() as conn:
        conn.execute("UPDATE users SET password_hash = ?", (old,))
    assert accounts.sign_in(store, "wang.fang", "plum tree at night") == SignInRefused(
        SignInRefusal.WRONG_PASSWORD, "wang.fang"
    )
    assert store.texts("SELECT password_hash FROM users") == [old]  # not on a wrong password
    assert isinstance(accounts.sign_in(store, "wang.fang", PASSWORD), UserRow)
    row = store.one("SELECT password_hash, password_set_at FROM users")
    assert row is not None
    rehashed = str(row[0])
    assert extract_parameters(rehashed).memory_cost == 32 * 1024
    assert passwords.verify(rehashed, PASSWORD)
    assert row[1] == iso(clock.now())  # the same password: not "set" again


def test_a_rehash_does_not_undo_a_password_changed_meanwhile(
    store: Store, clock: ManualClock
) -> None:
    _add(store, clock)
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with store.transaction() as conn:
        conn.execute("UPDATE users SET password_hash = ?", (old,))
    judged = accounts.judge_sign_in(accounts.find_user(store, "wang.fang"), "wang.fang", PASSWORD)
    assert judged.rehash is not None
    new = passwords.hash_password("changed while signing in", "wang.fang")
    accounts.set_password(store, "wang.fang", new, clock.now())
    accounts.finish_sign_in(store, judged)
    assert store.texts("SELECT password_hash FROM users") == [new]
