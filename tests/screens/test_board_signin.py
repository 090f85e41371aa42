"""The board in a browser for a line lead: signing in with an account (a session cookie
and its CSRF token) and acknowledging an alarm from the board; a viewer sees no button."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from gateway.access.accounts import add_user
from gateway.access.passwords import hash_secret
from gateway.orderbook.alarms import raise_alarm
from gateway.store.rows import Role, Severity
from tests.gateway.test_station_api import served_line
from tests.screens.conftest import OpenPage

PASSWORD = "lead-of-line-3-pw"


async def _sign_in(page: Page, username: str) -> None:
    await page.fill("[data-test=username]", username)
    await page.fill("[data-test=password]", PASSWORD)
    await page.click("[data-test=signin-submit]")


async def test_a_line_lead_signs_in_and_acknowledges_an_alarm_from_the_board(
    tmp_path: Path, open_page: OpenPage
) -> None:
    async with served_line(tmp_path) as (ln, gw):
        now = ln.clock.now()
        add_user(gw.store, "lead", Role.LINE_LEAD, hash_secret(PASSWORD), now, "Wang Lei")
        add_user(gw.store, "watcher", Role.VIEWER, hash_secret(PASSWORD), now)
        with gw.store.transaction():
            raise_alarm(gw.core, "test:jam", "machine", "dtg-1", Severity.MAJOR, "Paper jam")
        base = f"http://127.0.0.1:{gw.http_port}"

        viewer = await open_page(base, "/board?lang=en", width=1280, height=800)
        await _sign_in(viewer.page, "watcher")
        await viewer.page.locator("[data-alarm='test:jam']").wait_for()
        assert not await viewer.page.locator("[data-alarm='test:jam'] [data-test=ack]").is_visible()

        board = await open_page(base, "/board?lang=en", width=1280, height=800)
        await board.page.locator("[data-test=signin]").wait_for()
        await _sign_in(board.page, "lead")
        ack = board.page.locator("[data-alarm='test:jam'] [data-test=ack]")
        await ack.click()
        # Acknowledged in the store, and shown on the board by the push.
        await board.page.locator("[data-alarm='test:jam']").filter(has_text="✓ lead").wait_for()
        await board.shot("acknowledged")
        row = gw.store.conn.execute(
            "SELECT acked_by FROM alarms WHERE alarm_id = 'test:jam'"
        ).fetchone()
        assert row[0] == "lead"
