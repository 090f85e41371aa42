"""The screens over plain HTTP: pages without data, assets of the gateway's own, the
board's data behind the gate, and the live streams with their resume point."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.gateway.test_station_api import LOT, served_line


async def _frames(
    api: httpx.AsyncClient,
    path: str,
    n: int,
    headers: dict[str, str] | None = None,
    within: float = 10.0,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The first ``n`` snapshots of an event stream: (id, data); with ``until``, those up to
    the first it holds for."""
    got: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(within):
        async with api.stream("GET", path, headers=headers or {}) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"].startswith("text/event-stream")
            frame: dict[str, str] = {}
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    frame["id"] = line[4:]
                elif line.startswith("data: "):
                    frame["data"] = line[6:]
                elif line == "" and "data" in frame:
                    got.append((frame["id"], json.loads(frame["data"])))
                    frame = {}
                    if len(got) == n or (until is not None and until(got[-1][1])):
                        return got
    return got


async def test_pages_are_served_without_credentials_and_name_no_outside_address(
    tmp_path: Path,
) -> None:
    async with (
        served_line(tmp_path) as (_, gw),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}") as anon,
    ):
        for path in ("/board", "/orders", "/station/pack-1", "/board?lang=en"):
            r = await anon.get(path)
            assert r.status_code == 200, path
            assert "default-src 'self'" in r.headers["content-security-policy"]
            # Every script, style and picture is the gateway's own.
            for ref in re.findall(r'(?<![:\w-])(?:src|href)="([^"]+)"', r.text):
                assert ref.startswith(("/", "?", "data:")), (path, ref)
                if ref.startswith("/static/"):
                    asset = await anon.get(ref)
                    assert asset.status_code == 200, ref
        assert (await anon.get("/station/nowhere")).status_code == 404
        # The data is not open.
        assert (await anon.get("/api/board")).status_code == 401
        assert (await anon.get("/api/stations/pack-1/live")).status_code == 401


async def test_the_terminal_stream_pushes_a_change_and_resumes_from_its_id(tmp_path: Path) -> None:
    async with served_line(tmp_path) as (ln, _):
        api = ln.api
        path = "/api/stations/pack-1/live"
        ((first_id, first),) = await _frames(api, path, 1)
        assert first["station"] == "pack-1" and first["operator"] is None

        async def sign_in() -> None:
            await asyncio.sleep(0.3)
            r = await api.post("/api/stations/pack-1/login", json={"badge": ln.badges["pack-1"]})
            assert r.status_code == 200, r.text

        signing = asyncio.create_task(sign_in())
        frames = await _frames(api, path, 2)
        await signing
        assert frames[1][1]["operator"] == ln.badges["pack-1"]
        # A page that reconnects with the id it holds gets nothing it has: the next frame it
        # would see is a change. With an older id it gets the newest snapshot at once.
        ((_, again),) = await _frames(api, path, 1, {"Last-Event-ID": first_id})
        assert again["operator"] == ln.badges["pack-1"]


async def test_an_open_order_in_the_lookup_follows_its_stage(tmp_path: Path) -> None:
    async with served_line(tmp_path) as (ln, _):
        await ln.order("SO-1", "2030-01-01T10:00:00+08:00")
        path = "/api/orders/SO-1/live"
        ((_, first),) = await _frames(ln.api, path, 1)
        assert (first["found"], first["stage"]) == (True, "queued")

        async def start_engraving() -> None:
            await asyncio.sleep(0.3)
            unit = await ln.take("laser-1")
            await ln.scan("laser-1", unit["serial"])
            await ln.scan("laser-1", LOT)
            await ln.post("laser-1", "start")

        working = asyncio.create_task(start_engraving())
        frames = await _frames(ln.api, path, 100, until=lambda doc: doc["stage"] == "in_process")
        await working
        # Pushed as it changed (at most once a second), without asking again.
        assert frames[-1][1]["stage"] == "in_process"
        assert frames[-1][1]["units"][0]["steps"][0]["status"] == "running"
