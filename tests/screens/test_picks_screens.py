"""Pick requests on the screens, in a real browser against the real gateway with its
planner: the laser's terminal shows what the warehouse was asked to bring it and, once its
lot is scanned there, that it arrived; the board shows each station's, in Chinese."""

from __future__ import annotations

from pathlib import Path

from tests.gateway.test_picks import PEN, PEN_LOT, config, until
from tests.gateway.test_station_api import served_line
from tests.screens.conftest import OpenPage
from tests.screens.test_terminal import _terminal, banner, scan


async def test_the_terminal_and_the_board_show_requested_then_arrived(
    tmp_path: Path, open_page: OpenPage
) -> None:
    async with served_line(tmp_path, config()) as (ln, gw):
        planner, picks = gw.planner, gw.picks
        assert planner is not None and picks is not None
        await ln.order("SO-1", "2030-01-01T10:00:00+08:00")
        await ln.order("SO-2", "2030-01-01T11:00:00+08:00")
        await until(
            lambda: (
                picks.looked_at is not None
                and len(picks.looked_at.planned) > 0
                and picks.looked_at is planner.replanner.current
            )
        )
        # Tall enough that the side column shows the requests under the next tasks.
        term = await _terminal(gw, ln, open_page, "laser-1", width=1280, height=1000)
        page = term.page
        pen = page.locator(f"[data-test=picks] .pick[data-material={PEN}]")
        await pen.and_(page.locator("[data-state=requested]")).wait_for()
        said = await pen.inner_text()
        assert PEN_LOT in said and "2 pcs" in said and "Requested" in said and "Need by" in said
        await term.shot("requested")

        viewer = ln.keys.token("viewer")
        board = await open_page(
            f"http://127.0.0.1:{gw.http_port}",
            f"/board?kiosk=1&lang=zh-CN#token={viewer}",
            width=1920,
            height=1080,
        )
        row = board.page.locator(f"[data-test=picks] tr[data-station=laser-1][data-material={PEN}]")
        await row.and_(board.page.locator("[data-state=requested]")).wait_for()
        assert "已请求" in await row.inner_text()
        tile = board.page.locator("[data-station=laser-1] [data-test=tile-picks]")
        await tile.wait_for()
        assert "已请求" in await tile.inner_text()
        await board.shot("requested")

        # The operator takes the first pen and scans its lot: the warehouse's pens are here.
        await page.keyboard.press("F6")
        await page.locator("[data-test=task]").filter(has_text="SO-1").wait_for()
        serial = (await ln.view("laser-1"))["task"]["serial"]
        await scan(term, serial)
        await banner(term, "ok", serial)
        await scan(term, PEN_LOT)
        await banner(term, "ok", PEN_LOT)
        arrived = pen.and_(page.locator("[data-state=arrived]"))
        await arrived.wait_for()
        said = await arrived.inner_text()
        assert "Arrived" in said and "At the station" in said and "2 pcs" in said
        await term.shot("arrived")
        # The board computes again within its longest age (5 s): arrived, in Chinese.
        await row.and_(board.page.locator("[data-state=arrived]")).wait_for(timeout=10_000)
        assert "已送达" in await row.inner_text()
        await board.page.locator("[data-test=picks]").scroll_into_view_if_needed()
        await board.shot("arrived")
