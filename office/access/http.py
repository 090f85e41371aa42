"""Signing in and out, the audit for the administrator, the pages' shared files.

A person signs in with a name and password (``[[users]]``); the form posts back here, the
hash is checked off the loop, and a session cookie (HttpOnly, SameSite=Lax) is set. Five
wrong passwords for a name within ten minutes hold that name for ten minutes: online
guessing is slow, and the holder's colleagues are not locked out by address.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from office.access.gate import SESSION_COOKIE, SESSION_HOURS, Gate, Outcome, client_of
from office.access.passwords import DUMMY_HASH, verify_password
from office.access.roles import ALLOWED, Policy, Principal, Role
from office.i18n import t
from office.store import Store, StoreUnavailable, schema
from office.web.pages import TEMPLATES, Pages

__all__ = ["User", "access_routes"]

_FAILS = 5
_WINDOW = timedelta(minutes=10)
_FORM_BYTES = 8192


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str  # argon2id PHC string


def _local(next_: str) -> str:
    # Only a path on this site: a crafted link must not send a person elsewhere after sign-in.
    if next_.startswith("/") and not next_.startswith("//") and "\\" not in next_:
        return next_
    return "/"


class _Ends:
    def __init__(
        self,
        store: Store,
        gate: Gate,
        pages: Pages,
        users: Mapping[str, User],
        now: Callable[[], datetime],
        secure_cookie: bool,
    ) -> None:
        self._store = store
        self._gate = gate
        self._pages = pages
        self._users = dict(users)
        self._now = now
        self._secure = secure_cookie
        self._fails: dict[str, deque[datetime]] = {}

    def _held(self, name: str) -> bool:
        fails = self._fails.get(name)
        if not fails:
            return False
        while fails and fails[0] <= self._now() - _WINDOW:
            fails.popleft()
        return len(fails) >= _FAILS

    def _login_page(
        self, request: Request, next_: str, name: str = "", problem: str = "", status: int = 200
    ) -> Response:
        return self._pages.render(
            request,
            None,
            "login.html",
            {"next": next_, "name": name, "problem": problem},
            status=status,
        )

    async def login_form(self, request: Request) -> Response:
        who = await self._gate.who(request)
        next_ = _local(request.query_params.get("next", "/"))
        if who is not None:
            return RedirectResponse(next_, status_code=303)
        return self._login_page(request, next_)

    async def login(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > _FORM_BYTES:
            return JSONResponse({"error": "form too large"}, status_code=413)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        name = form.get("name", [""])[0].strip()
        password = form.get("password", [""])[0]
        next_ = _local(form.get("next", ["/"])[0])
        client = client_of(request)
        user = self._users.get(name)
        if self._held(name):
            await self._audit(None, name, client, Outcome.DENIED, "sign-in held")
            problem = self._pages.text(
                request, t("Too many wrong passwords for this name: wait ten minutes.")
            )
            return self._login_page(request, next_, name, problem, status=429)
        # Unknown names cost a verification too: how long the answer takes tells nothing.
        good = await asyncio.to_thread(
            verify_password, user.password_hash if user else DUMMY_HASH, password
        )
        if user is None or not good:
            self._fails.setdefault(name, deque()).append(self._now())
            await self._audit(None, name, client, Outcome.DENIED, "sign-in")
            problem = self._pages.text(request, t("Wrong name or password."))
            return self._login_page(request, next_, name, problem, status=401)
        self._fails.pop(name, None)
        principal = Principal(user.name, user.role)
        try:
            async with self._store.transaction() as conn:
                cookie = await self._gate.open_session(conn, principal)
                await self._gate.record(conn, principal, "sign-in", name, client)
        except StoreUnavailable:
            return JSONResponse({"error": "the store is unavailable"}, status_code=503)
        if next_ == "/":
            next_ = _home(principal)
        response = RedirectResponse(next_, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=SESSION_HOURS * 3600,
            httponly=True,
            samesite="lax",
            secure=self._secure,
        )
        return response

    async def logout(self, request: Request) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        who = await self._gate.who(request)
        if cookie:
            try:
                async with self._store.transaction() as conn:
                    await self._gate.close_session(conn, cookie)
                    if who is not None:
                        await self._gate.record(conn, who, "sign-out", who.name, client_of(request))
            except StoreUnavailable:
                return JSONResponse({"error": "the store is unavailable"}, status_code=503)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def _audit(
        self,
        principal: Principal | None,
        target: str,
        client: str | None,
        outcome: str,
        action: str,
    ) -> None:
        try:
            async with self._store.transaction() as conn:
                await self._gate.record(conn, principal, action, target, client, outcome)
        except StoreUnavailable:
            pass

    async def home(self, request: Request) -> Response:
        who = await self._gate.who(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse(_home(who), status_code=303)

    async def audit(self, request: Request) -> Response:
        admitted = await self._gate.admit(request, Policy.AUDIT)
        if isinstance(admitted, Response):
            return admitted
        try:
            limit = max(1, min(int(request.query_params.get("limit", "200")), 5000))
        except ValueError:
            return JSONResponse({"error": "limit must be a number"}, status_code=400)
        a = schema.audit
        try:
            async with self._store.read() as conn:
                rows = (await conn.execute(select(a).order_by(a.c.id.desc()).limit(limit))).all()
        except StoreUnavailable:
            return JSONResponse({"error": "the store is unavailable"}, status_code=503)
        return JSONResponse(
            {
                "audit": [
                    {
                        "at": r.at,
                        "actor": r.actor,
                        "role": r.role,
                        "action": r.action,
                        "target": r.target,
                        "outcome": r.outcome,
                        "client": r.client,
                    }
                    for r in rows
                ]
            }
        )


def _home(principal: Principal) -> str:
    # A person's first page is the one their work starts from.
    if principal.role in ALLOWED[Policy.LOOKUP] and principal.role is Role.SERVICE:
        return "/orders"
    if principal.role in ALLOWED[Policy.BOARD]:
        return "/board"
    return "/orders"


def access_routes(
    store: Store,
    gate: Gate,
    pages: Pages,
    users: Mapping[str, User],
    now: Callable[[], datetime],
    secure_cookie: bool = False,
) -> list[BaseRoute]:
    ends = _Ends(store, gate, pages, users, now, secure_cookie)
    gate.forbidden_page = lambda request, principal: pages.render(
        request, principal, "forbidden.html", {}, status=403
    )
    return [
        Route("/", ends.home, methods=["GET"]),
        Route("/login", ends.login_form, methods=["GET"]),
        Route("/login", ends.login, methods=["POST"]),
        Route("/logout", ends.logout, methods=["POST"]),
        Route("/v1/audit", ends.audit, methods=["GET"]),
        Mount("/static", StaticFiles(directory=TEMPLATES.parent / "static"), name="static"),
    ]
