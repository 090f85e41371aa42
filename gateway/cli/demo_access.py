"""The demo's people and terminals, made as an admin makes them on a real line.

No account or password is built in: each run makes one account per role with a random
password and prints it, pairs a terminal for each staffed station (a one-time code,
claimed over the station API's own ``POST /api/terminals/claim``, as a tablet would) and
makes a viewer token for ``linegate devices`` and ``linegate plan``. The simulated
operators then act through their station's terminal like any other client.

For a person at a browser it also makes, per station, a one-time code for a second
terminal: the station's page claims it itself (``/station/{id}?pair=CODE``), so the
browser becomes one of that station's terminals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from gateway.access import accounts, audit, passwords, terminals, tokens
from gateway.access.audit import AuditAction
from gateway.app.root import Gateway
from gateway.clock import iso
from gateway.orderbook.context import LineContext
from gateway.store.rows import AuditOutcome, Role

__all__ = ["DEMO_ACCOUNTS", "DemoAccess", "enrol"]

# One account per role that is not an operator's (operators sign in with their badge).
DEMO_ACCOUNTS = (
    ("lead", Role.LINE_LEAD, "Demo line lead"),
    ("quality", Role.QUALITY, "Demo quality"),
    ("maintenance", Role.MAINTENANCE, "Demo maintenance"),
    ("admin", Role.ADMIN, "Demo admin"),
    ("viewer", Role.VIEWER, "Demo viewer"),
)
ACTOR = "local:demo"


@dataclass(frozen=True)
class DemoAccess:
    passwords: dict[str, tuple[Role, str]]  # username -> (role, password)
    terminals: dict[str, str]  # station -> the terminal's credential
    viewer_token: str
    # station -> a one-time code for a browser to pair as a terminal of that station
    browser_codes: dict[str, str] = field(default_factory=dict)
    browser_codes_expire: datetime | None = None  # on the line's clock


async def enrol(
    gateway: Gateway,
    api_url: str,
    stations: Iterable[str],
    *,
    code_lifetime: timedelta = terminals.CODE_LIFETIME,
) -> DemoAccess:
    """Accounts with new random passwords (a kept data folder gets new ones each run),
    a paired terminal per station, a viewer token, and per station a one-time pairing
    code for a browser, valid ``code_lifetime`` on the line's clock (the demo's clock runs
    fast: a person needs the code to last in their own time)."""
    stations = list(stations)
    core = gateway.core
    store = gateway.store
    made: dict[str, tuple[Role, str]] = {}
    for username, role, name in DEMO_ACCOUNTS:
        password = passwords.random_password()
        # argon2id costs tens of milliseconds: off the loop, the line is already serving.
        hashed = await asyncio.to_thread(passwords.hash_password, password, username)
        now = core.clock.now()
        with store.transaction():  # the account and its record together
            if accounts.find_user(store, username) is None:
                accounts.add_user(store, username, role, hashed, now, name)
                action = AuditAction.USER_ADD
            else:
                accounts.set_password(store, username, hashed, now)
                action = AuditAction.USER_PASSWORD
            audit.record(
                core,
                actor=ACTOR,
                role=Role.ADMIN,
                action=action,
                outcome=AuditOutcome.OK,
                target=username,
                detail=role.value,
            )
        made[username] = (role, password)
    paired: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=api_url, timeout=10.0) as http:
        for station in stations:
            with store.transaction():
                pairing = _pair(core, station, terminals.CODE_LIFETIME)
            answer = await http.post(
                "/api/terminals/claim",
                json={"code": pairing.code, "name": f"demo terminal {station}"},
            )
            answer.raise_for_status()
            paired[station] = str(answer.json()["credential"])
    codes: dict[str, str] = {}
    expires: datetime | None = None
    for station in stations:
        with store.transaction():
            pairing = _pair(core, station, code_lifetime, "for a browser")
        codes[station] = pairing.code
        expires = pairing.expires_at
    with store.transaction():
        viewer = tokens.create_token(store, "demo viewer", Role.VIEWER, core.clock.now())
        audit.record(
            core,
            actor=ACTOR,
            role=Role.ADMIN,
            action=AuditAction.TOKEN_CREATE,
            outcome=AuditOutcome.OK,
            target=viewer.row.token_id,
            detail=Role.VIEWER.value,
        )
    return DemoAccess(made, paired, viewer.token, codes, expires)


def _pair(
    core: LineContext, station: str, lifetime: timedelta, detail: str | None = None
) -> terminals.Pairing:
    """A pending terminal of ``station`` whose code lasts ``lifetime``, and its record."""
    store = core.store
    now = core.clock.now()
    pairing = terminals.pair(store, core.config, station, now)
    if lifetime != terminals.CODE_LIFETIME:
        # terminals.pair gives every code the same life; only the expiry differs here.
        expires_at = now + lifetime
        store.conn.execute(
            "UPDATE terminals SET code_expires_at = ? WHERE terminal_id = ?",
            (iso(expires_at), pairing.row.terminal_id),
        )
        row = terminals.find_terminal(store, pairing.row.terminal_id)
        assert row is not None
        pairing = terminals.Pairing(row, pairing.code, expires_at)
    audit.record(
        core,
        actor=ACTOR,
        role=Role.ADMIN,
        action=AuditAction.TERMINAL_PAIR,
        outcome=AuditOutcome.OK,
        target=pairing.row.terminal_id,
        station=station,
        detail=detail,
    )
    return pairing
