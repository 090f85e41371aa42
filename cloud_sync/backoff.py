"""Capped exponential backoff with jitter, for reconnecting to the hub."""

from __future__ import annotations

import random


class Backoff:
    """Delays of ``initial_s``, twice that, four times … up to ``max_s``, each jittered.

    Jitter multiplies a delay by a factor drawn uniformly from ``[1 - jitter, 1 + jitter]`` so
    that many gateways cut off by one outage do not reconnect in lockstep; the result never
    exceeds ``max_s``. Pass a seeded ``rng`` for reproducible delays.
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {initial_s} and {max_s}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self._initial = initial_s
        self._max = max_s
        self._jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        self._base = initial_s

    def next(self) -> float:
        """The delay to wait before the next attempt; each call doubles the next base."""
        base = self._base
        self._base = min(base * 2, self._max)
        spread = base * self._jitter
        return min(self._max, base + self._rng.uniform(-spread, spread))

    def reset(self) -> None:
        """Start again from ``initial_s`` (call after a success)."""
        self._base = self._initial
