"""Passwords and operator PINs: argon2id hashes (PHC strings), the policy they must meet.

Hashing and verifying cost tens of milliseconds of CPU and :data:`MEMORY_KIB` of memory by
design; the functions are plain and synchronous so that the station API can run them off
its event loop (``asyncio.to_thread``) and the CLI can call them directly.

The parameters are for a Raspberry Pi 5–class box that also runs the line: one lane
(``parallelism=1``) so a sign-in occupies one core and leaves the others to the event loop
and the planner; 32 MiB so that several sign-ins at once cost a 4 GB box little (four at
once: 128 MiB, next to the planner's 1 GiB); three passes to bring one verification to
~70 ms on a server core (a Pi 5 core is slower, still well under 0.3 s). That is above
OWASP's argon2id floor (19 MiB, t=2) and below RFC 9106's 64 MiB, t=3, p=4 profile, which
would take four cores for ~0.15 s per sign-in on the box the line runs on.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.access.errors import AccessError

TIME_COST = 3
MEMORY_KIB = 32 * 1024
PARALLELISM = 1

# Accounts can replan the line, override refusals and manage tokens and terminals. Sign-in
# is rate-limited, so online guessing is slow; but a copy of the database (an SD card
# taken out of the box) can be attacked offline at the hash's cost only. Twelve characters
# keep that out of reach even for a lowercase passphrase (26^12 ≈ 10^17 guesses), and are
# still easy as a few words. No composition rules (NIST SP 800-63B): length does the work.
MIN_PASSWORD_CHARS = 12
# Hashing cost grows with the length; nobody types more.
MAX_PASSWORD_CHARS = 256
PIN_PATTERN = re.compile(r"[0-9]{4,8}")  # ASCII digits: str.isdigit also takes "٣" or "³"

# A hash of a random string nobody kept, with the parameters above: verified against when a
# username is unknown, so that "unknown" takes as long as "wrong password" (tests check its
# parameters are the hasher's).
DUMMY_HASH = (
    "$argon2id$v=19$m=32768,t=3,p=1$KPHcUtHhKCTdIPhPPkRU1A"
    "$8fN2I2GmgsH4t81wTB85BIIOPhwcfNpfmCWvkt1o5DY"
)

# For random_password: lowercase letters and digits without look-alikes (no i, l, o, 0, 1).
_RANDOM_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class PolicyError(AccessError):
    """A password or PIN the policy refuses; ``str()`` says why, never the secret."""


def _hasher() -> PasswordHasher:
    # A new one per call: cheap (it holds only the parameters), and no module state.
    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM)


def _normal(secret: str) -> str:
    # The same password typed on another keyboard or system may arrive in another Unicode
    # form ("é" as one code point or two); NFKC makes them one (NIST SP 800-63B, 5.1.1.2).
    return unicodedata.normalize("NFKC", secret)


def check_password_policy(password: str, username: str) -> None:
    """Raise :class:`PolicyError` unless ``password`` may be ``username``'s."""
    normal = _normal(password)
    if len(normal) < MIN_PASSWORD_CHARS:
        raise PolicyError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(normal) > MAX_PASSWORD_CHARS:
        raise PolicyError(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    if not normal.strip():
        raise PolicyError("a password cannot be only spaces")
    if normal.casefold() == _normal(username).casefold():
        raise PolicyError("a password cannot be the username")
    if any(unicodedata.category(c) == "Cc" for c in normal):
        # A control character (a tab pasted along, an escape) is a typing accident that
        # would lock its owner out.
        raise PolicyError("a password cannot contain control characters")


def check_pin_policy(pin: str) -> None:
    """Raise :class:`PolicyError` unless ``pin`` is 4 to 8 digits."""
    if not PIN_PATTERN.fullmatch(pin):
        raise PolicyError("a PIN is 4 to 8 digits (0-9)")


def hash_secret(secret: str) -> str:
    """The argon2id hash (a PHC string) of a password or PIN already checked."""
    return _hasher().hash(_normal(secret))


def hash_password(password: str, username: str) -> str:
    """``password``'s hash, after :func:`check_password_policy`."""
    check_password_policy(password, username)
    return hash_secret(password)


def hash_pin(pin: str) -> str:
    """``pin``'s hash, after :func:`check_pin_policy`."""
    check_pin_policy(pin)
    return hash_secret(pin)


def verify(stored_hash: str, secret: str) -> bool:
    """``secret`` is the one ``stored_hash`` was made from. A damaged or foreign hash is
    False, not an error: the person is refused either way."""
    try:
        return _hasher().verify(stored_hash, _normal(secret))
    except (VerificationError, InvalidHashError):  # a mismatch is a VerificationError
        return False


def is_argon2id_hash(text: str) -> bool:
    """``text`` is an argon2id hash (a PHC string), not a password in clear."""
    try:
        return extract_parameters(text).type is Type.ID
    except InvalidHashError:
        return False


def needs_rehash(stored_hash: str) -> bool:
    """``stored_hash`` was made with other parameters than today's: once its password is
    verified, hash it again (it is in hand only then)."""
    try:
        return _hasher().check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def random_password() -> str:
    """A password for a new account (``linegate users add --random``, the demo): 20
    characters in four groups, ~99 bits, easy to read aloud and to type."""
    chars = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(20))
    return "-".join(chars[i : i + 5] for i in range(0, 20, 5))
