"""The station API's map (``/api/docs``, ``/redoc``, ``/api/openapi.json``): served only
when ``[http] api_docs`` says so, and the demo says so. Without it, those paths are
unknown paths like any other: 404 ``NOT_FOUND`` in the API's shape, pointing nowhere
that is not there.

A real gateway in the test's loop (uvicorn on a free loopback port); the demo for real
(one order, its simulated operators on the station API).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app.root import Gateway
from gateway.cli.demo import Demo, run_demo
from gateway.cli.main import _parser
from tests.clocks import LINE_MORNING
from tests.gateway.test_station_api import ManualClock, _config

DOCS = ("/api/docs", "/redoc", "/api/openapi.json")


async def _serving(tmp_path: Path, docs: bool) -> AsyncIterator[httpx.AsyncClient]:
    config = _config()
    config = config.model_copy(update={"http": config.http.model_copy(update={"api_docs": docs})})
    gw = Gateway(config, data_dir=tmp_path, clock=ManualClock(), http_port=0)
    task = asyncio.create_task(gw.run())
    try:
        async with asyncio.timeout(20):
            await gw.started.wait()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10
        ) as http:
            yield http
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def without_docs(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _serving(tmp_path, docs=False):
        yield http


@pytest.fixture
async def with_docs(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _serving(tmp_path, docs=True):
        yield http


async def test_no_map_of_the_api_unless_the_config_asks(
    without_docs: httpx.AsyncClient,
) -> None:
    for path in (*DOCS, "/docs", "/openapi.json", "/api/docs/oauth2-redirect"):
        r = await without_docs.get(path)
        assert r.status_code == 404, f"{path}: {r.text}"
        doc: dict[str, Any] = r.json()
        assert set(doc) == {"ok", "code", "message", "next"}, doc
        assert (doc["ok"], doc["code"]) == (False, "NOT_FOUND"), doc
        assert path in doc["message"] and "/api/docs" not in doc["next"], doc
    # The API itself is all there.
    assert (await without_docs.get("/api/stations/pack-1")).status_code == 200


async def test_the_map_is_served_when_the_config_asks(with_docs: httpx.AsyncClient) -> None:
    for path in ("/api/docs", "/redoc"):
        r = await with_docs.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html"), path
        assert "/api/openapi.json" in r.text, path
    spec = (await with_docs.get("/api/openapi.json")).json()
    assert "/api/stations/{station_id}/scan" in spec["paths"]
    missing = (await with_docs.get("/api/nowhere")).json()
    assert "GET /api/docs" in missing["next"]


def test_the_demo_shows_the_map(tmp_path: Path) -> None:
    seen: dict[str, int] = {}
    looking: list[asyncio.Task[None]] = []

    def on_start(demo: Demo) -> None:
        async def look() -> None:
            await demo.gateway.started.wait()
            async with httpx.AsyncClient(base_url=demo.api_url, timeout=10) as http:
                for path in DOCS:
                    seen[path] = (await http.get(path)).status_code

        # Kept: the loop holds its tasks weakly.
        looking.append(asyncio.get_running_loop().create_task(look()))

    args = _parser().parse_args(
        ["demo", "--start", LINE_MORNING.isoformat(), "--orders", "1", "--speed", "600",
         "--no-devices", "--http-port", "0", "--data-dir", str(tmp_path)]
    )  # fmt: skip
    assert run_demo(args, on_start=on_start) == 0
    assert seen == dict.fromkeys(DOCS, 200)
