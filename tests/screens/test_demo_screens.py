"""`linegate demo` with its screens: the board and a station's terminal, opened in a real
browser from the addresses the demo prints, follow the simulated operators live; the
station shows the e-SOP pictures the demo's hub made, fetched by the gateway."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from playwright.async_api import async_playwright

from gateway.cli.demo import Demo, run_demo
from gateway.cli.main import _parser
from tests.clocks import LINE_MORNING
from tests.screens.conftest import _FLAGS, Watched, chromium, close_watched, watched_page


def test_the_demos_board_and_terminal_follow_the_operators_live(
    tmp_path: Path, capsys: object
) -> None:
    looked: dict[str, object] = {}
    tasks: list[asyncio.Task[None]] = []

    async def look(demo: Demo) -> None:
        try:
            await demo.gateway.started.wait()
            while demo.access is None:  # noqa: ASYNC110 - the demo offers no event for it
                await asyncio.sleep(0.05)
            base = demo.api_url
            access = demo.access
            opened: list[Watched] = []
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=chromium(), args=_FLAGS)
                board = await watched_page(
                    browser,
                    base,
                    f"/board?kiosk=1&lang=en#token={access.viewer_token}",
                    "demo-board",
                    width=1920,
                    height=1080,
                )
                opened.append(board)
                code = access.browser_codes["laser-1"]
                term = await watched_page(
                    browser, base, f"/station/laser-1?pair={code}&lang=en", "demo-terminal"
                )
                opened.append(term)
                # The simulated operators work: tiles turn green, and the terminal shows the
                # operator's task change without anyone touching the page.
                await board.page.wait_for_selector("[data-state=running]", timeout=60000)
                await term.page.wait_for_selector("[data-test=operator]", timeout=60000)
                first = await term.page.locator("[data-test=task] .serial").inner_text(
                    timeout=60000
                )
                await term.page.wait_for_function(
                    "s => { const e = document.querySelector('[data-test=task] .serial');"
                    " return e && e.textContent && e.textContent !== s; }",
                    arg=first,
                    timeout=60000,
                )
                # An e-SOP picture of the demo's hub, served by the gateway from its cache.
                picture = term.page.locator(".media img").first
                await picture.wait_for(timeout=60000)
                src = await picture.get_attribute("src")
                loaded = await picture.evaluate("i => i.complete && i.naturalWidth > 0")
                looked.update(src=src, loaded=loaded)
                await board.shot("live")
                await term.shot("live")
                await close_watched(opened)
                await browser.close()
            looked["ok"] = True
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the demo stops with its verdict

    def on_start(demo: Demo) -> None:
        tasks.append(asyncio.get_running_loop().create_task(look(demo)))

    args = _parser().parse_args(
        ["demo", "--start", LINE_MORNING.isoformat(), "--orders", "12", "--speed", "120",
         "--http-port", "0", "--data-dir", str(tmp_path), "--seed", "5"]
    )  # fmt: skip
    assert run_demo(args, on_start=on_start) == 0
    assert tasks and tasks[0].done()
    if tasks[0].exception() is not None:
        raise tasks[0].exception()  # type: ignore[misc]
    assert looked.get("ok") is True
    assert str(looked["src"]).startswith("/media/") and looked["loaded"] is True
