"""The station API's gate, tried on purpose with what issue 12 lists: wrong passwords in a
loop, a replayed or forged cookie, a missing or wrong CSRF token, a token after
revocation, a badge of another station, an operator calling a line lead's route, a
terminal unpaired mid-shift, a missing or wrong PIN. Each gets a clear refusal (401/403,
a code, the words in English and Chinese), an audit record, and changes nothing.

A real gateway serves on a free loopback port (tests/gateway/test_station_api.py's
``served_line``), its store a SQLite file and its hub the in-memory one; its clock is
moved by hand, so a session's expiry is reached without waiting.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.access import accounts, passwords, terminals, tokens
from gateway.access.audit import read_trail
from gateway.app.root import Gateway
from gateway.config.line import AccessSection, PinAction
from gateway.orderbook.alarms import raise_alarm
from gateway.store.rows import AuditOutcome, AuditRow, Role, Severity
from tests.gateway.test_station_api import Line, _config, served_line

PASSWORD = "correct-horse-battery-9"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Line, Gateway]]:
    async with served_line(tmp_path) as (ln, gw):
        yield ln, gw


def _base(gw: Gateway) -> str:
    return f"http://127.0.0.1:{gw.http_port}"


def _trail(gw: Gateway, **match: Any) -> list[AuditRow]:
    rows = read_trail(gw.store)
    return [r for r in rows if all(getattr(r, k) == v for k, v in match.items())]


def _operator_at(gw: Gateway, station: str) -> str | None:
    return gw.stations.session(station).badge


def _refusal(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["ok"] is False and body["code"] == code, body
    # In the operator's words, both languages, and what to do next; never a traceback.
    assert body["message"] and body["next"], body
    assert re.search(r"[\u4e00-\u9fff]", body["message_zh"]), body
    assert body["next_zh"], body
    assert "Traceback" not in r.text
    return body


async def test_no_credential_is_refused_401_audited_and_changes_nothing(
    served: tuple[Line, Gateway],
) -> None:
    ln, gw = served
    async with httpx.AsyncClient(base_url=_base(gw), timeout=10) as anonymous:
        r = await anonymous.post("/api/stations/laser-1/login", json={"badge": "OP-1006"})
        _refusal(r, 401, "NOT_SIGNED_IN")
        assert r.headers["www-authenticate"] == "Bearer"
        _refusal(await anonymous.get("/api/plan"), 401, "NOT_SIGNED_IN")
        # Open: monitoring polls it without credentials.
        assert (await anonymous.get("/api/health")).status_code == 200
        # A malformed bearer and an unknown scheme are one answer.
        for header in ("Bearer lgc_nonsense", "Basic dXNlcjpwYXNz", "Bearer lgt_deadbeef_x"):
            r = await anonymous.get("/api/stations", headers={"Authorization": header})
            _refusal(r, 401, "UNKNOWN_CREDENTIAL")
    assert _operator_at(gw, "laser-1") is None
    refused = _trail(gw, action="request", outcome=AuditOutcome.DENIED)
    assert [r.target for r in refused][:2] == [
        "POST /api/stations/laser-1/login",
        "GET /api/plan",
    ]
    assert refused[0].station == "laser-1" and refused[0].client == "127.0.0.1"
    assert refused[0].detail == "NOT_SIGNED_IN" and refused[0].actor is None
    assert len(refused) == 5
    # Reported to the hub as audit.recorded, with the contract's fields only.
    events = await ln.events("audit.recorded", 5)
    denied = [e["data"] for e in events if e["data"]["action"] == "request"]
    assert denied[0] == {
        "actor": None,
        "role": None,
        "action": "request",
        "target": "POST /api/stations/laser-1/login",
        "station": "laser-1",
        "outcome": "denied",
        "client": "127.0.0.1",
    }


async def test_a_terminal_acts_for_its_own_station_only(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    laser = {"Authorization": f"Bearer {ln.keys.terminal('laser-1')}"}
    # The laser terminal used for qc-1: refused, whatever the badge.
    r = await ln.api.post("/api/stations/qc-1/login", json={"badge": "OP-1005"}, headers=laser)
    body = _refusal(r, 403, "WRONG_STATION")
    assert "laser-1" in body["message"] and "qc-1" in body["message"]
    assert _operator_at(gw, "qc-1") is None
    # Its own station's view is allowed; another's, or the whole line's, is not.
    assert (await ln.api.get("/api/stations/laser-1", headers=laser)).status_code == 200
    _refusal(await ln.api.get("/api/stations/qc-1", headers=laser), 403, "WRONG_STATION")
    _refusal(await ln.api.get("/api/stations", headers=laser), 403, "FORBIDDEN_ROLE")
    # A badge of an operator trained for another station, scanned at laser-1's own
    # terminal: the desk refuses it with why, and the trail has the failed sign-in.
    r = await ln.api.post("/api/stations/laser-1/login", json={"badge": "OP-1005"})
    assert r.status_code == 409 and r.json()["code"] == "NOT_PERMITTED", r.text
    assert "may not work at laser-1" in r.json()["message"]
    assert _operator_at(gw, "laser-1") is None
    failed = _trail(gw, action="sign_in", outcome=AuditOutcome.DENIED)
    assert [(f.actor, f.station, f.detail) for f in failed] == [
        ("OP-1005", "laser-1", "NOT_PERMITTED")
    ]
    wrong = _trail(gw, action="request", detail="WRONG_STATION")
    assert [w.target for w in wrong] == [
        "POST /api/stations/qc-1/login",
        "GET /api/stations/qc-1",
    ]
    assert wrong[0].actor == f"terminal:{ln.keys.terminal('laser-1').split('_')[1]}"


async def test_an_operator_cannot_use_a_line_leads_routes(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    await ln.post("laser-1", "login", {"badge": "OP-1006"})
    signed_in = _trail(gw, action="sign_in", outcome=AuditOutcome.OK)
    assert [(s.actor, s.role, s.station) for s in signed_in] == [("OP-1006", "operator", "laser-1")]
    laser = {"Authorization": f"Bearer {ln.keys.terminal('laser-1')}"}
    r = await ln.api.post(
        "/api/stations/laser-1/reprint", json={"reason": "smudged"}, headers=laser
    )
    body = _refusal(r, 403, "FORBIDDEN_ROLE")
    assert "line lead" in body["message"] and "班组长" in body["message_zh"]
    _refusal(await ln.api.post("/api/plan/replan", headers=laser), 403, "FORBIDDEN_ROLE")
    # use_as_is is quality's, even from the station's own terminal with its operator.
    r = await ln.api.post(
        "/api/stations/laser-1/fail",
        json={"reason": "scratch", "disposition": "use_as_is"},
        headers=laser,
    )
    _refusal(r, 403, "FORBIDDEN_ROLE")
    refused = _trail(gw, action="request", detail="FORBIDDEN_ROLE")
    assert [(r.actor, r.role) for r in refused] == [("OP-1006", "operator")] * 3
    # Nothing was printed, failed or replanned.
    assert _trail(gw, action="reprint") == [] and _trail(gw, action="use_as_is") == []
    # An admin manages accounts, not the line: no station action either.
    admin = {"Authorization": f"Bearer {ln.keys.token('admin')}"}
    r = await ln.api.post("/api/stations/laser-1/pause", json={"reason": "x"}, headers=admin)
    _refusal(r, 403, "FORBIDDEN_ROLE")
    # A viewer reads the board and nothing more.
    viewer = {"Authorization": f"Bearer {ln.keys.token('viewer')}"}
    assert (await ln.api.get("/api/stations", headers=viewer)).status_code == 200
    _refusal(await ln.api.post("/api/plan/replan", headers=viewer), 403, "FORBIDDEN_ROLE")


async def test_a_token_after_revocation_is_refused(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    made = tokens.create_token(gw.store, "office", Role.VIEWER, ln.clock.now())
    office = {"Authorization": f"Bearer {made.token}"}
    assert (await ln.api.get("/api/alarms", headers=office)).status_code == 200
    assert tokens.revoke_token(gw.store, made.row.token_id, ln.clock.now())
    body = _refusal(await ln.api.get("/api/alarms", headers=office), 401, "TOKEN_REVOKED")
    assert "吊销" in body["message_zh"]
    (row,) = _trail(gw, action="request", detail="TOKEN_REVOKED")
    assert row.actor == f"token:{made.row.token_id}" and row.target == "GET /api/alarms"
    # The right id with a wrong secret tells nothing of the token.
    forged = made.token[:-4] + ("AAAA" if not made.token.endswith("AAAA") else "BBBB")
    r = await ln.api.get("/api/alarms", headers={"Authorization": f"Bearer {forged}"})
    _refusal(r, 401, "UNKNOWN_CREDENTIAL")


async def test_a_terminal_unpaired_mid_shift_stops_at_once(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    await ln.post("laser-1", "login", {"badge": "OP-1006"})
    ended = terminals.unpair(gw.store, ln.clock.now(), station="laser-1")
    assert len(ended) == 1
    r = await ln.api.post("/api/stations/laser-1/logout")
    body = _refusal(r, 401, "TERMINAL_UNPAIRED")
    assert "terminals pair" in body["next"]
    assert _operator_at(gw, "laser-1") == "OP-1006"  # nothing changed
    (row,) = _trail(gw, action="request", detail="TERMINAL_UNPAIRED")
    assert row.actor == f"terminal:{ended[0].terminal_id}" and row.station == "laser-1"
    # The other stations' terminals work on.
    await ln.post("qc-1", "login", {"badge": "OP-1005"})


async def test_pairing_a_terminal_over_the_api(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    pairing = terminals.pair(gw.store, gw.config, "kit-1", ln.clock.now())
    async with httpx.AsyncClient(base_url=_base(gw), timeout=10) as tablet:
        r = await tablet.post(
            "/api/terminals/claim",
            json={"code": pairing.code.lower().replace("-", " "), "name": "kit tablet"},
        )
        assert r.status_code == 200, r.text
        credential = r.json()["credential"]
        assert r.json()["station"] == "kit-1"
        mine = {"Authorization": f"Bearer {credential}"}
        assert (await tablet.get("/api/stations/kit-1", headers=mine)).status_code == 200
        # The code is spent: a second claim (someone who read it over a shoulder) fails.
        again = await tablet.post(
            "/api/terminals/claim", json={"code": pairing.code, "name": "intruder"}
        )
        _refusal(again, 403, "PAIRING_CODE_NOT_VALID")
    claims = _trail(gw, action="terminal_claim")
    assert [(c.outcome, c.station) for c in claims] == [
        (AuditOutcome.OK, "kit-1"),
        (AuditOutcome.DENIED, None),
    ]


async def _sign_in(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/api/session", json={"username": username, "password": password})


async def test_browser_session_cookie_csrf_and_sign_out(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    hashed = passwords.hash_password(PASSWORD, "lead.li")
    accounts.add_user(gw.store, "lead.li", Role.LINE_LEAD, hashed, ln.clock.now(), "李班长")
    with gw.store.transaction():
        raise_alarm(gw.core, "machine:emb-1", "machine_fault", "emb-1", Severity.WARNING, "thread")
    async with httpx.AsyncClient(base_url=_base(gw), timeout=10) as browser:
        r = await _sign_in(browser, "Lead.Li", PASSWORD)
        assert r.status_code == 200, r.text
        csrf = r.json()["csrf_token"]
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("linegate_session=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP here (tests/gateway/test_tls.py: TLS)
        value = browser.cookies["linegate_session"]
        who = (await browser.get("/api/session")).json()
        assert who["username"] == "lead.li" and who["csrf_token"] == csrf
        # A change without the CSRF token, or with another, is refused and changes nothing.
        ack = "/api/alarms/machine:emb-1/ack"
        _refusal(await browser.post(ack), 403, "CSRF_FAILED")
        r = await browser.post(ack, headers={"X-CSRF-Token": csrf[:-1] + "x"})
        _refusal(r, 403, "CSRF_FAILED")
        assert (await ln.api.get("/api/alarms")).json()[0]["acked_by"] is None
        r = await browser.post(ack, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["acked_by"] == "lead.li", r.text
        csrf_refused = _trail(gw, action="request", detail="CSRF_FAILED")
        assert [(c.actor, c.role) for c in csrf_refused] == [("lead.li", "line_lead")] * 2
        (acked,) = _trail(gw, action="alarm_ack")
        assert acked.actor == "lead.li" and acked.target == "machine:emb-1"
        # Sign out: the same cookie replayed is refused.
        r = await browser.delete("/api/session", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and "linegate_session" not in browser.cookies
    async with httpx.AsyncClient(base_url=_base(gw), timeout=10) as replay:
        replay.cookies.set("linegate_session", value)
        _refusal(await replay.get("/api/alarms"), 401, "SESSION_ENDED")
        replay.cookies.set("linegate_session", "A" * 43)  # forged
        _refusal(await replay.get("/api/alarms"), 401, "UNKNOWN_CREDENTIAL")
    assert [(s.actor, s.outcome) for s in _trail(gw, action="sign_out")] == [
        ("lead.li", AuditOutcome.OK)
    ]


async def test_a_session_expires_after_30_idle_minutes(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    hashed = passwords.hash_password(PASSWORD, "viewer.wu")
    accounts.add_user(gw.store, "viewer.wu", Role.VIEWER, hashed, ln.clock.now())
    async with httpx.AsyncClient(base_url=_base(gw), timeout=10) as browser:
        assert (await _sign_in(browser, "viewer.wu", PASSWORD)).status_code == 200
        ln.at(29 * 60)
        assert (await browser.get("/api/stations")).status_code == 200  # used: renewed
        ln.at(29 * 60 + 30 * 60 + 1)
        _refusal(await browser.get("/api/stations"), 401, "SESSION_EXPIRED")
        # Disabled: its sessions end at once.
        assert (await _sign_in(browser, "viewer.wu", PASSWORD)).status_code == 200
        accounts.disable_user(gw.store, "viewer.wu", ln.clock.now())
        _refusal(await browser.get("/api/stations"), 401, "SESSION_ENDED")
        r = await _sign_in(browser, "viewer.wu", PASSWORD)
        _refusal(r, 403, "ACCOUNT_DISABLED")


async def test_wrong_passwords_in_a_loop_are_held_back(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    hashed = passwords.hash_password(PASSWORD, "qa.chen")
    accounts.add_user(gw.store, "qa.chen", Role.QUALITY, hashed, ln.clock.now())
    async with httpx.AsyncClient(base_url=_base(gw), timeout=10) as guesser:
        for i in range(5):  # five free failures (gateway/access/throttle.py: PAIR)
            _refusal(await _sign_in(guesser, "qa.chen", f"guess-{i}"), 401, "WRONG_PASSWORD")
        # The sixth waits, even with the right password: it is not judged at all.
        r = await _sign_in(guesser, "qa.chen", PASSWORD)
        _refusal(r, 429, "TOO_MANY_ATTEMPTS")
        assert int(r.headers["retry-after"]) >= 1
        # An unknown user is told the same words as a wrong password.
        r = await _sign_in(guesser, "nobody.here", "x")
        assert r.json()["message"] == "Unknown user or wrong password."
    # Another address is not held back by this one's guesses (one bad actor at a
    # station does not lock the account out for everyone).
    elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=_base(gw), timeout=10, transport=elsewhere) as desk:
        r = await _sign_in(desk, "qa.chen", PASSWORD)
        assert r.status_code == 200, r.text
    denied = _trail(gw, action="sign_in", outcome=AuditOutcome.DENIED)
    assert [d.detail for d in denied] == ["wrong_password"] * 5 + [
        "TOO_MANY_ATTEMPTS",
        "unknown_user",
    ]
    assert all(d.client == "127.0.0.1" for d in denied)
    (ok,) = _trail(gw, action="sign_in", outcome=AuditOutcome.OK)
    assert ok.actor == "qa.chen" and ok.client == "127.0.0.2"
    # No password reached the trail, right or wrong.
    trail = str(read_trail(gw.store))
    assert "guess-" not in trail and PASSWORD not in trail


async def test_quality_uses_as_is_and_maintenance_reconnects(served: tuple[Line, Gateway]) -> None:
    ln, _ = served
    quality = {"Authorization": f"Bearer {ln.keys.token('quality')}"}
    # Through the gate (the station has no task: the desk answers).
    r = await ln.api.post(
        "/api/stations/qc-1/fail",
        json={"reason": "tiny scratch", "disposition": "use_as_is"},
        headers=quality,
    )
    assert r.status_code == 409 and r.json()["code"] != "FORBIDDEN_ROLE", r.text
    # Quality may not rework through the operator's route: that is the operator's.
    r = await ln.api.post(
        "/api/stations/qc-1/fail",
        json={"reason": "x", "disposition": "rework"},
        headers=quality,
    )
    _refusal(r, 403, "FORBIDDEN_ROLE")
    maintenance = {"Authorization": f"Bearer {ln.keys.token('maintenance')}"}
    r = await ln.api.post("/api/devices/laser-1/machine/reconnect", headers=maintenance)
    assert r.status_code == 404 and r.json()["code"] == "UNKNOWN_DEVICE", r.text
    lead = {"Authorization": f"Bearer {ln.keys.token('line_lead')}"}
    r = await ln.api.post("/api/devices/laser-1/machine/reconnect", headers=lead)
    _refusal(r, 403, "FORBIDDEN_ROLE")


async def test_oversized_and_malformed_bodies_change_nothing(
    served: tuple[Line, Gateway],
) -> None:
    ln, gw = served
    async with httpx.AsyncClient(base_url=_base(gw), timeout=10) as anonymous:
        # Too big: refused before anything reads it, credential or not.
        r = await anonymous.post("/api/session", content=b"{" + b" " * 20_000 + b"}")
        assert r.status_code == 413 and r.json()["code"] == "BODY_TOO_LARGE"
        r = await anonymous.post(
            "/api/session", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["code"] == "BAD_REQUEST"
        r = await anonymous.post("/api/terminals/claim", json={"code": 12345678, "name": "x"})
        assert r.status_code == 422
    r = await ln.api.post("/api/stations/laser-1/fail", content=b'{"disposition": "use_as_is"')
    # The body cannot be read: no variant, so the operator's policy; the terminal has no
    # operator signed in yet.
    assert r.status_code == 403 and r.json()["code"] == "NO_OPERATOR"
    assert _trail(gw, action="sign_in") == []


async def test_a_pin_where_the_line_asks_one(tmp_path: Path) -> None:
    config = _config()
    operators = [
        op.model_copy(update={"pin_hash": passwords.hash_pin(f"{1000 + i}")})
        for i, op in enumerate(config.operators)
    ]
    pin_of = {op.badge: f"{1000 + i}" for i, op in enumerate(config.operators)}
    config = config.model_copy(
        update={
            "operators": operators,
            "access": AccessSection(pin_required=[PinAction.LOGIN, PinAction.COMPLETE]),
        }
    )
    async with served_line(tmp_path, config) as (ln, gw):
        login = "/api/stations/laser-1/login"
        r = await ln.api.post(login, json={"badge": "OP-1006"})
        _refusal(r, 401, "PIN_REQUIRED")
        r = await ln.api.post(login, json={"badge": "OP-1006"}, headers={"X-Operator-PIN": "9999"})
        _refusal(r, 403, "WRONG_PIN")
        assert _operator_at(gw, "laser-1") is None
        # A badge scanned is a sign-in: the same PIN is asked.
        r = await ln.api.post("/api/stations/laser-1/scan", json={"code": "OP-1006"})
        _refusal(r, 401, "PIN_REQUIRED")
        right = {"X-Operator-PIN": pin_of["OP-1006"]}
        r = await ln.api.post(login, json={"badge": "OP-1006"}, headers=right)
        assert r.status_code == 200, r.text
        assert _operator_at(gw, "laser-1") == "OP-1006"
        # Actions the line does not ask it for go without it.
        r = await ln.api.post("/api/stations/laser-1/next")
        assert r.status_code in (200, 409), r.text
        (wrong,) = _trail(gw, action="sign_in", outcome=AuditOutcome.DENIED)
        assert (wrong.actor, wrong.detail, wrong.station) == ("OP-1006", "WRONG_PIN", "laser-1")
        assert "9999" not in str(read_trail(gw.store))
