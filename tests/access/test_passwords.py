"""Passwords and PINs: argon2id with the chosen parameters, the policy, rehashing."""

from __future__ import annotations

import re
import unicodedata

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access import passwords
from gateway.access.passwords import PolicyError


def test_a_hash_is_argon2id_with_the_chosen_parameters() -> None:
    params = extract_parameters(passwords.hash_secret("correct horse battery"))
    # The parameters the module's docstring argues for: 3 passes, 32 MiB, one lane.
    assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (
        Type.ID,
        3,
        32 * 1024,
        1,
    )


def test_the_dummy_hash_costs_what_a_real_one_does() -> None:
    # An unknown username is verified against it: with other parameters it would take
    # another time, and the time would tell which usernames exist.
    assert extract_parameters(passwords.DUMMY_HASH) == extract_parameters(
        passwords.hash_secret("any password at all")
    )
    assert not passwords.needs_rehash(passwords.DUMMY_HASH)


def test_a_password_verifies_and_another_does_not() -> None:
    stored = passwords.hash_password("plum tree at noon", "wang.fang")
    assert passwords.verify(stored, "plum tree at noon")
    assert not passwords.verify(stored, "plum tree at noon ")
    assert not passwords.verify(stored, "Plum tree at noon")
    assert not passwords.verify("not a hash", "plum tree at noon")
    assert "plum" not in stored


def test_one_password_in_two_unicode_forms_is_one_password() -> None:
    composed = "café au lait, bitte"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert passwords.verify(passwords.hash_secret(composed), decomposed)


@settings(max_examples=12, deadline=None)  # each example hashes and verifies (~0.1 s)
@given(st.text(min_size=12, max_size=40), st.text(min_size=1, max_size=3))
def test_any_password_round_trips_and_a_changed_one_fails(password: str, extra: str) -> None:
    stored = passwords.hash_secret(password)
    assert passwords.verify(stored, password)
    assert not passwords.verify(stored, password + extra)


@pytest.mark.parametrize(
    ("password", "username", "why"),
    [
        ("eleven-char", "ann", "at least 12 characters"),
        ("x" * 257, "ann", "at most 256 characters"),
        (" " * 12, "ann", "only spaces"),
        ("wang.fang.01", "wang.fang.01", "cannot be the username"),
        ("WANG.FANG.01", "wang.fang.01", "cannot be the username"),
        ("twelve chars\t", "ann", "control characters"),
    ],
)
def test_the_password_policy_refuses(password: str, username: str, why: str) -> None:
    with pytest.raises(PolicyError, match=why) as refused:
        passwords.hash_password(password, username)
    assert password not in str(refused.value)  # the refusal never repeats the secret


def test_the_password_policy_accepts_twelve_characters_of_any_script() -> None:
    for password in (
        "twelve chars",
        "x" * 256,
        "这是一个足够长的中文密码句子",
        "ann's long password",
    ):
        passwords.check_password_policy(password, "ann")
    # Counted as normalised: these 13 half-width characters are 8 once NFKC joins each
    # kana with its voiced mark.
    with pytest.raises(PolicyError, match="at least 12"):
        passwords.check_password_policy("ﾊﾟﾋﾟﾌﾟﾍﾟﾎﾟｱｲｳ", "ann")


@pytest.mark.parametrize("pin", ["1234", "00000000", "908172"])
def test_a_pin_is_4_to_8_digits(pin: str) -> None:
    assert passwords.verify(passwords.hash_pin(pin), pin)


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4", "١٢٣٤", "12 34", ""])
def test_other_pins_are_refused(pin: str) -> None:
    with pytest.raises(PolicyError, match="4 to 8 digits"):
        passwords.hash_pin(pin)


def test_a_hash_with_other_parameters_needs_rehash() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("pw")
    argon2i = PasswordHasher(time_cost=3, memory_cost=32 * 1024, parallelism=1, type=Type.I).hash(
        "pw"
    )
    assert passwords.needs_rehash(weaker)
    assert passwords.needs_rehash(argon2i)
    assert passwords.needs_rehash("garbage")
    assert not passwords.needs_rehash(passwords.hash_secret("pw"))
    assert passwords.verify(weaker, "pw")  # still verifies: rehashed once it did


def test_only_an_argon2id_hash_passes_for_one() -> None:
    assert passwords.is_argon2id_hash(passwords.hash_secret("pw"))
    argon2i = PasswordHasher(type=Type.I).hash("pw")
    assert not passwords.is_argon2id_hash(argon2i)
    assert not passwords.is_argon2id_hash("correct horse battery")
    assert not passwords.is_argon2id_hash("")


def test_a_random_password_meets_the_policy_and_is_new_each_time() -> None:
    made = {passwords.random_password() for _ in range(50)}
    assert len(made) == 50
    for password in made:
        assert re.fullmatch(r"[a-hj-km-np-z2-9]{5}(-[a-hj-km-np-z2-9]{5}){3}", password)
        passwords.check_password_policy(password, "admin")
