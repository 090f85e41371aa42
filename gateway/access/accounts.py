"""Accounts of the people who are not operators: line lead, quality, maintenance, admin,
viewer. Operators have none: they sign in with their badge at a station.

There is no account until one is added (no default account, no default password). A
disabled account stays, for the audit trail to name it, and can no longer sign in.

Signing in is three steps, so that the station API can keep the slow middle one off its
event loop (the store's connection belongs to the loop's thread)::

    user = find_user(store, username)                                 # the loop
    judged = await asyncio.to_thread(judge_sign_in, user, username, password)
    finish_sign_in(store, judged)                                     # the loop

:func:`sign_in` does the three in a row, for the CLI and the tests.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gateway.access import passwords
from gateway.access.errors import AccessError
from gateway.clock import iso
from gateway.store.db import Store
from gateway.store.rows import Role, UserRow

# Lowercase so that "Wang.Fang" and "wang.fang" are one person (what is typed is lowered);
# starting with a letter, so that none reads as a number; and none like a badge ("OP-…",
# lowered): the audit trail names operators by badge and people by username.
USERNAME_PATTERN = re.compile(r"(?!op-)[a-z][a-z0-9._-]{1,31}")
MAX_NAME_CHARS = 100
ACCOUNT_ROLES = tuple(role for role in Role if role is not Role.OPERATOR)


class SignInRefusal(StrEnum):
    """Why a sign-in was refused (for the audit trail; the person sees :attr:`message`)."""

    UNKNOWN_USER = "unknown_user"
    DISABLED = "disabled"
    WRONG_PASSWORD = "wrong_password"


@dataclass(frozen=True, slots=True)
class SignInRefused:
    reason: SignInRefusal
    username: str

    @property
    def message(self) -> str:
        """What the person is told. An unknown user and a wrong password get the same
        words, so that trying names does not find out which exist; "disabled" is only
        said to someone who gave the right password."""
        if self.reason is SignInRefusal.DISABLED:
            return "this account is disabled: ask an admin"
        return "unknown user or wrong password"


@dataclass(frozen=True, slots=True)
class Judged:
    """What :func:`judge_sign_in` found: the account or a refusal, and, when the password
    was right but its hash was made with older parameters, a new hash of it to store."""

    outcome: UserRow | SignInRefused
    rehash: str | None = None


def normal_username(text: str) -> str:
    """A username as typed, as it is stored."""
    return text.strip().lower()


def check_username(text: str) -> str:
    """``text`` as a new account's username; :class:`AccessError` if it cannot be one."""
    username = normal_username(text)
    if not USERNAME_PATTERN.fullmatch(username):
        raise AccessError(
            f"bad username {text!r}: 2 to 32 characters, lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter, not with 'op-' (a badge)"
        )
    return username


def _name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise AccessError(f"a name has 1 to {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise AccessError("a name cannot contain control characters")
    return name


def _account_role(role: Role) -> Role:
    if role is Role.OPERATOR:
        raise AccessError(
            "operators have no account: they sign in with their badge at a station "
            "([[operators]] in line.toml)"
        )
    return role


def find_user(store: Store, username: str) -> UserRow | None:
    return store.fetch_one(
        UserRow, "SELECT * FROM users WHERE username = ?", (normal_username(username),)
    )


def _existing(store: Store, username: str) -> UserRow:
    user = find_user(store, username)
    if user is None:
        raise AccessError(f"no user {normal_username(username)!r}")
    return user


def list_users(store: Store) -> list[UserRow]:
    return store.fetch_all(UserRow, "SELECT * FROM users ORDER BY username")


def _hash(password_hash: str) -> str:
    if not passwords.is_argon2id_hash(password_hash):
        raise AccessError("a password is stored as its argon2id hash: pass hash_password's")
    return password_hash


def add_user(
    store: Store,
    username: str,
    role: Role,
    password_hash: str,
    now: datetime,
    name: str | None = None,
) -> UserRow:
    """A new account, with ``password_hash`` from :func:`passwords.hash_password` (made
    beforehand, off the event loop and outside the transaction: it is slow)."""
    username = check_username(username)
    role = _account_role(role)
    display = _name(name if name is not None else username)
    password_hash = _hash(password_hash)
    at = iso(now)
    with store.transaction():
        if find_user(store, username) is not None:
            raise AccessError(f"user {username!r} exists already")
        store.conn.execute(
            "INSERT INTO users (username, name, role, password_hash, created_at, "
            "password_set_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (username, display, role.value, password_hash, at, at),
        )
    return _existing(store, username)


def set_password(store: Store, username: str, password_hash: str, now: datetime) -> UserRow:
    """A new password for an account (disabled or not), as :func:`passwords.hash_password`
    made it; its browser sessions end, so that whoever knew the old one is signed out."""
    password_hash = _hash(password_hash)
    with store.transaction():
        user = _existing(store, username)
        store.conn.execute(
            "UPDATE users SET password_hash = ?, password_set_at = ? WHERE username = ?",
            (password_hash, iso(now), user.username),
        )
        end_sessions(store, user.username, now)
    return _existing(store, username)


def disable_user(store: Store, username: str, now: datetime) -> bool:
    """The account can no longer sign in, and its browser sessions end; False if it was
    disabled already."""
    with store.transaction():
        user = _existing(store, username)
        if user.disabled_at is not None:
            return False
        store.conn.execute(
            "UPDATE users SET disabled_at = ? WHERE username = ?", (iso(now), user.username)
        )
        end_sessions(store, user.username, now)
    return True


def enable_user(store: Store, username: str) -> bool:
    """The account can sign in again (with its password as it was); False if it was not
    disabled."""
    with store.transaction():
        user = _existing(store, username)
        if user.disabled_at is None:
            return False
        store.conn.execute(
            "UPDATE users SET disabled_at = NULL WHERE username = ?", (user.username,)
        )
    return True


def end_sessions(store: Store, username: str, now: datetime) -> int:
    """End every open browser session of ``username`` (normalised), in the current
    transaction; how many were open. Here rather than in sessions, which builds on this
    module: a new password or a disabled account signs its holder out everywhere."""
    done = store.conn.execute(
        "UPDATE web_sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL",
        (iso(now), username),
    )
    return done.rowcount


def judge_sign_in(user: UserRow | None, username: str, password: str) -> Judged:
    """Check ``password`` for ``user`` (as :func:`find_user` found it for ``username``).
    CPU only, no store: run it off the event loop. An unknown user costs the same as a
    known one (a hash is verified either way), so the time taken tells nothing either."""
    if user is None:
        passwords.verify(passwords.DUMMY_HASH, password)
        return Judged(SignInRefused(SignInRefusal.UNKNOWN_USER, normal_username(username)))
    if not passwords.verify(user.password_hash, password):
        return Judged(SignInRefused(SignInRefusal.WRONG_PASSWORD, user.username))
    if user.disabled_at is not None:
        return Judged(SignInRefused(SignInRefusal.DISABLED, user.username))
    rehash = passwords.hash_secret(password) if passwords.needs_rehash(user.password_hash) else None
    return Judged(user, rehash)


def finish_sign_in(store: Store, judged: Judged) -> UserRow | SignInRefused:
    """Store the new hash :func:`judge_sign_in` made, if any; the outcome."""
    user = judged.outcome
    if judged.rehash is not None and isinstance(user, UserRow):
        with store.transaction():
            # Only over the hash that was verified: a password changed meanwhile stays.
            store.conn.execute(
                "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
                (judged.rehash, user.username, user.password_hash),
            )
    return user


def sign_in(store: Store, username: str, password: str) -> UserRow | SignInRefused:
    """The account, or why not: :func:`find_user`, :func:`judge_sign_in`,
    :func:`finish_sign_in` in one (blocking) call."""
    judged = judge_sign_in(find_user(store, username), username, password)
    return finish_sign_in(store, judged)
