"""Who may read what at the office: a program's token or a person's session, each route's
policy, refusals answered (401, a sign-in page, 403) and audited, sign-in in Chinese and
English in a real Chromium, held after five wrong passwords, sessions shared by every
office instance on one store and ended by signing out."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from office.access import (
    Gate,
    Policy,
    Principal,
    Role,
    User,
    access_routes,
    hash_password,
    verify_password,
)
from office.app import serve_http
from office.config import ConfigError, load_config
from office.i18n import Catalog
from office.receive.http import http_app
from office.report.http import report_routes
from office.report.metrics import OfficeMetrics
from office.store import Store, schema
from office.web import Pages
from tests.office.conftest import now
from tests.screens.conftest import _FLAGS, chromium

pytestmark = pytest.mark.timeout(90)

READER, SHOP = "reader-t0ken", "shop-t0ken"
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.at = now()

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Office:
    url: str
    store: Store
    clock: Clock


@pytest.fixture(scope="module")
def hashed() -> str:
    return hash_password(PASSWORD)


def _app(store: Store, clock: Clock, hashed: str) -> tuple[Gate, list[Route]]:
    gate = Gate(
        store,
        {READER: Principal("prometheus", Role.READER), SHOP: Principal("tmall", Role.SHOP)},
        clock,
    )
    pages = Pages(Catalog())
    users = {
        "wang": User("wang", Role.SERVICE, hashed),
        "li": User("li", Role.MANAGER, hashed),
    }

    def probe(policy: Policy) -> Route:
        # A page under a policy, as the office's pages are: the gate first, then the page.
        async def page(request: Request) -> Response:
            admitted = await gate.admit(request, policy)
            if isinstance(admitted, Response):
                return admitted
            return pages.render(request, admitted, "base.html", {})

        return Route(f"/probe/{policy.value}", page, methods=["GET"])

    routes = [
        *access_routes(store, gate, pages, users, clock),
        *report_routes(store, gate, OfficeMetrics(store, clock)),
        probe(Policy.LOOKUP),
        probe(Policy.REPORTS),
    ]
    return gate, routes  # type: ignore[return-value]


@pytest.fixture
async def office(store: Store, hashed: str) -> AsyncIterator[Office]:
    clock = Clock()
    _gate, routes = _app(store, clock, hashed)
    app = http_app(store, {}, 64 * 1024, routes)
    try:
        async with serve_http(app, "127.0.0.1", 0) as url:
            yield Office(url, store, clock)
    finally:
        await store.close()


async def _audit(store: Store) -> list[tuple[str | None, str | None, str, str, str]]:
    a = schema.audit
    async with store.transaction() as conn:
        rows = (await conn.execute(select(a).order_by(a.c.id))).all()
    return [(r.actor, r.role, r.action, r.target, r.outcome) for r in rows]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_programs_are_let_in_by_their_role_and_refusals_are_audited(
    office: Office,
) -> None:
    async with httpx.AsyncClient(base_url=office.url) as client:
        assert (await client.get("/v1/lines", headers=_bearer(READER))).status_code == 200
        none = await client.get("/v1/lines")
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
        wrong = await client.get("/v1/lines", headers=_bearer("guess"))
        assert wrong.status_code == 401
        # A shop's token is known but may not read every line.
        shop = await client.get("/v1/lines", headers=_bearer(SHOP))
        assert shop.status_code == 403 and "shop" in shop.json()["error"]
        # The audit is the administrator's: a reader may not read it.
        assert (await client.get("/v1/audit", headers=_bearer(READER))).status_code == 403
    assert await _audit(office.store) == [
        (None, None, "refused:board", "GET /v1/lines", "denied"),
        (None, None, "refused:board", "GET /v1/lines", "denied"),
        ("tmall", "shop", "refused:board", "GET /v1/lines", "denied"),
        ("prometheus", "reader", "refused:audit", "GET /v1/audit", "denied"),
    ]


async def test_a_person_signs_in_in_chinese_and_english_and_out_again(office: Office) -> None:
    async with async_playwright() as p:
        browser: Browser = await p.chromium.launch(executable_path=chromium(), args=_FLAGS)
        try:
            context = await browser.new_context(locale="zh-CN")
            page = await context.new_page()
            await page.goto(office.url + "/probe/lookup")
            # Not signed in: sent to sign in, in Chinese (the browser's language).
            assert page.url == office.url + "/login?next=%2Fprobe%2Flookup"
            assert await page.locator("h1").inner_text() == "登录"
            await page.fill("#name", "wang")
            await page.fill("#password", "wrong password!")
            await page.click("#sign-in")
            assert await page.locator("#problem").inner_text() == "用户名或密码错误。"
            await page.fill("#password", PASSWORD)
            await page.click("#sign-in")
            await page.wait_for_url(office.url + "/probe/lookup")
            assert await page.locator("#who").inner_text() == "wang (客服)"
            assert await page.locator("nav a").all_inner_texts() == ["订单查询", "现场看板"]
            await page.click("#lang-en")
            assert await page.locator("#sign-out").inner_text() == "Sign out"
            assert await page.locator("#who").inner_text() == "wang (customer service)"
            # Customer service may not open the managers' reports: told so, in English now.
            await page.goto(office.url + "/probe/reports")
            assert await page.locator("h1").inner_text() == "Not allowed"
            assert "customer service" in await page.locator("#problem").inner_text()
            await page.goto(office.url + "/probe/lookup")
            await page.click("#sign-out")
            await page.wait_for_url(office.url + "/login")
            await page.goto(office.url + "/probe/lookup")
            assert page.url.startswith(office.url + "/login?next=")
        finally:
            await browser.close()
    audit = await _audit(office.store)
    assert [(a[0], a[2], a[4]) for a in audit] == [
        (None, "refused:lookup", "denied"),
        (None, "sign-in", "denied"),
        ("wang", "sign-in", "ok"),
        ("wang", "refused:reports", "denied"),
        ("wang", "sign-out", "ok"),
        (None, "refused:lookup", "denied"),
    ]


async def test_five_wrong_passwords_hold_the_name_for_ten_minutes(office: Office) -> None:
    async with httpx.AsyncClient(base_url=office.url) as client:

        async def sign_in(password: str) -> httpx.Response:
            return await client.post(
                "/login", data={"name": "li", "password": password, "next": "/probe/reports"}
            )

        for _ in range(5):
            assert (await sign_in("not it at all")).status_code == 401
        held = await sign_in(PASSWORD)
        assert held.status_code == 429 and "十分钟" in held.text
        office.clock.at += timedelta(minutes=10)
        good = await sign_in(PASSWORD)
        assert good.status_code == 303 and good.headers["location"] == "/probe/reports"
        # The session: good for a shift, then sign in again.
        assert (await client.get("/probe/reports")).status_code == 200
        office.clock.at += timedelta(hours=12)
        gone = await client.get("/probe/reports", headers={"Accept": "text/html"})
        assert gone.status_code == 303
        # After sign-in only a path of this office: never another site.
        client.cookies.clear()
        away = await client.post(
            "/login", data={"name": "li", "password": PASSWORD, "next": "//evil.example/x"}
        )
        assert away.headers["location"] == "/board"  # the manager's first page


async def test_a_session_is_known_to_every_instance_on_the_store(pg_url: str, hashed: str) -> None:
    clock = Clock()
    one, two = await Store.open(pg_url, clock), await Store.open(pg_url, clock)
    try:
        _g1, routes1 = _app(one, clock, hashed)
        _gate2, routes2 = _app(two, clock, hashed)
        async with (
            serve_http(http_app(one, {}, 65536, routes1), "127.0.0.1", 0) as url1,
            serve_http(http_app(two, {}, 65536, routes2), "127.0.0.1", 0) as url2,
            httpx.AsyncClient() as client,
        ):
            signed = await client.post(
                url1 + "/login", data={"name": "wang", "password": PASSWORD, "next": "/"}
            )
            assert signed.status_code == 303
            cookie = {"Cookie": f"office_session={signed.cookies['office_session']}"}
            client.cookies.clear()  # sent by hand, to the instance named
            again = await client.get(url2 + "/probe/lookup", headers=cookie)
            assert again.status_code == 200
            await client.post(url2 + "/logout", headers=cookie)
            ended = await client.get(url1 + "/probe/lookup", headers=cookie)
            assert ended.status_code == 401
    finally:
        await one.close()
        await two.close()


def test_hash_password_makes_a_hash_the_config_takes(tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "office.cli", "hash-password"],
        input="a long enough secret\n",
        capture_output=True,
        text=True,
        check=True,
    )
    phc = made.stdout.strip()
    assert phc.startswith("$argon2id$") and verify_password(phc, "a long enough secret")
    short = subprocess.run(
        [sys.executable, "-m", "office.cli", "hash-password"],
        input="short\n",
        capture_output=True,
        text=True,
    )
    assert short.returncode == 2 and "12 characters" in short.stderr
    (tmp_path / "wang.hash").write_text(phc + "\n")
    (tmp_path / "li.hash").write_text("plain password\n")
    (tmp_path / "office.toml").write_text(
        '[[users]]\nname = "wang"\nrole = "service"\npassword_file = "wang.hash"\n'
    )
    assert load_config(tmp_path / "office.toml").password_hashes()["wang"] == ("service", phc)
    (tmp_path / "office.toml").write_text(
        '[[users]]\nname = "li"\nrole = "manager"\npassword_file = "li.hash"\n'
    )
    with pytest.raises(ConfigError, match="argon2id hash"):
        load_config(tmp_path / "office.toml")
    (tmp_path / "office.toml").write_text(
        '[[users]]\nname = "li"\nrole = "owner"\npassword_file = "li.hash"\n'
    )
    with pytest.raises(ConfigError, match=r"users\.0\.role"):
        load_config(tmp_path / "office.toml")
