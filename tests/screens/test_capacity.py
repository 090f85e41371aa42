""" "Can we take this promotion?" in a browser (issue 14): a line lead signs in on the
capacity page, pastes a forecast and reads the answer in Chinese: the bottleneck, the
orders that miss the truck, the overtime that brings them in.

The forecast is tests/gateway/test_capacity.py's, a day earlier: 400 caps for the SF truck
at 10:00 the next morning, 42 of them late on emb-1 without overtime, none with 2 h more
of its late shift (that module's docstring counts it by hand).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.access.accounts import add_user
from gateway.access.passwords import hash_secret
from gateway.store.rows import Role
from tests.gateway.test_station_api import served_line
from tests.screens.conftest import OpenPage

PASSWORD = "lead-of-line-3-pw"
# served_line's clock: Wednesday 2026-11-25 10:00 in Shanghai.
TRUCK = datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
FORECAST = [
    {
        "order_id": f"PROMO-{n:03d}",
        "ship_by": TRUCK.isoformat(),
        "carrier": "SF",
        "lines": [{"sku": "CAP-EMB-NAVY", "qty": 1, "personalization": {"thread_color": "gold"}}],
    }
    for n in range(1, 401)
]


async def test_a_line_lead_checks_a_promotion_on_the_capacity_page(
    tmp_path: Path, open_page: OpenPage
) -> None:
    async with served_line(tmp_path) as (ln, gw):
        add_user(gw.store, "lead", Role.LINE_LEAD, hash_secret(PASSWORD), ln.clock.now(), "王芳")
        base = f"http://127.0.0.1:{gw.http_port}"
        shown = await open_page(base, "/capacity?lang=zh-CN", width=1280, height=900)
        page = shown.page
        await page.locator("[data-test=signin]").wait_for()
        await page.fill("[data-test=username]", "lead")
        await page.fill("[data-test=password]", PASSWORD)
        await page.click("[data-test=signin-submit]")

        await page.click("[data-test=check]")  # nothing pasted yet: said, not sent
        await page.locator("[data-test=error]").filter(has_text="请先粘贴预测").wait_for()

        await page.fill("[data-test=forecast]", json.dumps(FORECAST))
        await page.click("[data-test=check]")
        summary = page.locator("[data-test=summary]")
        await summary.wait_for(timeout=60_000)
        await shown.shot("answer")

        text = await summary.inner_text()
        assert "瓶颈：emb-1" in text
        assert "400 个订单中有 42 个赶不上快递截单时间" in text
        overtime = page.locator("[data-test=overtime] li")
        assert await overtime.count() == 1
        assert await overtime.first.get_attribute("data-station") == "emb-1"
        assert "late 班延长 2 小时" in await overtime.first.inner_text()
        first = page.locator("[data-test=stations] tr[data-station]").first
        assert await first.get_attribute("data-station") == "emb-1"
        assert await page.locator("[data-test=late] tr[data-order]").count() == 42
        # Only asked about: none of the forecast is on the line.
        assert gw.store.count("SELECT count(*) FROM orders") == 0
