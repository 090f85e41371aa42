"""The sign-in throttle: waits that grow after 5 failures and start over on success; a
station's address held back only for a spray, and by 30 s at most; bounded memory."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access.throttle import KNOWN_FOR_S, WINDOW_S, SignInThrottle

STATION = "10.0.0.21"


class ManualMonotonic:
    """Monotonic seconds that stand still until the test moves them."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _fail_as_fast_as_allowed(
    throttle: SignInThrottle, clock: ManualMonotonic, account: str, address: str
) -> float:
    """One more failure, after waiting what the throttle asks; the wait."""
    wait = throttle.check(account, address)
    clock.advance(wait)
    assert throttle.check(account, address) == 0
    throttle.failed(account, address)
    return wait


def test_five_failures_are_free_then_the_wait_doubles_to_five_minutes() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    waits = [_fail_as_fast_as_allowed(throttle, clock, "wang.fang", STATION) for _ in range(16)]
    # By the definition: 5 free, then 1 s doubling per failure, at most 300 s.
    assert waits == [0] * 5 + [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_the_wait_counts_from_the_last_failure() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    for _ in range(7):
        _fail_as_fast_as_allowed(throttle, clock, "wang.fang", STATION)
    assert throttle.check("wang.fang", STATION) == 4
    clock.advance(3)
    assert throttle.check("wang.fang", STATION) == 1
    clock.advance(1)
    assert throttle.check("wang.fang", STATION) == 0


def test_a_success_starts_the_account_over() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    for _ in range(8):
        _fail_as_fast_as_allowed(throttle, clock, "wang.fang", STATION)
    clock.advance(throttle.check("wang.fang", STATION))
    throttle.succeeded("wang.fang", STATION)
    assert throttle.check("wang.fang", STATION) == 0
    waits = [_fail_as_fast_as_allowed(throttle, clock, "wang.fang", STATION) for _ in range(6)]
    assert waits == [0] * 5 + [1]


def test_failures_are_forgotten_after_the_window() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    for _ in range(6):
        _fail_as_fast_as_allowed(throttle, clock, "wang.fang", STATION)
    assert throttle.check("wang.fang", STATION) > 0
    clock.advance(WINDOW_S)
    assert throttle.check("wang.fang", STATION) == 0
    assert len(throttle) == 0


def test_a_bad_actor_on_one_account_never_delays_another_at_the_station() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    failures = 0
    while clock.t < 1000 + 4 * WINDOW_S:
        _fail_as_fast_as_allowed(throttle, clock, "op-0007", STATION)
        failures += 1
        assert throttle.check("op-0012", STATION) == 0
    assert throttle.check("op-0007", STATION) > 0
    # The bad actor got far fewer tries than without the throttle (one a second).
    assert failures < 100


def test_a_spray_across_accounts_holds_the_address_back_by_thirty_seconds_at_most() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    throttle.succeeded("op-0003", STATION)  # signed in there this shift
    waits = []
    for i in range(200):
        waits.append(_fail_as_fast_as_allowed(throttle, clock, f"op-{1000 + i}", STATION))
        assert throttle.check("op-0012", STATION) <= 30
        assert throttle.check("op-0003", STATION) == 0
    # 30 free across accounts (each new account's own pair is fresh), then 1 s doubling
    # to 30 s: the address's rule applies to a spray the pairs would never see.
    assert waits[:30] == [0] * 30
    assert waits[30:36] == [1, 2, 4, 8, 16, 30]
    assert set(waits[36:]) == {30}
    assert throttle.check("op-0012", STATION) > 0
    # Elsewhere the same accounts are not held back by this address.
    assert throttle.check("op-0012", "10.0.0.22") == 0


def test_a_known_operator_is_known_for_a_shift_and_a_half_only() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    throttle.succeeded("op-0003", STATION)
    clock.advance(KNOWN_FOR_S)
    for i in range(31):
        _fail_as_fast_as_allowed(throttle, clock, f"op-{1000 + i}", STATION)
    assert throttle.check("op-0003", STATION) > 0


def test_one_account_guessed_from_many_addresses_is_held_back() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    waits = [
        _fail_as_fast_as_allowed(throttle, clock, "wang.fang", f"10.1.{i // 250}.{i % 250}")
        for i in range(26)
    ]
    # Each address's pair is fresh; the account's rule: 20 free, then 1 s doubling.
    assert waits == [0] * 20 + [1, 2, 4, 8, 16, 32]


def test_memory_holds_under_100k_random_accounts() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock, max_keys=1000)
    rng = random.Random(12)
    for i in range(100_000):
        account = f"{rng.getrandbits(64):016x}"
        throttle.failed(account, STATION)
        throttle.failed(account, f"10.{rng.randrange(256)}.{rng.randrange(256)}.1")
        throttle.succeeded(f"{rng.getrandbits(64):x}", STATION)
        if i % 100 == 0:
            assert len(throttle) <= 2 * 1000
    assert len(throttle) <= 2 * 1000
    # The flood forgot its own keys, not the address it came from.
    assert throttle.check("op-0012", STATION) > 0


def test_a_huge_account_name_is_cut() -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock)
    for i in range(6):
        throttle.failed("x" * 10_000 + str(i), STATION)
    # Cut to the same key: six failures of one pair, so 1 s doubled once.
    assert throttle.check("x" * 10_000, STATION) == 2


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "op-1", "op-2"]),
            st.sampled_from(["10.0.0.1", "10.0.0.2"]),
            st.booleans(),
            st.floats(min_value=0, max_value=900),
        ),
        max_size=120,
    )
)
def test_a_wait_is_never_negative_nor_past_five_minutes(
    steps: list[tuple[str, str, bool, float]],
) -> None:
    clock = ManualMonotonic()
    throttle = SignInThrottle(clock, max_keys=8)
    for account, address, right, dt in steps:
        clock.advance(dt)
        wait = throttle.check(account, address)
        assert 0 <= wait <= 300
        if wait == 0:
            (throttle.succeeded if right else throttle.failed)(account, address)
        assert len(throttle) <= 16
