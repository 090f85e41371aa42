"""A real browser for the screens: Debian's Chromium driven by Playwright.

Every page a test opens is watched: a request to anywhere but the gateway, or an error
on the console (a script's exception, a failed load), fails the test at its end. Each
test leaves screenshots in build/screenshots/ (the README's pictures come from there).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
# What the machine's own probe starts Chromium with: no sandbox as root, and none of the
# background connections (updates, sync, safe browsing) a closed network refuses.
_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium() -> str:
    found = os.environ.get("LINEGATE_CHROMIUM") or shutil.which("chromium")
    if found is None:
        missing("chromium is not installed (apt-get install chromium)")
    return found


@dataclass
class Watched:
    """A page and what it did that it should not have."""

    page: Page
    base: str
    name: str
    errors: list[str] = field(default_factory=list)
    # Console errors a test causes on purpose (a dropped connection), by a part of their text.
    allowed: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    shots: int = 0

    async def shot(self, label: str) -> Path:
        self.shots += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.name}-{self.shots:02d}-{label}.png"
        await self.page.screenshot(path=str(path))  # what the person sees
        return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, args=_FLAGS)
        try:
            yield b
        finally:
            await b.close()


async def watched_page(
    browser: Browser,
    base: str,
    path: str,
    name: str,
    *,
    width: int = 1024,
    height: int = 600,
    mobile: bool = False,
) -> Watched:
    """A new browser context (its own storage: a terminal of its own) on ``base + path``,
    watched for requests outside ``base`` and for console errors."""
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        is_mobile=mobile,
        has_touch=mobile,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    page = await context.new_page()
    watched = Watched(page, base, name)

    def console(msg: ConsoleMessage) -> None:
        text = msg.text
        # Not the page's faults: a stream trying again once the test stopped the gateway,
        # and Chromium's own note of a refused action (409 is how the desk says "no",
        # which the page shows in its banner).
        expected: tuple[str, ...] = ("ERR_CONNECTION_REFUSED", "status of 409 (Conflict)")
        expected += tuple(watched.allowed)
        if msg.type == "error" and not any(e in text for e in expected):
            watched.errors.append(text)

    page.on("console", console)
    page.on("pageerror", lambda exc: watched.errors.append(f"page error: {exc}"))

    def outside(req: Request) -> None:
        if not req.url.startswith((base, "data:", "blob:", "about:")):
            watched.outside.append(req.url)

    page.on("request", outside)
    await page.goto(base + path)
    return watched


async def close_watched(opened: list[Watched]) -> None:
    """A last screenshot of each, then the checks: nothing outside, no console error."""
    for watched in opened:
        await watched.shot("end")
        await watched.page.context.close()
    for watched in opened:
        assert watched.outside == [], f"{watched.name} reached outside the gateway"
        assert watched.errors == [], f"{watched.name} logged errors: {watched.errors}"


OpenPage = Callable[..., Awaitable[Watched]]


@pytest.fixture
async def open_page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[OpenPage]:
    """``await open_page(base, path, width=1024, height=600)``: :func:`watched_page` named
    after the test."""
    opened: list[Watched] = []
    test = re.sub(r"[^A-Za-z0-9_]+", "-", request.node.name)[:60]

    async def open_(base: str, path: str, **kw: Any) -> Watched:
        watched = await watched_page(browser, base, path, f"{test}-{len(opened) + 1}", **kw)
        opened.append(watched)
        return watched

    yield open_
    await close_watched(opened)
