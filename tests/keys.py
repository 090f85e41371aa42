"""Credentials for the tests' clients of the station API, made as an admin makes them:
each station's terminal paired (a one-time code, claimed for its credential) and an API
token for each role that is not an operator. The clients then go through the gateway's
gate like any other (simulators/keys.py picks the credential per request)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.access import terminals, tokens
from gateway.config.line import LineConfig
from gateway.store.db import Store
from gateway.store.rows import Role
from simulators.keys import LineKeys

TOKEN_ROLES = (Role.LINE_LEAD, Role.QUALITY, Role.MAINTENANCE, Role.ADMIN, Role.VIEWER)


def issue_keys(store: Store, config: LineConfig, now: datetime | None = None) -> LineKeys:
    """Pair a terminal for every station of ``config`` and make a token per role."""
    now = now or datetime.now(UTC)
    paired: dict[str, str] = {}
    for station in config.stations:
        code = terminals.pair(store, config, station, now).code
        claimed = terminals.claim(store, code, f"test terminal {station}", now)
        assert isinstance(claimed, terminals.Claimed), claimed
        paired[station] = claimed.credential
    made = {
        role.value: tokens.create_token(store, f"test {role.value}", role, now).token
        for role in TOKEN_ROLES
    }
    return LineKeys(paired, made)


def issue_keys_in(db: Path, config: LineConfig, now: datetime | None = None) -> LineKeys:
    """:func:`issue_keys` in the database file ``db`` (a gateway's, running or not)."""
    store = Store(db)
    store.open()
    try:
        return issue_keys(store, config, now)
    finally:
        store.close()
