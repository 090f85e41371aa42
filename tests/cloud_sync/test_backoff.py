"""Backoff: doubling from the initial delay, capped, jittered within bounds, reset."""

from __future__ import annotations

import random

import pytest

from cloud_sync.backoff import Backoff


def test_without_jitter_doubles_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 30.0, jitter=0)
    assert [backoff.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(1.0, 10.0, jitter=0)
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert [backoff.next() for _ in range(3)] == [1, 2, 4]


def test_jitter_stays_within_its_band_and_under_the_cap() -> None:
    backoff = Backoff(1.0, 8.0, jitter=0.2, rng=random.Random(7))
    bases = [1, 2, 4, 8, 8, 8]
    for _ in range(200):
        backoff.reset()
        for base in bases:
            delay = backoff.next()
            assert base * 0.8 <= delay <= min(base * 1.2, 8.0)


def test_jitter_spreads_the_delays() -> None:
    backoff = Backoff(1.0, 10.0, jitter=0.2, rng=random.Random(1))
    delays = set()
    for _ in range(50):
        backoff.reset()
        delays.add(backoff.next())
    assert len(delays) == 50
    assert min(delays) < 0.9 < 1.1 < max(delays)


def test_a_seeded_rng_makes_the_delays_reproducible() -> None:
    first = Backoff(0.5, 30.0, rng=random.Random(42))
    second = Backoff(0.5, 30.0, rng=random.Random(42))
    assert [first.next() for _ in range(10)] == [second.next() for _ in range(10)]


@pytest.mark.parametrize(
    ("initial", "maximum", "jitter"),
    [(0, 1, 0.2), (-1, 1, 0.2), (2, 1, 0.2), (1, 2, -0.1), (1, 2, 1.0)],
)
def test_rejects_nonsense(initial: float, maximum: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, maximum, jitter=jitter)
