"""Station-bound terminals: paired once with a short one-time code, then a long-lived
credential until they are unpaired.

``pair`` (an admin, ``linegate terminals pair STATION``) makes a pending terminal with an
8-character code, valid :data:`CODE_LIFETIME`; the terminal enters it (``claim``) and
receives its credential, ``lgc_<terminal_id>_<secret>``, once. Only SHA-256 of the code
and of the secret are kept; the code is erased when claimed, expired or withdrawn.

Guessing: a code is 8 symbols of 32 (40 bits) and lives 10 minutes; every well-formed
code claimed in vain counts against the whole line, since a wrong code cannot say which
pending code it was aimed at (nor may the answer say whether it exists). The
:data:`MAX_FAILED_CLAIMS`-th such failure while codes are pending withdraws every pending
code: the admin pairs again. So a guesser gets 5 tries per pairing at 2^-40 each, and at
worst makes an admin pair again, which the audit trail shows. A malformed code (wrong
length, a letter outside the alphabet) could not have hit anything and does not count,
so typing slips do not void a code.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.access.digests import matches, sha256_hex
from gateway.access.errors import AccessError
from gateway.clock import iso
from gateway.config.line import LineConfig
from gateway.store.db import Store
from gateway.store.rows import TerminalRow

# Crockford's base32: no I, L, O, U, so nothing reads as another symbol (or a word).
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARS = 8
CODE_LIFETIME = timedelta(minutes=10)
MAX_FAILED_CLAIMS = 5
PREFIX = "lgc"
CREDENTIAL_PATTERN = re.compile(rf"{PREFIX}_([0-9a-f]{{8}})_([A-Za-z0-9_-]{{43}})")
MAX_NAME_CHARS = 64
# The line's failed claims since codes were last pending with none counted (store settings:
# the CLI and the gateway both pair and claim, in one database).
FAILED_CLAIMS_SETTING = "access.failed_pairing_claims"
# What people read for one another: as Crockford decodes them.
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


class TerminalState(StrEnum):
    PENDING = "pending"  # a code, not claimed yet
    EXPIRED = "expired"  # the code's time ran out before it was claimed
    WITHDRAWN = "withdrawn"  # unpaired before it was claimed, or voided by failed claims
    PAIRED = "paired"
    UNPAIRED = "unpaired"


class ClaimRefusal(StrEnum):
    MALFORMED = "malformed"  # not 8 symbols of the alphabet: could not have hit a code
    NOT_VALID = "not_valid"  # unknown, expired, used or withdrawn: not told apart


class TerminalRefusal(StrEnum):
    UNKNOWN = "unknown"  # malformed, no such terminal, a wrong secret, not paired yet
    UNPAIRED = "unpaired"  # the right credential of a terminal since unpaired


@dataclass(frozen=True, slots=True)
class Pairing:
    """A pending terminal and its code (shown once, as ``XXXX-XXXX``)."""

    row: TerminalRow
    code: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """A terminal paired: ``credential`` is the only time its secret is seen."""

    row: TerminalRow
    credential: str


@dataclass(frozen=True, slots=True)
class ClaimRefused:
    reason: ClaimRefusal
    withdrawn: int = 0  # pending codes this failure withdrew (the line's limit reached)

    @property
    def message(self) -> str:
        return "this pairing code is not valid: ask for a new one"


@dataclass(frozen=True, slots=True)
class TerminalRefused:
    reason: TerminalRefusal

    @property
    def message(self) -> str:
        if self.reason is TerminalRefusal.UNPAIRED:
            return "this terminal was unpaired: pair it again"
        return "unknown terminal: pair it with the station"


def terminal_state(row: TerminalRow, now: datetime) -> TerminalState:
    if row.paired_at is not None:
        return TerminalState.PAIRED if row.unpaired_at is None else TerminalState.UNPAIRED
    if row.unpaired_at is not None:
        return TerminalState.WITHDRAWN
    if row.code_expires_at is None or datetime.fromisoformat(row.code_expires_at) <= now:
        return TerminalState.EXPIRED
    return TerminalState.PENDING


def normal_code(text: str) -> str | None:
    """A code as typed ("abcd-efgh", "ABCD EFGH", an O for a 0), as issued; None when it
    cannot be one."""
    code = "".join(c for c in text.upper() if c not in "- ").translate(_READ_AS)
    if len(code) != CODE_CHARS or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def _name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise AccessError(f"a terminal's name has 1 to {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise AccessError("a terminal's name cannot contain control characters")
    return name


def find_terminal(store: Store, terminal_id: str) -> TerminalRow | None:
    return store.fetch_one(
        TerminalRow, "SELECT * FROM terminals WHERE terminal_id = ?", (terminal_id,)
    )


def list_terminals(store: Store) -> list[TerminalRow]:
    return store.fetch_all(
        TerminalRow, "SELECT * FROM terminals ORDER BY station, created_at, terminal_id"
    )


def _pending_count(store: Store, now: datetime) -> int:
    return store.count(
        "SELECT count(*) FROM terminals WHERE paired_at IS NULL AND unpaired_at IS NULL "
        "AND code_sha256 IS NOT NULL AND code_expires_at > ?",
        (iso(now),),
    )


def _erase_expired_codes(store: Store, now: datetime) -> None:
    store.conn.execute(
        "UPDATE terminals SET code_sha256 = NULL WHERE code_sha256 IS NOT NULL "
        "AND code_expires_at <= ?",
        (iso(now),),
    )


def pair(store: Store, line: LineConfig, station: str, now: datetime) -> Pairing:
    """A pending terminal for ``station`` (a station of ``line``) and its one-time code."""
    if station not in line.stations:
        raise AccessError(
            f"no station {station!r} on this line (stations: {', '.join(sorted(line.stations))})"
        )
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))
    expires_at = now + CODE_LIFETIME
    with store.transaction():
        _erase_expired_codes(store, now)
        if _pending_count(store, now) == 0:
            # No code was pending: failures counted against earlier codes protect nothing.
            store.set_setting(FAILED_CLAIMS_SETTING, "0")
        terminal_id = secrets.token_hex(4)
        while find_terminal(store, terminal_id) is not None:
            terminal_id = secrets.token_hex(4)
        store.conn.execute(
            "INSERT INTO terminals (terminal_id, station, name, code_sha256, code_expires_at, "
            "secret_sha256, created_at, paired_at, unpaired_at) "
            "VALUES (?, ?, NULL, ?, ?, NULL, ?, NULL, NULL)",
            (terminal_id, station, sha256_hex(code), iso(expires_at), iso(now)),
        )
    row = find_terminal(store, terminal_id)
    assert row is not None
    return Pairing(row, f"{code[:4]}-{code[4:]}", expires_at)


def claim(store: Store, code: str, name: str, now: datetime) -> Claimed | ClaimRefused:
    """Exchange a pending code for the terminal's credential (the code is then erased)."""
    name = _name(name)
    normal = normal_code(code)
    if normal is None:
        return ClaimRefused(ClaimRefusal.MALFORMED)
    with store.transaction():
        _erase_expired_codes(store, now)
        row = store.fetch_one(
            TerminalRow,
            "SELECT * FROM terminals WHERE code_sha256 = ? AND paired_at IS NULL "
            "AND unpaired_at IS NULL AND code_expires_at > ?",
            (sha256_hex(normal), iso(now)),
        )
        if row is None:
            return ClaimRefused(ClaimRefusal.NOT_VALID, _count_failure(store, now))
        secret = secrets.token_urlsafe(32)
        store.conn.execute(
            "UPDATE terminals SET name = ?, secret_sha256 = ?, paired_at = ?, "
            "code_sha256 = NULL WHERE terminal_id = ?",
            (name, sha256_hex(secret), iso(now), row.terminal_id),
        )
    paired = find_terminal(store, row.terminal_id)
    assert paired is not None
    return Claimed(paired, f"{PREFIX}_{row.terminal_id}_{secret}")


def _count_failure(store: Store, now: datetime) -> int:
    """Count a failed claim against the line; withdraw every pending code at the limit.
    How many were withdrawn."""
    if _pending_count(store, now) == 0:
        store.set_setting(FAILED_CLAIMS_SETTING, "0")  # nothing to guess: nothing to count
        return 0
    failures = int(store.get_setting(FAILED_CLAIMS_SETTING) or "0") + 1
    if failures < MAX_FAILED_CLAIMS:
        store.set_setting(FAILED_CLAIMS_SETTING, str(failures))
        return 0
    store.set_setting(FAILED_CLAIMS_SETTING, "0")
    withdrawn = store.conn.execute(
        "UPDATE terminals SET code_sha256 = NULL, unpaired_at = ? WHERE paired_at IS NULL "
        "AND unpaired_at IS NULL AND code_sha256 IS NOT NULL AND code_expires_at > ?",
        (iso(now), iso(now)),
    )
    return withdrawn.rowcount


def verify_terminal(store: Store, credential: str) -> TerminalRow | TerminalRefused:
    """The paired terminal whose credential this is, or why not. Cheap (one SHA-256, one
    read): fine on the event loop. Which station it may act for is the row's ``station``."""
    found = CREDENTIAL_PATTERN.fullmatch(credential.strip())
    if found is None:
        return TerminalRefused(TerminalRefusal.UNKNOWN)
    terminal_id, secret = found.groups()
    row = find_terminal(store, terminal_id)
    if row is None or row.secret_sha256 is None or not matches(secret, row.secret_sha256):
        return TerminalRefused(TerminalRefusal.UNKNOWN)
    if row.unpaired_at is not None:
        return TerminalRefused(TerminalRefusal.UNPAIRED)
    return row


def unpair(
    store: Store, now: datetime, terminal_id: str | None = None, station: str | None = None
) -> list[TerminalRow]:
    """End one terminal (by id) or every terminal of a station, paired or pending: their
    credentials and codes no longer work. The terminals ended (none: nothing to end)."""
    if (terminal_id is None) == (station is None):
        raise AccessError("unpair one terminal (its id) or a station's, not both")
    with store.transaction():
        if terminal_id is not None:
            row = find_terminal(store, terminal_id.strip())
            if row is None:
                raise AccessError(f"no terminal {terminal_id.strip()!r}")
            rows = [row] if row.unpaired_at is None else []
        else:
            rows = store.fetch_all(
                TerminalRow,
                "SELECT * FROM terminals WHERE station = ? AND unpaired_at IS NULL "
                "ORDER BY created_at, terminal_id",
                (station,),
            )
        for row in rows:
            # The secret's hash stays: a credential of an unpaired terminal is told
            # "unpaired", not "unknown", which is what its operator needs to hear.
            store.conn.execute(
                "UPDATE terminals SET unpaired_at = ?, code_sha256 = NULL WHERE terminal_id = ?",
                (iso(now), row.terminal_id),
            )
    return [ended for row in rows if (ended := find_terminal(store, row.terminal_id))]
