"""The sign-in throttle: a growing wait after repeated failures, never a lock-out.

One instance per gateway, in memory (a restart forgets it: it slows guessing down, the
passwords' and PINs' strength is what stops it). Its use around a sign-in::

    wait_s = throttle.check(account, address)
    if wait_s > 0: refuse ("try again in …"), without judging the password
    elif judged wrong: throttle.failed(account, address)
    else: throttle.succeeded(account, address)

A refused attempt is not a failure: nothing was tried, so hammering only waits longer.

Failures are counted over a sliding :data:`WINDOW_S` under three keys, each with its own
:class:`Rule`; an attempt waits for the longest of the three:

- the pair (account, address) is the strict one: 5 free failures, then 1 s doubling to
  5 min. It holds back whoever guesses one account from one place;
- the account, from any address, starts later (20): guessing one account from many
  addresses;
- the address, over all accounts, starts later still (30) and waits at most 30 s: one
  address trying many accounts (a spray). A station's terminal is one address for every
  operator who signs in there, so this limit is loose and short.

Why one bad actor at a station does not hold up the others: typing wrong badges or PINs
for operator A counts against (A, station) and A, not against B. It counts against the
station's address too, but the pair's back-off lets through at most 5 + 9 + 10 = 24
failures for A in any hour (5 free, nine after waits of 1 to 256 s, 511 s in all, then
one each 5 min), fewer than the address's 30: B is not delayed at all. Only trying
several accounts gets the address held back, and then by 30 s at most; and an account
that signed in from that address in the last :data:`KNOWN_FOR_S` (this shift's
operators) is exempt from the address's and the account's back-off, keeping only its
pair's, so a spray at a station delays no one who works there.

Memory is bounded: at most ``max_keys`` keys (and as many known pairs), the least
recently touched forgotten first. A flood of made-up usernames from one address touches
that address's key with every failure, so the flood forgets its own made-up pairs, not
the address.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

# Long enough that the pair's back-off caps what one account gets tried in it (see
# above); short enough that yesterday's typos are forgotten.
WINDOW_S = 3600.0
# This shift's sign-ins from an address: a shift and a half, as the browser sessions.
KNOWN_FOR_S = 12 * 3600.0
# Keys held at most (failure counters; known pairs each): a few MB at most.
MAX_KEYS = 10_000
# An account or address longer than this is cut: it is only a key, and a cut one that
# merges with another is throttled more, not less.
MAX_KEY_CHARS = 128


@dataclass(frozen=True, slots=True)
class Rule:
    """After ``free`` failures in the window, the next attempt waits ``base_s`` doubled
    once per further failure, at most ``max_s``, from the last failure."""

    free: int
    base_s: float
    max_s: float

    def wait_s(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        # Capped before the power, so that a long count cannot overflow the float.
        doublings = min(failures - self.free, 64)
        return min(self.base_s * 2.0**doublings, self.max_s)

    @property
    def kept(self) -> int:
        """Failures worth keeping: past this many the wait is at its maximum anyway."""
        n = self.free
        while self.wait_s(n) < self.max_s:
            n += 1
        return n + 1


PAIR = Rule(free=5, base_s=1.0, max_s=300.0)
ACCOUNT = Rule(free=20, base_s=1.0, max_s=300.0)
ADDRESS = Rule(free=30, base_s=1.0, max_s=30.0)

_Key = tuple[str, ...]


class SignInThrottle:
    """Failures per (account, address), per account, per address; see the module."""

    def __init__(self, monotonic: Callable[[], float], max_keys: int = MAX_KEYS) -> None:
        if max_keys < 3:
            raise ValueError("max_keys must hold one attempt's three keys")
        self._monotonic = monotonic
        self._max_keys = max_keys
        self._failures: OrderedDict[_Key, deque[float]] = OrderedDict()
        self._known: OrderedDict[_Key, float] = OrderedDict()

    def __len__(self) -> int:
        """Keys held (failure counters and known pairs)."""
        return len(self._failures) + len(self._known)

    def check(self, account: str, address: str) -> float:
        """Seconds to wait before this attempt may be judged; 0 to go ahead."""
        now = self._monotonic()
        pair, acct, addr = _keys(account, address)
        waits = [self._wait(pair, PAIR, now)]
        if not self._is_known(pair, now):
            waits += [self._wait(acct, ACCOUNT, now), self._wait(addr, ADDRESS, now)]
        return max(waits)

    def failed(self, account: str, address: str) -> None:
        """A judged attempt was wrong (password, PIN, badge, unknown account)."""
        now = self._monotonic()
        for key, rule in zip(_keys(account, address), (PAIR, ACCOUNT, ADDRESS), strict=True):
            times = self._failures.pop(key, None)
            if times is None:
                times = deque(maxlen=rule.kept)
            times.append(now)
            self._failures[key] = times  # last: the most recently touched
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, account: str, address: str) -> None:
        """A judged attempt was right: the pair starts over and is known from now on.
        The account's and the address's counts stay: this success says nothing about
        the guesses from elsewhere, or at other accounts."""
        pair = _keys(account, address)[0]
        self._failures.pop(pair, None)
        self._known.pop(pair, None)
        self._known[pair] = self._monotonic()
        while len(self._known) > self._max_keys:
            self._known.popitem(last=False)

    def _wait(self, key: _Key, rule: Rule, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        return max(0.0, times[-1] + rule.wait_s(len(times)) - now)

    def _is_known(self, pair: _Key, now: float) -> bool:
        since = self._known.get(pair)
        if since is None:
            return False
        if since <= now - KNOWN_FOR_S:
            del self._known[pair]
            return False
        return True


def _keys(account: str, address: str) -> tuple[_Key, _Key, _Key]:
    account = account[:MAX_KEY_CHARS]
    address = address[:MAX_KEY_CHARS]
    return ("pair", account, address), ("account", account), ("address", address)
