"""The station terminal in a real browser, against the real gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from playwright.async_api import Route

from gateway.access import terminals
from gateway.app.root import Gateway
from tests.gateway.test_station_api import LOT, Line, served_line
from tests.screens.conftest import OpenPage, Watched


async def test_pairing_a_terminal_and_signing_in_by_a_typed_badge_scan(
    tmp_path: Path, open_page: OpenPage
) -> None:
    async with served_line(tmp_path) as (ln, gw):
        code = terminals.pair(gw.store, gw.config, "pack-1", ln.clock.now()).code
        base = f"http://127.0.0.1:{gw.http_port}"
        term = await open_page(base, f"/station/pack-1?pair={code}&lang=en")
        page = term.page
        await page.wait_for_selector("[data-test=link].live")
        # The code is used up and gone from the address; the terminal keeps its credential.
        assert "pair=" not in page.url
        await term.shot("paired")
        badge = ln.badges["pack-1"]
        await scan(term, badge)
        await page.wait_for_selector(f"[data-test=operator]:has-text('{_name(gw, badge)}')")
        await term.shot("signed-in")
        # A reload keeps the pairing: the page does not ask for a code again.
        await page.reload()
        await page.wait_for_selector("[data-test=link].live")
        assert not await page.is_visible("[data-test=pair]")


def _name(gw: Gateway, badge: str) -> str:
    return next(o.name for o in gw.config.operators if o.badge == badge)


async def _terminal(gw: Gateway, ln: Line, open_page: OpenPage, station: str, **kw: Any) -> Watched:
    """A browser paired with ``station`` through its page, its operator signed in by a scan."""
    code = terminals.pair(gw.store, gw.config, station, ln.clock.now()).code
    term = await open_page(
        f"http://127.0.0.1:{gw.http_port}", f"/station/{station}?pair={code}&lang=en", **kw
    )
    await term.page.wait_for_selector("[data-test=link].live")
    await scan(term, ln.badges[station])
    await term.page.wait_for_selector("[data-test=operator]")
    return term


async def scan(term: Watched, code: str) -> None:
    """What a keyboard-wedge scanner does: type the code into the focused field, then Enter."""
    await term.page.wait_for_selector("#scan:focus")
    await term.page.keyboard.type(code)
    await term.page.keyboard.press("Enter")


async def banner(term: Watched, kind: str, text: str) -> str:
    """The answer shown: ``kind`` "ok" or "error", containing ``text``."""
    locator = term.page.locator(f"[data-test=banner].{kind}")
    await locator.filter(has_text=text).wait_for()
    return await locator.inner_text()


async def test_a_whole_engraving_task_with_a_wrong_lot_refused_then_the_right_one(
    tmp_path: Path, open_page: OpenPage
) -> None:
    async with served_line(tmp_path) as (ln, gw):
        await ln.order("SO-1", "2030-01-01T10:00:00+08:00", channel="tmall")
        term = await _terminal(gw, ln, open_page, "laser-1")
        page = term.page
        await page.keyboard.press("F6")  # take the next task
        await page.locator("[data-test=task]").filter(has_text="SO-1").wait_for()
        view = await ln.view("laser-1")
        serial = view["task"]["serial"]
        # The personalisation in large type.
        assert await page.locator(".personal-text").inner_text() == "SO-1"
        await scan(term, serial)
        await banner(term, "ok", serial)
        # A lot of another material: refused, explained, nothing recorded.
        await scan(term, "LIPSTICK-R01-L2609A")
        refusal = await banner(term, "error", "")
        await term.shot("wrong-lot")
        assert "LIPSTICK" in refusal or "lot" in refusal.lower()
        assert (await ln.view("laser-1"))["task"]["materials"][0]["scanned"] is None
        await scan(term, LOT)
        await banner(term, "ok", "")
        await page.keyboard.press("F2")
        await page.locator(".task-head .status.running").wait_for()
        await term.shot("running")
        await page.keyboard.press("F4")
        await ln.events("task.completed")
        completed = [e for e in ln.hub.events if e["type"] == "task.completed"]
        assert [e["data"]["serial"] for e in completed] == [serial]


async def test_failing_a_unit_with_scrap_from_the_page(tmp_path: Path, open_page: OpenPage) -> None:
    async with served_line(tmp_path) as (ln, gw):
        await ln.order("SO-1", "2030-01-01T10:00:00+08:00")
        term = await _terminal(gw, ln, open_page, "laser-1")
        page = term.page
        await page.click("[data-test=take-next]")
        serial = (await ln.view("laser-1"))["task"]["serial"]
        await page.locator("[data-test=task]").filter(has_text="SO-1").wait_for()
        await scan(term, serial)
        await scan(term, LOT)
        await page.click("[data-test=start]")
        await page.locator(".task-head .status.running").wait_for()
        await page.click("[data-test=fail]")
        await page.click("[data-test=dialog] .reasons button >> nth=0")  # "Misprint"
        await page.click("[data-test=disposition-scrap]")
        await term.shot("fail-dialog")
        await page.click("[data-test=confirm]")
        failed = (await ln.events("task.failed"))[0]["data"]
        assert failed["serial"] == serial
        assert failed["disposition"] == "scrap"
        assert failed["reason"] == "Misprint"


async def test_packing_a_two_unit_order_with_a_weight_out_of_tolerance_then_in(
    tmp_path: Path, open_page: OpenPage
) -> None:
    async with served_line(tmp_path) as (ln, gw):
        # Two engraved pens in one order: engraved, inspected and boxed through the API.
        doc = {
            "order_id": "SO-2U",
            "ship_by": "2030-01-01T10:00:00+08:00",
            "lines": [{"sku": "PEN-ENG", "qty": 2, "personalization": {"text": "Ana"}}],
        }
        ln.hub.publish("in/orders", json.dumps(doc).encode())
        await ln.events("order.accepted")
        serials = await _make_pens(ln, 2)
        term = await _terminal(gw, ln, open_page, "pack-1")
        page = term.page
        await page.keyboard.press("F6")
        await page.locator("[data-test=units]").wait_for()
        for serial in serials:
            await scan(term, serial)
            await banner(term, "ok", "")
        await scan(term, "CARTON-S")
        await banner(term, "ok", "")
        task = (await ln.view("pack-1"))["task"]
        expected, tol = task["expected_weight_g"], task["tolerance_g"]
        # Out of the band the catalog's unit weights give: refused as a bad weight.
        await page.fill("[data-test=manual-weight]", str(expected + tol + 50))
        await page.press("[data-test=manual-weight]", "Enter")
        await banner(term, "error", "")
        await page.locator("[data-test=reading].out-band").wait_for()
        await term.shot("weight-out")
        await page.fill("[data-test=manual-weight]", str(expected))
        await page.press("[data-test=manual-weight]", "Enter")
        await banner(term, "ok", "")
        label_id = (await ln.view("pack-1"))["task"]["label_id"]
        assert label_id
        await page.locator("[data-test=reprint]").wait_for()
        await term.shot("weight-in")
        await scan(term, label_id)
        done = (await ln.events("order.completed"))[0]
        assert done["order_id"] == "SO-2U"

        # Customer service looks the finished order up by one of its units' serials.
        token = ln.keys.token("viewer")
        lookup = await open_page(
            f"http://127.0.0.1:{gw.http_port}",
            f"/orders?lang=en#token={token}",
            width=1280,
            height=900,
        )
        await lookup.page.fill("[data-test=query]", serials[1])
        await lookup.page.click("[data-test=search]")
        order = lookup.page.locator("[data-test=order]")
        await order.filter(has_text="SO-2U").wait_for()
        assert (await lookup.page.inner_text("[data-test=stage]")).strip() == "Done"
        text = await order.inner_text()
        for serial in serials:
            assert serial in text
        assert "laser-1" in text and "qc-1" in text and "kit-1" in text  # each step's station
        assert LOT in text  # the lot engraved, linking to its trace
        parcel = await lookup.page.inner_text("[data-test=parcel]")
        assert label_id in parcel and f"{expected:g} g" in parcel  # the weight taken
        await lookup.shot("lookup")


async def _make_pens(ln: Line, n: int) -> list[str]:
    serials = []
    for _ in range(n):
        unit = await ln.take("laser-1")
        serials.append(unit["serial"])
        await ln.scan("laser-1", unit["serial"])
        await ln.scan("laser-1", LOT)
        await ln.post("laser-1", "start")
        await ln.post("laser-1", "complete")
    for serial in serials:
        assert (await ln.take("qc-1"))["serial"] == serial
        await ln.scan("qc-1", serial)
        await ln.post("qc-1", "start")
        await ln.post("qc-1", "checklist", {"item": 0, "passed": True})
        await ln.post("qc-1", "checklist", {"item": 1, "passed": True})
        await ln.post("qc-1", "complete")
    for serial in serials:
        assert (await ln.take("kit-1"))["serial"] == serial
        await ln.scan("kit-1", serial)
        await ln.scan("kit-1", "GIFTBOX-S")
        await ln.post("kit-1", "start")
        await ln.post("kit-1", "complete")
    await ln.post("laser-1", "logout")
    return serials


async def test_an_action_retried_after_a_dropped_connection_is_done_once(
    tmp_path: Path, open_page: OpenPage
) -> None:
    async with served_line(tmp_path) as (ln, gw):
        await ln.order("SO-1", "2030-01-01T10:00:00+08:00")
        term = await _terminal(gw, ln, open_page, "laser-1")
        page = term.page
        await page.keyboard.press("F6")
        await page.locator("[data-test=task]").filter(has_text="SO-1").wait_for()
        serial = (await ln.view("laser-1"))["task"]["serial"]
        await scan(term, serial)
        await scan(term, LOT)
        await banner(term, "ok", "")
        await page.keyboard.press("F2")
        await page.locator(".task-head .status.running").wait_for()
        keys: list[str] = []
        retried = asyncio.Event()

        async def drop_first_answer(route: Route) -> None:
            # The request reaches the gateway and is done there; its answer is lost on the
            # way back, as on a Wi-Fi that drops out.
            request = route.request
            keys.append(request.headers["idempotency-key"])
            if len(keys) == 2:
                retried.set()
            if len(keys) == 1:
                await route.fetch()
                await route.abort("connectionreset")
            else:
                await route.continue_()

        term.allowed.append("ERR_CONNECTION_RESET")  # the drop this test makes
        await page.route("**/api/stations/laser-1/complete", drop_first_answer)
        await page.click("[data-test=complete]")
        try:
            async with asyncio.timeout(30):
                await retried.wait()
        except TimeoutError:
            raise AssertionError(f"not sent again: {len(keys)} request(s) seen") from None
        assert len(set(keys)) == 1  # sent again with the same id
        await ln.events("task.completed")
        await asyncio.sleep(0.5)
        completed = [e for e in ln.hub.events if e["type"] == "task.completed"]
        assert len(completed) == 1


async def test_the_terminal_in_chinese_explains_a_refusal_in_chinese(
    tmp_path: Path, open_page: OpenPage
) -> None:
    async with served_line(tmp_path) as (ln, gw):
        code = terminals.pair(gw.store, gw.config, "laser-1", ln.clock.now()).code
        term = await open_page(
            f"http://127.0.0.1:{gw.http_port}", f"/station/laser-1?pair={code}&lang=zh-CN"
        )
        page = term.page
        await page.wait_for_selector("[data-test=link].live")
        assert await page.get_attribute("html", "lang") == "zh-CN"
        await page.locator("button[type=submit]", has_text="发送").wait_for()
        await scan(term, ln.badges["laser-1"])
        await page.wait_for_selector("[data-test=operator]")
        # Something that is no code at this station: refused, in Chinese.
        await scan(term, "NO-SUCH-THING-42")
        text = await banner(term, "error", "")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text), text
        await term.shot("zh-refusal")
