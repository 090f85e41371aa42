"""Station-bound terminals: a one-time code, its expiry and its guessing limit; a
credential that names one terminal of one station until it is unpaired."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest

from gateway.access import terminals
from gateway.access.errors import AccessError
from gateway.access.terminals import (
    Claimed,
    ClaimRefusal,
    ClaimRefused,
    TerminalRefusal,
    TerminalRefused,
    TerminalState,
)
from gateway.clock import iso
from gateway.config.line import LineConfig
from gateway.store.db import Store
from gateway.store.rows import TerminalRow
from tests.clocks import LINE_MORNING, ManualClock

# Crockford's base32 without I, L, O, U; shown as two groups of four.
CODE_SHAPE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")


def _claimed(store: Store, code: str, clock: ManualClock, name: str = "tablet") -> Claimed:
    claimed = terminals.claim(store, code, name, clock.now())
    assert isinstance(claimed, Claimed), claimed
    return claimed


def _other_code(code: str) -> str:
    """A well-formed code that is not ``code`` (nor, at 2^-40, any other pending one)."""
    return ("0000-0000", "1111-1111")[code == "0000-0000"]


def test_a_code_is_short_kept_as_its_hash_and_expires_in_ten_minutes(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    pairing = terminals.pair(store, line, "pack-1", clock.now())
    assert CODE_SHAPE.fullmatch(pairing.code)
    assert pairing.expires_at == clock.now() + terminals.CODE_LIFETIME
    row = store.one("SELECT * FROM terminals")
    assert row is not None
    bare = pairing.code.replace("-", "")
    assert row["code_sha256"] == hashlib.sha256(bare.encode()).hexdigest()
    assert row["code_expires_at"] == iso(LINE_MORNING + timedelta(minutes=10))
    assert all(bare not in str(v) and pairing.code not in str(v) for v in tuple(row))
    assert terminals.terminal_state(pairing.row, clock.now()) is TerminalState.PENDING


def test_a_claimed_code_gives_a_credential_for_its_station(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    pairing = terminals.pair(store, line, "pack-1", clock.now())
    clock.advance(30)
    claimed = _claimed(store, pairing.code, clock, "pack-1 tablet")
    assert re.fullmatch(r"lgc_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", claimed.credential)
    assert claimed.row.terminal_id == pairing.row.terminal_id
    assert (claimed.row.station, claimed.row.name) == ("pack-1", "pack-1 tablet")
    assert claimed.row.paired_at == iso(clock.now())
    assert claimed.row.code_sha256 is None  # the code is erased
    secret = claimed.credential.split("_", 2)[2]
    assert claimed.row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    found = terminals.verify_terminal(store, claimed.credential)
    assert isinstance(found, TerminalRow)
    assert (found.terminal_id, found.station) == (pairing.row.terminal_id, "pack-1")
    assert terminals.terminal_state(found, clock.now()) is TerminalState.PAIRED


def test_a_code_works_once(store: Store, clock: ManualClock, line: LineConfig) -> None:
    pairing = terminals.pair(store, line, "pack-1", clock.now())
    _claimed(store, pairing.code, clock)
    again = terminals.claim(store, pairing.code, "a second tablet", clock.now())
    assert again == ClaimRefused(ClaimRefusal.NOT_VALID)
    assert store.count("SELECT count(*) FROM terminals WHERE secret_sha256 IS NOT NULL") == 1


def test_a_code_expires(store: Store, clock: ManualClock, line: LineConfig) -> None:
    late = terminals.pair(store, line, "pack-1", clock.now())
    in_time = terminals.pair(store, line, "pack-2", clock.now())
    clock.advance(10 * 60 - 1)
    _claimed(store, in_time.code, clock)
    clock.advance(1)
    refused = terminals.claim(store, late.code, "tablet", clock.now())
    assert refused == ClaimRefused(ClaimRefusal.NOT_VALID)
    row = terminals.find_terminal(store, late.row.terminal_id)
    assert row is not None
    assert terminals.terminal_state(row, clock.now()) is TerminalState.EXPIRED
    assert row.code_sha256 is None  # an expired code's hash is erased too


def test_every_refused_code_gets_the_same_answer(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    expired = terminals.pair(store, line, "pack-1", clock.now())
    clock.advance(11 * 60)
    used = terminals.pair(store, line, "pack-1", clock.now())
    _claimed(store, used.code, clock)
    answers = [
        terminals.claim(store, code, "tablet", clock.now())
        for code in (expired.code, used.code, _other_code(used.code), "short")
    ]
    assert all(isinstance(a, ClaimRefused) for a in answers)
    assert {a.message for a in answers if isinstance(a, ClaimRefused)} == {
        "this pairing code is not valid: ask for a new one"
    }


def test_a_code_may_be_typed_loosely(store: Store, clock: ManualClock, line: LineConfig) -> None:
    pairing = terminals.pair(store, line, "qc-1", clock.now())
    _claimed(store, f"  {pairing.code.lower().replace('-', ' ')} ", clock)
    # As Crockford decodes what people misread: O as 0, I and L as 1.
    assert terminals.normal_code("o1il-0000") == "01110000"
    assert terminals.normal_code("ABCD-EFGU") is None  # U is not in the alphabet
    assert terminals.normal_code("ABCD-EFG") is None


def test_five_failed_claims_withdraw_the_pending_codes(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    first = terminals.pair(store, line, "pack-1", clock.now())
    second = terminals.pair(store, line, "pack-2", clock.now())
    wrong = _other_code(first.code)
    for _ in range(4):
        assert terminals.claim(store, wrong, "x", clock.now()) == ClaimRefused(
            ClaimRefusal.NOT_VALID
        )
    assert terminals.claim(store, wrong, "x", clock.now()) == ClaimRefused(
        ClaimRefusal.NOT_VALID, withdrawn=2
    )
    for pairing in (first, second):
        assert terminals.claim(store, pairing.code, "tablet", clock.now()) == ClaimRefused(
            ClaimRefusal.NOT_VALID
        )
        row = terminals.find_terminal(store, pairing.row.terminal_id)
        assert row is not None and row.code_sha256 is None
        assert terminals.terminal_state(row, clock.now()) is TerminalState.WITHDRAWN
    # The admin pairs again: a new window of five tries.
    third = terminals.pair(store, line, "pack-1", clock.now())
    for _ in range(4):
        terminals.claim(store, _other_code(third.code), "x", clock.now())
    _claimed(store, third.code, clock)


def test_malformed_codes_and_tries_with_nothing_pending_do_not_count(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    for _ in range(10):  # nothing is pending: nothing to guess
        assert terminals.claim(store, "0000-0000", "x", clock.now()) == ClaimRefused(
            ClaimRefusal.NOT_VALID
        )
    pairing = terminals.pair(store, line, "pack-1", clock.now())
    for typo in ("ABC-DEF", "ABCD-EFGHI", "UUUU-UUUU", "") * 5:  # could not hit a code
        assert terminals.claim(store, typo, "x", clock.now()) == ClaimRefused(
            ClaimRefusal.MALFORMED
        )
    for _ in range(4):
        terminals.claim(store, _other_code(pairing.code), "x", clock.now())
    _claimed(store, pairing.code, clock)


def test_unpair_revokes_the_credential(store: Store, clock: ManualClock, line: LineConfig) -> None:
    pairing = terminals.pair(store, line, "emb-1", clock.now())
    claimed = _claimed(store, pairing.code, clock)
    clock.advance(3600)
    ended = terminals.unpair(store, clock.now(), terminal_id=claimed.row.terminal_id)
    assert [(t.terminal_id, t.unpaired_at) for t in ended] == [
        (claimed.row.terminal_id, iso(clock.now()))
    ]
    refused = terminals.verify_terminal(store, claimed.credential)
    assert isinstance(refused, TerminalRefused)
    assert refused.reason is TerminalRefusal.UNPAIRED and "pair it again" in refused.message
    assert terminals.unpair(store, clock.now(), terminal_id=claimed.row.terminal_id) == []
    with pytest.raises(AccessError, match="no terminal 'ffffffff'"):
        terminals.unpair(store, clock.now(), terminal_id="ffffffff")


def test_unpairing_a_station_ends_its_terminals_and_codes(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    a = _claimed(store, terminals.pair(store, line, "pack-1", clock.now()).code, clock)
    pending = terminals.pair(store, line, "pack-1", clock.now())
    other = _claimed(store, terminals.pair(store, line, "pack-2", clock.now()).code, clock)
    ended = terminals.unpair(store, clock.now(), station="pack-1")
    assert {t.terminal_id for t in ended} == {a.row.terminal_id, pending.row.terminal_id}
    assert terminals.verify_terminal(store, a.credential) == TerminalRefused(
        TerminalRefusal.UNPAIRED
    )
    assert terminals.claim(store, pending.code, "x", clock.now()) == ClaimRefused(
        ClaimRefusal.NOT_VALID
    )
    assert isinstance(terminals.verify_terminal(store, other.credential), TerminalRow)
    assert terminals.unpair(store, clock.now(), station="pack-1") == []
    with pytest.raises(AccessError, match="not both"):
        terminals.unpair(store, clock.now())


def test_one_terminals_credential_is_not_anothers(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    a = _claimed(store, terminals.pair(store, line, "pack-1", clock.now()).code, clock)
    b = _claimed(store, terminals.pair(store, line, "pack-2", clock.now()).code, clock)
    found_a = terminals.verify_terminal(store, a.credential)
    found_b = terminals.verify_terminal(store, b.credential)
    assert isinstance(found_a, TerminalRow) and isinstance(found_b, TerminalRow)
    assert (found_a.station, found_b.station) == ("pack-1", "pack-2")
    secret_a = a.credential.split("_", 2)[2]
    crossed = f"lgc_{b.row.terminal_id}_{secret_a}"
    assert terminals.verify_terminal(store, crossed) == TerminalRefused(TerminalRefusal.UNKNOWN)
    altered = a.credential[:-1] + ("A" if a.credential[-1] != "A" else "B")
    assert terminals.verify_terminal(store, altered) == TerminalRefused(TerminalRefusal.UNKNOWN)


def test_a_pending_terminal_has_no_credential(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    pairing = terminals.pair(store, line, "pack-1", clock.now())
    guess = f"lgc_{pairing.row.terminal_id}_" + "A" * 43
    assert terminals.verify_terminal(store, guess) == TerminalRefused(TerminalRefusal.UNKNOWN)
    assert terminals.verify_terminal(store, "") == TerminalRefused(TerminalRefusal.UNKNOWN)


def test_only_a_station_of_the_line_is_paired(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    with pytest.raises(AccessError, match="no station 'pack-9'"):
        terminals.pair(store, line, "pack-9", clock.now())
    assert terminals.list_terminals(store) == []


def test_a_terminal_needs_a_name(store: Store, clock: ManualClock, line: LineConfig) -> None:
    pairing = terminals.pair(store, line, "pack-1", clock.now())
    with pytest.raises(AccessError, match="1 to 64 characters"):
        terminals.claim(store, pairing.code, "  ", clock.now())
    _claimed(store, pairing.code, clock)  # the code was not spent


def test_failures_against_codes_no_longer_pending_do_not_count_against_new_ones(
    store: Store, clock: ManualClock, line: LineConfig
) -> None:
    claimed = terminals.pair(store, line, "pack-1", clock.now())
    expired = terminals.pair(store, line, "pack-2", clock.now())
    for _ in range(4):
        terminals.claim(store, _other_code(claimed.code), "x", clock.now())
    _claimed(store, claimed.code, clock)
    clock.advance(10 * 60)  # the other code expires, with four failures counted
    fresh = terminals.pair(store, line, "pack-2", clock.now())
    for _ in range(4):
        terminals.claim(store, _other_code(fresh.code), "x", clock.now())
    _claimed(store, fresh.code, clock)
    row = terminals.find_terminal(store, expired.row.terminal_id)
    assert row is not None and terminals.terminal_state(row, clock.now()) is TerminalState.EXPIRED
