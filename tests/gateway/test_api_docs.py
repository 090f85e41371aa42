"""The station API's map (``/api/docs``, ``/redoc``, ``/api/openapi.json``): served only
when ``[http] api_docs`` says so, and the demo says so. Without it, those paths are
unknown paths like any other: 404 ``NOT_FOUND`` in the API's shape, pointing nowhere
that is not there. Served, the map is for a signed-in account or an API token
(gateway/access/policy.py): not for an anonymous caller.

A real gateway in the test's loop (uvicorn on a free loopback port); the demo for real
(one order, its simulated operators on the station API).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.access.tokens import create_token
from gateway.app.root import Gateway
from gateway.cli.demo import Demo, run_demo
from gateway.cli.main import _parser
from gateway.store.rows import Role
from simulators.keys import LineKeys
from tests.clocks import LINE_MORNING
from tests.gateway.test_station_api import ManualClock, _config
from tests.keys import issue_keys

DOCS = ("/api/docs", "/redoc", "/api/openapi.json")


@dataclass
class Served:
    """A client with no credential of its own, and the line's credentials (each request
    says which it sends)."""

    http: httpx.AsyncClient
    keys: LineKeys

    @property
    def viewer(self) -> dict[str, str]:
        """The headers of a request with the viewer's API token."""
        return {"Authorization": f"Bearer {self.keys.token('viewer')}"}


async def _serving(tmp_path: Path, docs: bool) -> AsyncIterator[Served]:
    config = _config()
    config = config.model_copy(update={"http": config.http.model_copy(update={"api_docs": docs})})
    clock = ManualClock()
    gw = Gateway(config, data_dir=tmp_path, clock=clock, http_port=0)
    task = asyncio.create_task(gw.run())
    try:
        async with asyncio.timeout(20):
            await gw.started.wait()
        keys = issue_keys(gw.store, config, clock.now())
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10
        ) as http:
            yield Served(http, keys)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def without_docs(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in _serving(tmp_path, docs=False):
        yield served


@pytest.fixture
async def with_docs(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in _serving(tmp_path, docs=True):
        yield served


async def test_no_map_of_the_api_unless_the_config_asks(without_docs: Served) -> None:
    for path in (*DOCS, "/docs", "/openapi.json", "/api/docs/oauth2-redirect"):
        r = await without_docs.http.get(path, headers=without_docs.viewer)
        assert r.status_code == 404, f"{path}: {r.text}"
        doc: dict[str, Any] = r.json()
        assert set(doc) == {"ok", "code", "message", "next"}, doc
        assert (doc["ok"], doc["code"]) == (False, "NOT_FOUND"), doc
        assert path in doc["message"] and "/api/docs" not in doc["next"], doc
        # An unknown path is the router's to answer, whoever asks: no route, nothing to
        # guard, so an anonymous caller is told the same.
        assert (await without_docs.http.get(path)).json() == doc, path
    # The API itself is all there.
    r = await without_docs.http.get("/api/stations/pack-1", auth=without_docs.keys)
    assert r.status_code == 200, r.text


async def test_the_map_is_served_when_the_config_asks(with_docs: Served) -> None:
    http, viewer = with_docs.http, with_docs.viewer
    for path in ("/api/docs", "/redoc"):
        r = await http.get(path, headers=viewer)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html"), path
        assert "/api/openapi.json" in r.text, path
    spec = (await http.get("/api/openapi.json", headers=viewer)).json()
    assert "/api/stations/{station_id}/scan" in spec["paths"]
    missing = (await http.get("/api/nowhere", headers=viewer)).json()
    assert "GET /api/docs" in missing["next"]
    # The map is for an account or a token: not for an anonymous caller, nor for a
    # station's terminal.
    for path in DOCS:
        r = await http.get(path)
        assert r.status_code == 401, f"{path}: {r.text}"
        assert r.json()["code"] == "NOT_SIGNED_IN", r.text
        terminal = {"Authorization": f"Bearer {with_docs.keys.terminal('pack-1')}"}
        r = await http.get(path, headers=terminal)
        assert r.status_code == 403, f"{path}: {r.text}"
        assert r.json()["code"] == "FORBIDDEN_ROLE", r.text


def test_the_demo_shows_the_map(tmp_path: Path) -> None:
    seen: dict[str, int] = {}
    looking: list[asyncio.Task[None]] = []

    def on_start(demo: Demo) -> None:
        async def look() -> None:
            await demo.gateway.started.wait()
            # Whoever reads the map has a token (linegate tokens create --role viewer).
            gw = demo.gateway
            made = create_token(gw.store, "docs reader", Role.VIEWER, gw.core.clock.now())
            viewer = {"Authorization": f"Bearer {made.token}"}
            async with httpx.AsyncClient(base_url=demo.api_url, timeout=10) as http:
                for path in DOCS:
                    seen[path] = (await http.get(path, headers=viewer)).status_code

        # Kept: the loop holds its tasks weakly.
        looking.append(asyncio.get_running_loop().create_task(look()))

    args = _parser().parse_args(
        ["demo", "--start", LINE_MORNING.isoformat(), "--orders", "1", "--exit-when-done",
         "--speed", "600", "--no-devices", "--http-port", "0", "--data-dir", str(tmp_path)]
    )  # fmt: skip
    assert run_demo(args, on_start=on_start) == 0
    assert seen == dict.fromkeys(DOCS, 200)
