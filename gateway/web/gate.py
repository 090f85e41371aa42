"""The station API's gate: who is asking, and may they (issue 12).

Every request that matches a route passes here before the route runs. The gate finds
the route's template (so that ``/api/stations/pack-1/complete`` is judged as
``/api/stations/{station_id}/complete``), finds who is asking from the request's
credential, asks the policy (gateway/access/policy.py), and either lets the request on,
with the principal in ``request.state.principal``, or answers 401/403 in the API's shape
with the words in English and Chinese and writes the refusal to the audit trail.

Credentials, in this order:

- ``Authorization: Bearer lgc_…``: a paired terminal, bound to its station; the operator
  signed in at that station (the ``sessions`` table) is who acts through it.
- ``Authorization: Bearer lgt_…``: a program's API token, scoped by its role.
- the session cookie of a person signed in with ``POST /api/session``; a request that
  changes something must also carry the session's CSRF token in ``X-CSRF-Token``.

A request matching no route is left to the router (404/405): there is nothing to guard.
Routes whose policy is ``open`` (health, sign-in, pairing) skip the credential.

There is no bypass: the simulated operators of the demo, the benchmarks and the tests
pair terminals and hold tokens like any other client.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access import accounts, audit, sessions, terminals, tokens
from gateway.access.audit import AuditAction
from gateway.access.policy import (
    VARIANTS,
    AccessRequest,
    Anonymous,
    Decision,
    Policy,
    Principal,
    TerminalPrincipal,
    TokenPrincipal,
    UserPrincipal,
    decide,
    policy_for,
)
from gateway.orderbook.context import LineContext
from gateway.store.rows import AuditOutcome, Role, SessionRow, WebSessionRow

logger = logging.getLogger(__name__)

__all__ = [
    "SAFE_METHODS",
    "Caller",
    "Gate",
    "GateRefusal",
    "Gatekeeper",
    "actor_of",
    "role_of",
]

# Methods that change nothing: no CSRF token is asked for them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What the gate calls a route it cannot name: no policy has it.
_UNNAMED = "(a route without a path template)"
# The routes whose body decides who may (VARIANTS): their body is read by the gate.
_VARIED = frozenset((method, path) for method, path, _ in VARIANTS)


@dataclass(frozen=True, slots=True)
class GateRefusal:
    """A request refused at the gate: the answer's status and words, both languages."""

    status: int
    code: str
    message: str
    next: str
    message_zh: str
    next_zh: str
    actor: str | None = None  # whom the refused credential names, when it names someone
    role: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "ok": False,
            "code": self.code,
            "message": self.message,
            "next": self.next,
            "message_zh": self.message_zh,
            "next_zh": self.next_zh,
        }


def _refused(
    status: int,
    code: str,
    en: tuple[str, str],
    zh: tuple[str, str],
    actor: str | None = None,
    role: str | None = None,
) -> GateRefusal:
    return GateRefusal(status, code, en[0], en[1], zh[0], zh[1], actor, role)


def from_decision(decision: Decision, principal: Principal) -> GateRefusal:
    assert decision.code is not None and decision.status is not None
    return GateRefusal(
        decision.status,
        decision.code.value,
        decision.message,
        decision.next,
        decision.message_zh,
        decision.next_zh,
        actor_of(principal),
        role_of(principal),
    )


def actor_of(principal: Principal) -> str | None:
    """Who the audit trail names: a badge, a username, ``token:ID``, ``terminal:ID``."""
    if isinstance(principal, TerminalPrincipal):
        return principal.operator or f"terminal:{principal.terminal_id}"
    if isinstance(principal, UserPrincipal):
        return principal.username
    if isinstance(principal, TokenPrincipal):
        return f"token:{principal.token_id}"
    return None


def role_of(principal: Principal) -> str | None:
    if isinstance(principal, TerminalPrincipal):
        return Role.OPERATOR.value if principal.operator is not None else None
    if isinstance(principal, UserPrincipal | TokenPrincipal):
        return principal.role.value
    return None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, as the gate found out: the principal, and for a browser session its
    row (sign-out ends it; the page reads its CSRF token)."""

    principal: Principal
    session: WebSessionRow | None = None
    cookie: str | None = None


_UNKNOWN = _refused(
    401,
    "UNKNOWN_CREDENTIAL",
    (
        "The gateway does not know this credential.",
        "Sign in again, or ask the admin to pair this terminal again.",
    ),
    ("网关不认识此凭据。", "请重新登录，或请管理员重新配对此终端。"),
)
_CSRF = (
    (
        "This request did not carry the page's CSRF token (X-CSRF-Token), so it was refused.",
        "Reload the page and do it again.",
    ),
    ("此请求没有携带页面的 CSRF 令牌（X-CSRF-Token），已被拒绝。", "请刷新页面后重试。"),
)


class Gate:
    """Finds who is asking; writes refusals to the audit trail. One per gateway."""

    def __init__(self, core: LineContext, *, tls: bool) -> None:
        self.core = core
        self.tls = tls
        self.cookie_name = sessions.cookie_attributes(tls)["key"]

    def identify(self, headers: Headers, method: str) -> Caller | GateRefusal:
        """The caller of a request with ``headers``; a refusal for a credential that is
        sent but not good (unknown, revoked, unpaired, expired, or no CSRF token)."""
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            if scheme.lower() != "bearer":
                return _UNKNOWN
            return self._bearer(credential.strip())
        cookie = _cookie(headers, self.cookie_name)
        if cookie is None:
            return Caller(Anonymous())
        return self._session(cookie, headers, method)

    def _bearer(self, credential: str) -> Caller | GateRefusal:
        store = self.core.store
        if credential.startswith(f"{terminals.PREFIX}_"):
            row = terminals.verify_terminal(store, credential)
            if isinstance(row, terminals.TerminalRefused):
                if row.reason is terminals.TerminalRefusal.UNPAIRED:
                    found = terminals.CREDENTIAL_PATTERN.fullmatch(credential)
                    return _refused(
                        401,
                        "TERMINAL_UNPAIRED",
                        (
                            "This terminal was unpaired: it can no longer act for its station.",
                            "Ask the admin to pair it again (linegate terminals pair STATION).",
                        ),
                        (
                            "此终端已被取消配对，不能再操作其工位。",
                            "请管理员重新配对（linegate terminals pair 工位）。",
                        ),
                        actor=None if found is None else f"terminal:{found.group(1)}",
                    )
                return _UNKNOWN
            operator = store.fetch_one(
                SessionRow, "SELECT * FROM sessions WHERE station = ?", (row.station,)
            )
            return Caller(
                TerminalPrincipal(
                    row.terminal_id, row.station, None if operator is None else operator.operator
                )
            )
        if credential.startswith(f"{tokens.PREFIX}_"):
            token = tokens.verify_token(store, credential, self.core.clock.now())
            if isinstance(token, tokens.TokenRefused):
                if token.reason is tokens.TokenRefusal.UNKNOWN:
                    return _UNKNOWN
                found = tokens.TOKEN_PATTERN.fullmatch(credential)
                actor = None if found is None else f"token:{found.group(1)}"
                if token.reason is tokens.TokenRefusal.REVOKED:
                    return _refused(
                        401,
                        "TOKEN_REVOKED",
                        ("This API token was revoked.", "Ask the admin for a new token."),
                        ("此 API 令牌已被吊销。", "请向管理员申请新令牌。"),
                        actor=actor,
                    )
                return _refused(
                    401,
                    "TOKEN_EXPIRED",
                    ("This API token has expired.", "Ask the admin for a new token."),
                    ("此 API 令牌已过期。", "请向管理员申请新令牌。"),
                    actor=actor,
                )
            return Caller(TokenPrincipal(token.token_id, Role(token.role)))
        return _UNKNOWN

    def _session(self, cookie: str, headers: Headers, method: str) -> Caller | GateRefusal:
        row = sessions.verify(self.core.store, cookie, self.core.clock.now())
        if isinstance(row, sessions.SessionRefused):
            return _SESSION_REFUSALS.get(row.reason, _UNKNOWN)
        user = accounts.find_user(self.core.store, row.username)
        if user is None:  # verify() found it; a user is never deleted
            return _UNKNOWN
        if method not in SAFE_METHODS and not sessions.check_csrf(
            row, headers.get(sessions.CSRF_HEADER)
        ):
            return _refused(403, "CSRF_FAILED", *_CSRF, actor=user.username, role=user.role)
        return Caller(UserPrincipal(user.username, Role(user.role)), row, cookie)

    def refuse(
        self, refusal: GateRefusal, target: str, station: str | None, client: str | None
    ) -> JSONResponse:
        """The refusal's answer, after writing it to the audit trail. A store that cannot
        write (a full disk) still gets the refusal answered: it changes nothing, and a
        503 would tell the caller less; the record lost is logged."""
        try:
            with self.core.store.transaction():
                audit.record(
                    self.core,
                    actor=refusal.actor,
                    role=refusal.role,
                    action=AuditAction.REQUEST,
                    outcome=AuditOutcome.DENIED,
                    target=target,
                    station=station,
                    client=client,
                    detail=refusal.code,
                )
        except sqlite3.OperationalError as exc:
            logger.error(
                "refused %s (%s, %s from %s) not written to the audit trail: %s",
                target,
                refusal.code,
                refusal.actor,
                client,
                exc,
            )
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        return JSONResponse(refusal.body(), status_code=refusal.status, headers=headers)


# Why a session cookie no longer signs in, as its holder is told (an unknown one is
# _UNKNOWN: a guessed cookie learns nothing).
_SESSION_REFUSALS: Mapping[sessions.SessionRefusal, GateRefusal] = {
    sessions.SessionRefusal.ENDED: _refused(
        401,
        "SESSION_ENDED",
        ("You were signed out.", "Sign in again."),
        ("您已退出登录。", "请重新登录。"),
    ),
    sessions.SessionRefusal.EXPIRED: _refused(
        401,
        "SESSION_EXPIRED",
        ("Your session has expired.", "Sign in again."),
        ("您的登录已过期。", "请重新登录。"),
    ),
    sessions.SessionRefusal.DISABLED: _refused(
        401,
        "ACCOUNT_DISABLED",
        ("This account is disabled.", "Ask an admin."),
        ("此账户已停用。", "请联系管理员。"),
    ),
}


def _cookie(headers: Headers, name: str) -> str | None:
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name and value:
                return value
    return None


def client_of(scope: Scope) -> str | None:
    client = scope.get("client")
    return None if client is None else str(client[0])


class Gatekeeper:
    """ASGI middleware in front of the station API's routes: see the module."""

    def __init__(self, app: ASGIApp, gate: Gate, routes: list[BaseRoute]) -> None:
        self.app = app
        self.gate = gate
        # The app's router's list, read at each request: routes added later count too.
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self.route_of(scope)
        if found is None:
            await self.app(scope, receive, send)  # the router answers 404 or 405
            return
        template, params = found
        method = str(scope["method"]).upper()
        variant = None
        if (method, template) in _VARIED:
            message = await receive()
            variant = _variant(message.get("body", b""))
            receive = _replay(message, receive)
        request = AccessRequest(method, template, params.get("station_id"), variant)
        state = scope.setdefault("state", {})
        if policy_for(request) is Policy.OPEN:
            state["caller"] = Caller(Anonymous())
            await self.app(scope, receive, send)
            return
        caller = self.gate.identify(Headers(scope=scope), method)
        if isinstance(caller, Caller):
            decision = decide(caller.principal, request)
            if decision.allowed:
                state["caller"] = caller
                await self.app(scope, receive, send)
                return
            refusal = from_decision(decision, caller.principal)
            station = request.station or _station_of(caller.principal)
        else:
            refusal, station = caller, request.station
        answer = self.gate.refuse(refusal, f"{method} {scope['path']}", station, client_of(scope))
        await answer(scope, receive, send)

    def route_of(self, scope: Scope) -> tuple[str, Mapping[str, Any]] | None:
        """The template and path parameters of the route ``scope`` fully matches; None
        when none does (the router answers 404 or 405)."""
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                path = getattr(route, "path", None)
                # A route without a template of its own (a mount, an included router) is
                # judged as a path no policy names: refused (deny by default).
                return (path if isinstance(path, str) else _UNNAMED), child.get("path_params", {})
        return None


def _station_of(principal: Principal) -> str | None:
    return principal.station if isinstance(principal, TerminalPrincipal) else None


def _variant(body: bytes) -> str | None:
    """What a varied route's body asks for (the ``fail`` action's disposition); None
    when the body says nothing readable (the route then refuses the body itself)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    disposition = data.get("disposition") if isinstance(data, dict) else None
    return disposition if isinstance(disposition, str) else None


def _replay(message: Message, receive: Receive) -> Receive:
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return message
        return await receive()

    return replayed
