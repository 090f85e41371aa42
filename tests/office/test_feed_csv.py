"""Orders from a shop's CSV export over real HTTP into a real store (SQLite and
PostgreSQL): grouped into orders, each taken as a JSON one is, with row numbers in the
reasons; Excel's BOM, quoted commas and Chinese text read as written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from office.app import serve_http
from office.feed import Ledger, feed_routes
from office.feed.csv_folder import CsvFolder, Handled
from office.feed.csv_orders import CsvError, read_orders
from office.feed.taking import Taker
from office.receive.http import http_app
from office.store import RejectKind, Store
from tests.office.conftest import now
from tests.office.test_feed import L3, L4, LINE_TOKENS, SHOP, SHOP_TOKEN, _line_orders, catalog

pytestmark = pytest.mark.timeout(60)

BOM = b"\xef\xbb\xbf"
HEADER = "order_id,revision,ship_by,priority,channel,carrier,sku,qty,personalisation\r\n"
SHIP_BY = "2026-11-12T10:00:00+08:00"


@pytest.fixture
async def office(store: Store) -> AsyncIterator[str]:
    await store.put_masterdata(L3, "catalog", catalog("MUG", "TEE"))
    await store.put_masterdata(L4, "catalog", catalog("MUG"))
    routes = feed_routes(store, Ledger(store, [L3, L4]), {SHOP_TOKEN: "shop-a"}, now)
    async with serve_http(http_app(store, LINE_TOKENS, extra_routes=routes), "127.0.0.1", 0) as url:
        yield url


async def _post_csv(url: str, body: bytes, **params: str) -> httpx.Response:
    headers = {**SHOP, "Content-Type": "text/csv; charset=utf-8"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        return await client.post("/v1/orders", content=body, params=params)


async def _all_line_orders(store: Store) -> dict[str, dict[str, Any]]:
    return {d["order_id"]: d for g in (L3, L4) for d in await _line_orders(store, g)}


async def test_an_excel_export_with_a_bom_is_grouped_into_orders(office: str, store: Store) -> None:
    text = (
        HEADER
        + f'SO-1,1,{SHIP_BY},3,tmall,SF,TEE,2,"name=李雷;font=楷体"\r\n'
        + "SO-1,,,,,,MUG,1,\r\n"  # order cells blank after the first row
        + f'SO-2,1,{SHIP_BY},,web,"SF, express",MUG,1,"{{""text"": ""生日快乐, 妈妈""}}"\r\n'
    )
    answer = await _post_csv(office, BOM + text.encode())
    assert answer.status_code == 200, answer.text
    got = answer.json()["orders"]
    assert [(o["order_id"], o["result"], o["rows"]) for o in got] == [
        ("SO-1", "taken", [2, 3]),
        ("SO-2", "taken", [4]),
    ]
    assert got[0]["line"] == L3  # only L3 makes TEE
    feed = await _all_line_orders(store)
    assert feed["SO-1"] == {
        "order_id": "SO-1",
        "revision": 1,
        "ship_by": SHIP_BY,
        "priority": 3,
        "channel": "tmall",
        "carrier": "SF",
        "lines": [
            {"sku": "TEE", "qty": 2, "personalization": {"name": "李雷", "font": "楷体"}},
            {"sku": "MUG", "qty": 1},
        ],
    }
    assert feed["SO-2"]["carrier"] == "SF, express"  # a quoted comma is text
    assert feed["SO-2"]["lines"] == [
        {"sku": "MUG", "qty": 1, "personalization": {"text": "生日快乐, 妈妈"}}
    ]
    # The same file again: already taken, nothing new on the lines' feeds.
    again = await _post_csv(office, BOM + text.encode())
    assert [o["result"] for o in again.json()["orders"]] == ["already taken"] * 2
    assert len(await _all_line_orders(store)) == 2


async def test_a_bad_row_names_its_row_and_the_good_orders_are_taken(
    office: str, store: Store
) -> None:
    text = (
        HEADER
        + f"SO-3,1,{SHIP_BY},,,,MUG,1,\r\n"
        + f"SO-4,1,{SHIP_BY},,,,MUG,1,\r\n"
        + "SO-4,1,,,,,TEE,zwei,\r\n"  # row 4: qty is no number
        + f"SO-5,1,{SHIP_BY},,,,MUG,0,\r\n"  # row 5: qty below 1 (the schema's reason)
        + "SO-6,1,2026-11-13T10:00:00+08:00,,,,MUG,1,\r\n"
        + "SO-6,1,2026-11-14T10:00:00+08:00,,,,MUG,1,\r\n"  # row 7: another ship_by
    )
    answer = await _post_csv(office, text.encode())
    assert answer.status_code == 422
    got = {o["order_id"]: o for o in answer.json()["orders"]}
    assert got["SO-3"]["result"] == "taken"
    assert got["SO-4"]["result"] == "invalid"
    assert got["SO-4"]["reason"].startswith("row 4: qty: 'zwei' is not a whole number")
    assert got["SO-5"]["result"] == "invalid"
    assert got["SO-5"]["reason"].startswith("row 5: qty:")
    assert got["SO-6"]["result"] == "invalid"
    assert got["SO-6"]["reason"].startswith("row 7: ship_by:")
    assert set(await _all_line_orders(store)) == {"SO-3"}
    reasons = [r.reason for r in await store.rejections()]
    assert any("SO-4" in r and "row 4" in r for r in reasons)
    assert any("SO-5" in r and "row 5" in r for r in reasons)
    assert store.tally.rejected[RejectKind.MALFORMED] == 3


async def test_a_file_that_does_not_read_is_refused_whole(office: str, store: Store) -> None:
    gbk = (HEADER + f"SO-7,1,{SHIP_BY},,,,MUG,1,name=李雷\r\n").encode("gbk")
    answer = await _post_csv(office, gbk)
    assert answer.status_code == 400
    assert "UTF-8" in answer.json()["error"]
    no_qty = await _post_csv(office, b"order_id,sku\r\nSO-8,MUG\r\n")
    assert no_qty.status_code == 400
    assert "row 1" in no_qty.json()["error"] and "qty" in no_qty.json()["error"]
    assert await _all_line_orders(store) == {}


def test_personalisation_as_pairs_or_json_and_bad_pairs_named() -> None:
    text = (
        "order_id,sku,qty,personalization,line_no\n"
        'A,MUG,1,"colour = 红 ; size=L;",1\n'
        'A,MUG,2,"{""n"": 3}",2\n'
        "A,MUG,1,justtext,3\n"
    )
    [order] = read_orders(text.encode())
    assert order.doc["lines"] == [
        {"sku": "MUG", "qty": 1, "line_no": 1, "personalization": {"colour": "红", "size": "L"}},
        {"sku": "MUG", "qty": 2, "line_no": 2, "personalization": {"n": 3}},
        {"sku": "MUG", "qty": 1, "line_no": 3},
    ]
    assert order.problems == ["row 4: personalisation: 'justtext' is not key=value"]
    with pytest.raises(CsvError, match="empty"):
        read_orders(BOM)


async def test_a_watched_folder_takes_settled_files_and_sorts_them(
    store: Store, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"  # beside the test's SQLite file, not around it
    inbox.mkdir()
    await store.put_masterdata(L3, "catalog", catalog("MUG", "TEE"))
    ledger = Ledger(store, [L3, L4])
    folder = CsvFolder(inbox, Taker(store, ledger, now, "csv"), "shop-b", poll_s=0.05)
    runner = asyncio.create_task(folder.run())
    try:
        good = BOM + (HEADER + f"SO-20,1,{SHIP_BY},,,,MUG,1,name=韩梅梅\r\n").encode()
        mixed = HEADER + f"SO-21,1,{SHIP_BY},,,,TEE,1,\r\n" + f"SO-22,1,{SHIP_BY},,,,CAP,1,\r\n"
        (inbox / "~$orders.csv").write_bytes(b"an Excel lock file")
        (inbox / "day1.csv").write_bytes(good)
        (inbox / "day2.CSV").write_bytes(mixed.encode())
        (inbox / "broken.csv").write_bytes("订单".encode("gbk"))

        def settled() -> bool:
            return not {p.name for p in inbox.glob("*.*")} - {"~$orders.csv"}

        async with asyncio.timeout(10):
            while not settled():  # noqa: ASYNC110 - the folder is polled, as the office does
                await asyncio.sleep(0.05)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert (inbox / "~$orders.csv").exists()  # left alone
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["day1.csv"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == [
        "broken.csv",
        "broken.csv.reasons.txt",
        "day2.CSV",
        "day2.CSV.reasons.txt",
    ]
    reasons = (inbox / "failed" / "day2.CSV.reasons.txt").read_text(encoding="utf-8")
    assert reasons == "rows 3: order SO-22: unroutable: no line can make all of CAP\n"
    assert "UTF-8" in (inbox / "failed" / "broken.csv.reasons.txt").read_text()
    # The good orders of a failed file are taken all the same.
    assert set(await _all_line_orders(store)) == {"SO-20", "SO-21"}


async def test_a_file_still_being_written_waits_for_the_next_scan(
    store: Store, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    await store.put_masterdata(L3, "catalog", catalog("MUG"))
    folder = CsvFolder(inbox, Taker(store, Ledger(store, [L3]), now, "csv"), "shop-b")
    path = inbox / "growing.csv"
    path.write_bytes(HEADER.encode())
    assert await folder.scan() == []  # first seen
    path.write_bytes((HEADER + f"SO-30,1,{SHIP_BY},,,,MUG,1,\r\n").encode())
    assert await folder.scan() == []  # it changed since: not yet
    assert await folder.scan() == [Handled("growing.csv", True, 1)]
    assert (inbox / "done" / "growing.csv").exists()
