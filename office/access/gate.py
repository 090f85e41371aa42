"""The check every office route runs before its handler: who is asking (a program's
bearer token, or a person's session cookie) and whether the route's policy lets that role
in. A refusal is answered and audited here; a person is sent to sign in.

Sessions are rows in the store (by the sha256 of the cookie), so every office instance
knows them and signing out ends them everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from office.access.roles import ALLOWED, Policy, Principal, Role
from office.store import RejectKind, Store, StoreUnavailable, schema

__all__ = ["SESSION_COOKIE", "Gate", "Outcome", "client_of", "wants_page"]

log = logging.getLogger(__name__)

SESSION_COOKIE = "office_session"
SESSION_HOURS = 12  # a shift and its overlap: sign in once per shift


class Outcome:
    OK = "ok"
    DENIED = "denied"


def client_of(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def wants_page(request: Request) -> bool:
    """A person's browser asking for a page (sent to sign in), not a program (401)."""
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


class Gate:
    def __init__(
        self,
        store: Store,
        tokens: Mapping[str, Principal],
        now: Callable[[], datetime],
        forbidden_page: Callable[[Request, Principal], Response] | None = None,
    ) -> None:
        self._store = store
        self._tokens = dict(tokens)
        self._now = now
        # The pages' 403 (in the person's language); set by the composition root.
        self.forbidden_page = forbidden_page

    # -- who is asking ----------------------------------------------------------------

    def _by_token(self, request: Request) -> Principal | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        offered = token.strip().encode()
        found: Principal | None = None
        for known, principal in self._tokens.items():
            # compare_digest for each: how long a refusal takes tells nothing of a token.
            if hmac.compare_digest(known.encode(), offered):
                found = principal
        return found

    async def _by_session(self, request: Request) -> Principal | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        s = schema.sessions
        try:
            async with self._store.read() as conn:
                row = (
                    await conn.execute(
                        select(s.c.name, s.c.role, s.c.expires_at).where(
                            s.c.digest == _digest(cookie)
                        )
                    )
                ).first()
        except StoreUnavailable:
            return None
        if row is None or row.expires_at <= _iso(self._now()):
            return None
        try:
            return Principal(row.name, Role(row.role))
        except ValueError:
            return None

    async def who(self, request: Request) -> Principal | None:
        return self._by_token(request) or await self._by_session(request)

    # -- the check ----------------------------------------------------------------------

    async def admit(self, request: Request, policy: Policy) -> Principal | Response:
        """The principal when ``policy`` lets them in; otherwise the refusal to return
        (already audited)."""
        principal = await self.who(request)
        target = f"{request.method} {request.url.path}"
        if principal is None:
            await self.refused(None, policy, target, client_of(request))
            if wants_page(request):
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)
            return JSONResponse(
                {"error": "sign in or send a bearer token that may read this"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in ALLOWED[policy]:
            await self.refused(principal, policy, target, client_of(request))
            if wants_page(request) and self.forbidden_page is not None:
                return self.forbidden_page(request, principal)
            return JSONResponse(
                {"error": f"the role {principal.role} may not {policy.value}"}, status_code=403
            )
        return principal

    async def refused(
        self, principal: Principal | None, policy: Policy, target: str, client: str | None
    ) -> None:
        """An audit row of its own for a refusal; a store that is down does not turn a
        refusal into a 500. Nobody known (no or a wrong token) also counts in the office's
        ``rejected_total{reason="auth"}``: what an alert on token trouble watches."""
        if principal is None:
            self._store.tally.rejected[RejectKind.AUTH] += 1
        try:
            async with self._store.transaction() as conn:
                await self._write(conn, principal, f"refused:{policy.value}", target, client)
        except StoreUnavailable:
            log.warning("refused %s %s; the audit row could not be written", target, client)

    async def record(
        self,
        conn: AsyncConnection,
        principal: Principal | None,
        action: str,
        target: str,
        client: str | None,
        outcome: str = Outcome.OK,
    ) -> None:
        """An audit row in the caller's transaction (with the effect it records)."""
        await self._write(conn, principal, action, target, client, outcome)

    async def _write(
        self,
        conn: AsyncConnection,
        principal: Principal | None,
        action: str,
        target: str,
        client: str | None,
        outcome: str = Outcome.DENIED,
    ) -> None:
        await conn.execute(
            insert(schema.audit).values(
                at=_iso(self._now()),
                actor=principal.name if principal else None,
                role=principal.role.value if principal else None,
                action=action,
                target=target[:1000],
                outcome=outcome,
                client=client,
            )
        )

    # -- sessions -----------------------------------------------------------------------

    async def open_session(self, conn: AsyncConnection, principal: Principal) -> str:
        """A new session in the caller's transaction; returns the cookie's value."""
        token = secrets.token_urlsafe(32)
        now = self._now()
        await conn.execute(
            insert(schema.sessions).values(
                digest=_digest(token),
                name=principal.name,
                role=principal.role.value,
                created_at=_iso(now),
                expires_at=_iso(now + timedelta(hours=SESSION_HOURS)),
            )
        )
        # Expired sessions go with each new one: the table stays the size of a shift.
        await conn.execute(delete(schema.sessions).where(schema.sessions.c.expires_at <= _iso(now)))
        return token

    async def close_session(self, conn: AsyncConnection, cookie: str) -> None:
        await conn.execute(
            delete(schema.sessions).where(schema.sessions.c.digest == _digest(cookie))
        )
