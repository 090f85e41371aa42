"""Signing in and pairing over the station API: ``/api/session`` for people with an
account (a browser's session cookie), ``/api/terminals/claim`` for a station's terminal
exchanging its pairing code for its credential.

Each attempt, right or wrong, is written to the audit trail, and each is throttled
(gateway/access/throttle.py): a password guessed in a loop waits longer each time, and
the answer to a held-back attempt says how long, without judging the password. Checking a
password costs tens of milliseconds of CPU (argon2id): it runs in a worker thread, at most
:data:`MAX_CONCURRENT_CHECKS` at a time, so that a burst of sign-ins cannot take the CPU
from the stations' scans.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.access import accounts, audit, passwords, sessions, terminals
from gateway.access.audit import AuditAction
from gateway.access.errors import AccessError
from gateway.access.policy import TerminalPrincipal, TokenPrincipal, UserPrincipal
from gateway.access.throttle import SignInThrottle
from gateway.store.rows import AuditOutcome
from gateway.web.gate import Caller, Gate, client_of

__all__ = ["MAX_CONCURRENT_CHECKS", "SignIns", "add_access_routes", "held_back"]

# argon2id with 32 MiB: two at a time bound the memory to 64 MiB and leave a core of a
# Raspberry Pi's four to the event loop.
MAX_CONCURRENT_CHECKS = 2
# Throttle key of pairing claims: one "account" for the whole line (a code cannot say
# which pairing it was aimed at), so the address's and the pair's limits apply.
_PAIRING = "(pairing)"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SignInBody(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ClaimBody(_Body):
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=terminals.MAX_NAME_CHARS)


class SignIns:
    """The gateway's sign-in throttle and its bound on concurrent password checks."""

    def __init__(self, throttle: SignInThrottle) -> None:
        self.throttle = throttle
        self.checks = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)

    async def check_secret(self, stored_hash: str, secret: str) -> bool:
        """A PIN against its hash, off the event loop."""
        async with self.checks:
            return await asyncio.to_thread(passwords.verify, stored_hash, secret)


def held_back(wait_s: float) -> JSONResponse:
    """The answer to an attempt the throttle holds back: 429 and how long to wait."""
    seconds = max(1, math.ceil(wait_s))
    return JSONResponse(
        {
            "ok": False,
            "code": "TOO_MANY_ATTEMPTS",
            "message": f"Too many failed attempts: wait {seconds} s.",
            "next": f"Try again in {seconds} s; ask the admin if you have forgotten it.",
            "message_zh": f"失败次数过多：请等待 {seconds} 秒。",
            "next_zh": f"请在 {seconds} 秒后重试；如忘记，请联系管理员。",
        },
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


def _refusal(status: int, code: str, en: tuple[str, str], zh: tuple[str, str]) -> JSONResponse:
    return JSONResponse(
        {
            "ok": False,
            "code": code,
            "message": en[0],
            "next": en[1],
            "message_zh": zh[0],
            "next_zh": zh[1],
        },
        status_code=status,
    )


def add_access_routes(app: FastAPI, gate: Gate, sign_ins: SignIns) -> None:
    """The routes of signing in and out and of pairing (policies in gateway/access), on
    ``app`` itself: the gate judges the app's own routes (an included router would hide
    its routes' paths from it, and the gate refuses what it cannot name)."""
    core = gate.core
    store = core.store

    def trail(**fields: Any) -> None:
        with store.transaction():
            audit.record(core, **fields)

    def held(key: str, client: str, action: AuditAction, target: str | None) -> JSONResponse | None:
        """The 429 answer when the throttle holds ``key`` from ``client`` back (the
        attempt is recorded, not judged); None to go ahead."""
        wait_s = sign_ins.throttle.check(key, client)
        if wait_s <= 0:
            return None
        trail(
            actor=None,
            role=None,
            action=action,
            outcome=AuditOutcome.DENIED,
            target=target,
            client=client,
            detail="TOO_MANY_ATTEMPTS",
        )
        return held_back(wait_s)

    @app.post("/api/session")
    async def sign_in(body: SignInBody, request: Request, response: Response) -> Any:
        client = client_of(request.scope) or "?"
        username = accounts.normal_username(body.username)
        if (answer := held(username, client, AuditAction.SIGN_IN, username)) is not None:
            return answer
        user = accounts.find_user(store, username)
        async with sign_ins.checks:
            judged = await asyncio.to_thread(
                accounts.judge_sign_in, user, body.username, body.password
            )
        outcome = accounts.finish_sign_in(store, judged)
        if isinstance(outcome, accounts.SignInRefused):
            sign_ins.throttle.failed(username, client)
            known = outcome.reason is not accounts.SignInRefusal.UNKNOWN_USER
            trail(
                actor=outcome.username if known else None,
                role=user.role if user is not None and known else None,
                action=AuditAction.SIGN_IN,
                outcome=AuditOutcome.DENIED,
                # An unknown name is kept as the target (it may be a typo of a real one),
                # never the password.
                target=outcome.username,
                client=client,
                detail=outcome.reason.value,
            )
            if outcome.reason is accounts.SignInRefusal.DISABLED:
                return _refusal(
                    403,
                    "ACCOUNT_DISABLED",
                    ("This account is disabled.", "Ask an admin."),
                    ("此账户已停用。", "请联系管理员。"),
                )
            return _refusal(
                401,
                "WRONG_PASSWORD",
                ("Unknown user or wrong password.", "Check both and sign in again."),
                ("用户名或密码错误。", "请检查后重新登录。"),
            )
        sign_ins.throttle.succeeded(username, client)
        with store.transaction():  # the session and its record, together or not at all
            cookie, csrf, row = sessions.start(store, outcome.username, core.clock.now(), client)
            audit.record(
                core,
                actor=outcome.username,
                role=outcome.role,
                action=AuditAction.SIGN_IN,
                outcome=AuditOutcome.OK,
                client=client,
            )
        response.set_cookie(value=cookie, **sessions.cookie_attributes(gate.tls))
        return {
            "ok": True,
            "message": f"Signed in as {outcome.name or outcome.username}.",
            "next": "Send the csrf_token in the X-CSRF-Token header of every change.",
            "username": outcome.username,
            "role": outcome.role,
            "csrf_token": csrf,
            "expires_at": row.expires_at,
        }

    @app.get("/api/session")
    async def who(request: Request) -> dict[str, Any]:
        """Who this credential is (a page reads its CSRF token here after a reload)."""
        caller: Caller = request.state.caller
        principal = caller.principal
        if isinstance(principal, UserPrincipal):
            assert caller.session is not None
            return {
                "ok": True,
                "kind": "session",
                "username": principal.username,
                "role": principal.role,
                "csrf_token": caller.session.csrf_token,
                "expires_at": caller.session.expires_at,
            }
        if isinstance(principal, TokenPrincipal):
            return {
                "ok": True,
                "kind": "token",
                "token_id": principal.token_id,
                "role": principal.role,
            }
        assert isinstance(principal, TerminalPrincipal)  # the policy lets no one else in
        return {
            "ok": True,
            "kind": "terminal",
            "terminal_id": principal.terminal_id,
            "station": principal.station,
            "operator": principal.operator,
        }

    @app.delete("/api/session")
    async def sign_out(request: Request, response: Response) -> dict[str, Any]:
        caller: Caller = request.state.caller
        principal = caller.principal
        if caller.cookie is None or not isinstance(principal, UserPrincipal):
            return {"ok": True, "message": "No browser session to end.", "next": ""}
        now = core.clock.now()
        with store.transaction():
            sessions.end(store, caller.cookie, now)
            audit.record(
                core,
                actor=principal.username,
                role=principal.role,
                action=AuditAction.SIGN_OUT,
                outcome=AuditOutcome.OK,
                client=client_of(request.scope),
            )
        attributes = sessions.cookie_attributes(gate.tls)
        response.delete_cookie(
            attributes["key"],
            path=attributes["path"],
            secure=attributes["secure"],
            httponly=True,
            samesite="strict",
        )
        return {"ok": True, "message": "Signed out.", "next": "Sign in to continue."}

    @app.post("/api/terminals/claim")
    async def claim(body: ClaimBody, request: Request) -> Any:
        client = client_of(request.scope) or "?"
        if (answer := held(_PAIRING, client, AuditAction.TERMINAL_CLAIM, None)) is not None:
            return answer
        try:
            # The claim (or the failure it counts) and its record in one transaction.
            with store.transaction():
                result = terminals.claim(store, body.code, body.name, core.clock.now())
                if isinstance(result, terminals.ClaimRefused):
                    withdrawn = f"; {result.withdrawn} pending code(s) withdrawn"
                    audit.record(
                        core,
                        actor=None,
                        role=None,
                        action=AuditAction.TERMINAL_CLAIM,
                        outcome=AuditOutcome.DENIED,
                        client=client,
                        detail=result.reason.value + (withdrawn if result.withdrawn else ""),
                    )
                else:
                    audit.record(
                        core,
                        actor=f"terminal:{result.row.terminal_id}",
                        role=None,
                        action=AuditAction.TERMINAL_CLAIM,
                        outcome=AuditOutcome.OK,
                        target=result.row.name,
                        station=result.row.station,
                        client=client,
                    )
        except AccessError as exc:
            return _refusal(
                422,
                "BAD_REQUEST",
                (f"name: {exc}", "Fix the terminal's name and send it again."),
                (f"名称：{exc}", "请修改终端名称后重试。"),
            )
        if isinstance(result, terminals.ClaimRefused):
            if result.reason is terminals.ClaimRefusal.NOT_VALID:
                sign_ins.throttle.failed(_PAIRING, client)
            return _refusal(
                403,
                "PAIRING_CODE_NOT_VALID",
                (
                    "This pairing code is not valid (mistyped, used, expired or withdrawn).",
                    "Ask the admin for a new code: linegate terminals pair STATION.",
                ),
                (
                    "此配对码无效（输入错误、已使用、已过期或已撤销）。",
                    "请管理员生成新的配对码：linegate terminals pair 工位。",
                ),
            )
        sign_ins.throttle.succeeded(_PAIRING, client)
        row = result.row
        return {
            "ok": True,
            "message": f"This terminal is paired with station {row.station}.",
            "next": "Keep the credential: send it as 'Authorization: Bearer …' with every "
            "request. It is not shown again.",
            "terminal_id": row.terminal_id,
            "station": row.station,
            "credential": result.credential,
        }
