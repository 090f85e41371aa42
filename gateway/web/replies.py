"""One answer per action, however often a terminal sends it: the ``Idempotency-Key``.

A terminal on flaky Wi-Fi cannot tell an action that never arrived from one whose answer
was lost, so it sends again. Without help, a "complete" sent twice completes two tasks
and a scan counts a unit twice. So each action may carry a client-made id in the
``Idempotency-Key`` header (the IETF HTTP API working group's name): the first time, the
action is carried out and its answer kept in the same transaction as its effect; a
request with the same id from the same client is answered with that first answer, marked
``Idempotent-Replayed: true``, and nothing is done again. The same id with another
request (another path or body) is refused, 422 ``IDEMPOTENCY_KEY_REUSED``: a client's bug,
and doing either would be a guess.

Only actions carried out are kept: a refused one changed nothing, and trying it again is
what the operator wants (the badge was scanned meanwhile). Ids are per client (a paired
terminal, an account, a token), so two terminals cannot answer each other's, and kept at
least :data:`KEEP`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

from gateway.access.policy import Principal, TerminalPrincipal, TokenPrincipal, UserPrincipal
from gateway.clock import iso
from gateway.store.db import Store
from gateway.store.rows import ReplyRow

__all__ = [
    "HEADER",
    "KEEP",
    "KEY_PATTERN",
    "REPLAYED_HEADER",
    "Keeper",
    "client_of",
    "find",
    "request_digest",
]

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# A UUID, a ULID or a counter with a prefix: printable, short, no spaces.
KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# A retry comes within seconds, a terminal back from a dropped Wi-Fi within minutes. Longer
# costs disk: at 10 actions/s two hours are some 72,000 answers (about 25 MB).
KEEP = timedelta(hours=2)
# Old answers are deleted every this many kept ones (a delete by the index on ``at``).
PRUNE_EVERY = 500


def client_of(principal: Principal) -> str | None:
    """Whose ids these are: the terminal (not its operator: one terminal's retries are
    the same client's across a change of operator), the account or the token."""
    if isinstance(principal, TerminalPrincipal):
        return f"terminal:{principal.terminal_id}"
    if isinstance(principal, UserPrincipal):
        return f"user:{principal.username}"
    if isinstance(principal, TokenPrincipal):
        return f"token:{principal.token_id}"
    return None


def request_digest(method: str, path: str, body: bytes) -> str:
    """What makes a request the same request: its method, path and body."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def find(store: Store, client: str, key: str) -> ReplyRow | None:
    return store.fetch_one(
        ReplyRow, "SELECT * FROM replies WHERE client = ? AND key = ?", (client, key)
    )


class Keeper:
    """Keeps answers (in the caller's transaction) and deletes old ones now and then."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._kept = 0

    def keep(
        self, client: str, key: str, digest: str, answer: dict[str, Any], now: datetime
    ) -> None:
        if not self._store.in_transaction:
            raise RuntimeError("an answer is kept in the transaction of its action")
        self._store.conn.execute(
            "INSERT INTO replies (client, key, request_sha256, answer, at) VALUES (?, ?, ?, ?, ?)",
            (client, key, digest, json.dumps(answer, ensure_ascii=False), iso(now)),
        )
        self._kept += 1
        if self._kept % PRUNE_EVERY == 0:
            self._store.conn.execute("DELETE FROM replies WHERE at < ?", (iso(now - KEEP),))
