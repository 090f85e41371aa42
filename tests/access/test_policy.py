"""Who may do what (gateway/access/policy.py), against issue 12's role rules.

The expected answers are written out here from the issue, route by route, not computed by
the module: a change of the policy table that breaks a rule fails a line of this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from gateway.access.policy import (
    ROUTES,
    AccessRequest,
    Anonymous,
    Decision,
    DenyCode,
    Principal,
    TerminalPrincipal,
    TokenPrincipal,
    UserPrincipal,
    decide,
    missing_policies,
)
from gateway.app.root import Gateway
from gateway.config.line import LineConfig
from gateway.store.rows import Role
from gateway.web.station_api import create_app
from tests.clocks import LINE_MORNING, ManualClock

HERE = "pack-1"  # the station of every station route's path below
OTHER = "dtg-1"
S = "/api/stations/{station_id}"

# Who asks, by a short name the expectations below use.
PRINCIPALS: dict[str, Principal] = {
    "term_op": TerminalPrincipal("t-pack1", HERE, "OP-0001"),
    "term_no_op": TerminalPrincipal("t-pack1", HERE, None),
    "term_other": TerminalPrincipal("t-dtg1", OTHER, "OP-0002"),
    "anon": Anonymous(),
    **{f"user_{r}": UserPrincipal(f"u.{r}", Role(r)) for r in Role if r is not Role.OPERATOR},
    **{
        f"token_{r}": TokenPrincipal(f"{r[:4]}0000", Role(r))
        for r in Role
        if r is not Role.OPERATOR
    },
}


def _accounts(*roles: str) -> frozenset[str]:
    """Users and tokens of ``roles``: a token is scoped by its role as an account is."""
    return frozenset(f"{kind}_{r}" for r in roles for kind in ("user", "token"))


EVERY_ACCOUNT = _accounts("line_lead", "quality", "maintenance", "admin", "viewer")
LEAD = _accounts("line_lead")
TERMINAL_HERE = frozenset({"term_op", "term_no_op"})
OPERATOR_HERE = frozenset({"term_op"})
DOCS = EVERY_ACCOUNT  # any account or token; no terminal, nobody anonymous
SIGNED_IN = frozenset(PRINCIPALS) - {"anon"}  # any credential: terminal, account or token
MAINTENANCE = _accounts("maintenance")

# Issue 12's rules, route by route: who is let in (everyone else is refused).
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/health"): frozenset(PRINCIPALS),
    # Signing in and pairing are how a credential is had: open to anyone.
    ("POST", "/api/session"): frozenset(PRINCIPALS),
    ("POST", "/api/terminals/claim"): frozenset(PRINCIPALS),
    # Who am I, and signing out: for whoever holds a credential.
    ("GET", "/api/session"): SIGNED_IN,
    ("DELETE", "/api/session"): SIGNED_IN,
    ("GET", "/api/stations"): EVERY_ACCOUNT,
    ("GET", S): EVERY_ACCOUNT | TERMINAL_HERE,
    ("GET", "/api/devices"): EVERY_ACCOUNT,
    ("POST", f"{S}/login"): TERMINAL_HERE,
    ("POST", f"{S}/scan"): TERMINAL_HERE,  # a badge scanned is a sign-in
    ("POST", f"{S}/logout"): OPERATOR_HERE,
    ("POST", f"{S}/next"): OPERATOR_HERE,
    ("POST", f"{S}/start"): OPERATOR_HERE,
    ("POST", f"{S}/checklist"): OPERATOR_HERE,
    ("POST", f"{S}/weight"): OPERATOR_HERE,
    ("POST", f"{S}/complete"): OPERATOR_HERE,
    ("POST", f"{S}/fail"): OPERATOR_HERE,
    ("POST", f"{S}/pause"): OPERATOR_HERE | LEAD,
    ("POST", f"{S}/resume"): OPERATOR_HERE | LEAD,
    ("POST", f"{S}/reprint"): LEAD,
    ("POST", f"{S}/override"): LEAD,
    ("GET", "/api/alarms"): EVERY_ACCOUNT,
    ("POST", "/api/alarms/{alarm_id}/ack"): LEAD,
    ("POST", "/api/devices/{station_id}/{device}/reconnect"): MAINTENANCE,
    ("GET", "/api/plan"): EVERY_ACCOUNT,
    ("GET", "/api/plan/orders/{order_id}"): EVERY_ACCOUNT,
    ("POST", "/api/plan/replan"): LEAD,
    ("GET", "/api/trace/unit/{serial}"): EVERY_ACCOUNT,
    ("GET", "/api/trace/lot/{lot}"): EVERY_ACCOUNT,
    # Issue 13: customer service's lookup, the e-SOP pictures (named by their hash), the
    # pages (shells without data), the board's data and the live streams.
    ("GET", "/api/orders"): EVERY_ACCOUNT,
    ("GET", "/api/orders/{order_id}"): EVERY_ACCOUNT,
    ("GET", "/api/orders/{order_id}/live"): EVERY_ACCOUNT,
    ("GET", "/media/{sha256}"): frozenset(PRINCIPALS),
    ("HEAD", "/media/{sha256}"): frozenset(PRINCIPALS),
    ("GET", "/"): frozenset(PRINCIPALS),
    ("GET", "/board"): frozenset(PRINCIPALS),
    ("GET", "/orders"): frozenset(PRINCIPALS),
    ("GET", "/station/{station_id}"): frozenset(PRINCIPALS),
    ("GET", "/static/{name:path}"): frozenset(PRINCIPALS),
    ("GET", "/api/board"): EVERY_ACCOUNT,
    ("GET", "/api/board/live"): EVERY_ACCOUNT,
    ("GET", f"{S}/live"): EVERY_ACCOUNT | TERMINAL_HERE,
    # Issue 14: "can we take this promotion?", the line lead's (a page holds no data).
    ("GET", "/capacity"): frozenset(PRINCIPALS),
    ("POST", "/api/capacity"): LEAD,
    # Issue 14: the reports, for every account role (viewer and up); the list's page is a
    # shell, like the others.
    ("GET", "/reports"): frozenset(PRINCIPALS),
    ("GET", "/api/reports"): EVERY_ACCOUNT,
    ("GET", "/reports/{report_id}"): EVERY_ACCOUNT,
    ("GET", "/reports/{report_id}/{file}"): EVERY_ACCOUNT,
    # Issue 16: Prometheus' scrape, the board's numbers: any account or token.
    ("GET", "/metrics"): EVERY_ACCOUNT,
    ("GET", "/api/docs"): DOCS,
    ("HEAD", "/api/docs"): DOCS,
    ("GET", "/docs/oauth2-redirect"): DOCS,
    ("HEAD", "/docs/oauth2-redirect"): DOCS,
    ("GET", "/redoc"): DOCS,
    ("HEAD", "/redoc"): DOCS,
    ("GET", "/api/openapi.json"): DOCS,
    ("HEAD", "/api/openapi.json"): DOCS,
}


def _request(method: str, path: str, variant: str | None = None) -> AccessRequest:
    station = HERE if path.startswith(S) else None
    return AccessRequest(method, path, station, variant)


@pytest.fixture
def app(tmp_path: Path, line: LineConfig) -> Iterator[FastAPI]:
    """The real station API, docs on, as the gateway builds it (no devices, no planner:
    neither changes which routes there are)."""
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in line.stations.items()}
    planner = line.planner.model_copy(update={"enabled": False})
    config = line.model_copy(update={"stations": stations, "planner": planner})
    gw = Gateway(config, data_dir=tmp_path, clock=ManualClock(LINE_MORNING))
    gw.open()
    try:
        yield create_app(
            gw.stations,
            gw.health,
            gw.floor,
            gw.planner,
            gate=gw.gate,
            sign_ins=gw.sign_ins,
            docs=True,
            media=gw.media,
        )
    finally:
        gw.store.close()


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    return [
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute | Route)
        for method in sorted(route.methods or ())
    ]


def test_every_route_of_the_app_has_a_policy(app: FastAPI) -> None:
    routes = _routes(app)
    assert len(routes) == len(EXPECTED)  # the app's routes, docs included, were all seen
    assert missing_policies(routes) == []


def test_a_route_added_without_a_policy_is_named_and_refused(app: FastAPI) -> None:
    @app.post("/api/stations/{station_id}/teleport")
    async def teleport(station_id: str) -> None: ...

    assert missing_policies(_routes(app)) == [("POST", f"{S}/teleport")]
    refused = decide(PRINCIPALS["user_admin"], _request("POST", f"{S}/teleport"))
    assert (refused.allowed, refused.code, refused.status) == (False, DenyCode.NO_POLICY, 403)
    assert "POST /api/stations/{station_id}/teleport" in refused.message


def test_the_matrix_covers_exactly_the_policy_table() -> None:
    assert set(EXPECTED) == set(ROUTES)


@pytest.mark.parametrize("route", sorted(EXPECTED), ids=" ".join)
@pytest.mark.parametrize("who", sorted(PRINCIPALS))
def test_role_by_route_matrix(route: tuple[str, str], who: str) -> None:
    decision = decide(PRINCIPALS[who], _request(*route))
    assert decision.allowed is (who in EXPECTED[route])


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("user_quality", True),
        ("token_quality", True),
        ("term_op", False),
        ("user_line_lead", False),
        ("user_admin", False),
        ("user_viewer", False),
        ("token_maintenance", False),
        ("anon", False),
    ],
)
def test_use_as_is_needs_quality(who: str, allowed: bool) -> None:
    decision = decide(PRINCIPALS[who], _request("POST", f"{S}/fail", "use_as_is"))
    assert decision.allowed is allowed


@pytest.mark.parametrize("variant", ["rework", "scrap", None])
def test_other_dispositions_are_the_operators(variant: str | None) -> None:
    assert decide(PRINCIPALS["term_op"], _request("POST", f"{S}/fail", variant)).allowed
    assert not decide(PRINCIPALS["user_quality"], _request("POST", f"{S}/fail", variant)).allowed


def test_a_terminal_of_another_station_is_told_so() -> None:
    decision = decide(PRINCIPALS["term_other"], _request("POST", f"{S}/scan"))
    assert (decision.code, decision.status) == (DenyCode.WRONG_STATION, 403)
    assert decision.message == "This terminal belongs to station dtg-1; it cannot act for pack-1."
    assert decision.message_zh == "此终端属于工位 dtg-1，不能操作 pack-1。"
    # It may read its own station's view, not another's.
    own = AccessRequest("GET", S, OTHER)
    assert decide(PRINCIPALS["term_other"], own).allowed
    assert decide(PRINCIPALS["term_other"], _request("GET", S)).code is DenyCode.WRONG_STATION


@pytest.mark.parametrize(
    ("who", "route", "code"),
    [
        ("anon", ("GET", "/api/stations"), DenyCode.NOT_SIGNED_IN),
        ("anon", ("POST", f"{S}/login"), DenyCode.NOT_SIGNED_IN),
        ("anon", ("GET", "/api/docs"), DenyCode.NOT_SIGNED_IN),
        ("anon", ("GET", "/api/session"), DenyCode.NOT_SIGNED_IN),
        ("anon", ("POST", "/api/alarms/{alarm_id}/ack"), DenyCode.NOT_SIGNED_IN),
        ("term_op", ("POST", "/api/alarms/{alarm_id}/ack"), DenyCode.FORBIDDEN_ROLE),
        (
            "user_line_lead",
            ("POST", "/api/devices/{station_id}/{device}/reconnect"),
            DenyCode.FORBIDDEN_ROLE,
        ),
        (
            "term_op",
            ("POST", "/api/devices/{station_id}/{device}/reconnect"),
            DenyCode.FORBIDDEN_ROLE,
        ),
        ("term_no_op", ("POST", f"{S}/complete"), DenyCode.NO_OPERATOR),
        ("term_no_op", ("POST", f"{S}/pause"), DenyCode.NO_OPERATOR),
        ("term_other", ("POST", f"{S}/complete"), DenyCode.WRONG_STATION),
        ("term_op", ("POST", "/api/plan/replan"), DenyCode.FORBIDDEN_ROLE),
        ("term_op", ("POST", f"{S}/reprint"), DenyCode.FORBIDDEN_ROLE),
        ("term_op", ("GET", "/api/stations"), DenyCode.FORBIDDEN_ROLE),
        ("user_viewer", ("POST", "/api/plan/replan"), DenyCode.FORBIDDEN_ROLE),
        ("user_admin", ("POST", f"{S}/pause"), DenyCode.FORBIDDEN_ROLE),
        ("user_line_lead", ("POST", f"{S}/complete"), DenyCode.FORBIDDEN_ROLE),
    ],
)
def test_each_refusal_says_why(who: str, route: tuple[str, str], code: DenyCode) -> None:
    assert decide(PRINCIPALS[who], _request(*route)).code is code


def _refusals() -> Iterator[Decision]:
    for route in EXPECTED:
        for variant in (None, "use_as_is"):
            for principal in PRINCIPALS.values():
                decision = decide(principal, _request(*route, variant))
                if not decision.allowed:
                    yield decision
    yield decide(Anonymous(), _request("DELETE", "/api/everything"))


def test_every_refusal_has_a_status_and_both_languages() -> None:
    seen: set[DenyCode] = set()
    for decision in _refusals():
        assert decision.code is not None
        seen.add(decision.code)
        expected_status = 401 if decision.code is DenyCode.NOT_SIGNED_IN else 403
        assert decision.status == expected_status
        for text in (decision.message, decision.next, decision.message_zh, decision.next_zh):
            assert text.strip()
        # The Chinese texts are Chinese (CJK ideographs), not the English copied over.
        assert any("\u4e00" <= ch <= "\u9fff" for ch in decision.message_zh + decision.next_zh)
    assert seen == set(DenyCode)


def test_an_allowed_request_has_no_code_or_status() -> None:
    allowed = decide(Anonymous(), _request("GET", "/api/health"))
    assert (allowed.allowed, allowed.code, allowed.status) == (True, None, None)


def test_an_operator_role_outside_a_terminal_gets_nothing() -> None:
    # Operators have no account or token (accounts.py, tokens.py refuse the role); were
    # one to appear, it must not read the board or act: operators act through terminals.
    for principal in (UserPrincipal("x", Role.OPERATOR), TokenPrincipal("x", Role.OPERATOR)):
        for route in (("GET", "/api/stations"), ("POST", f"{S}/complete"), ("GET", S)):
            assert decide(principal, _request(*route)).code is DenyCode.FORBIDDEN_ROLE


def test_a_station_route_without_its_station_is_a_wiring_bug() -> None:
    with pytest.raises(ValueError, match="names no station"):
        decide(PRINCIPALS["term_op"], AccessRequest("POST", f"{S}/scan"))
