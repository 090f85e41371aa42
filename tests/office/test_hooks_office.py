"""The webhooks in the office as ``linegate-office run`` runs it (office.toml, run_office):
an event a line POSTs reaches the WMS's hook, the WMS's stock goes in with its token, and
/metrics counts what was sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from office.app import run_office
from office.config import load_config
from tests.office.conftest import now
from tests.office.hooks_parts import L3, SECRET, Receiver, receiving, requested

pytestmark = pytest.mark.timeout(60)

LINE, READER, WMS = "t0ken-of-line3", "t0ken-of-prometheus", "t0ken-of-the-wms"


def _config(folder: Path, hook_url: str) -> Path:
    for name, value in (("line3.token", LINE), ("prom.token", READER), ("wms.token", WMS),
                        ("hook.secret", SECRET)):  # fmt: skip
        (folder / name).write_text(value + "\n")
    path = folder / "office.toml"
    path.write_text(
        f"""
[http]
port = 0

[[lines]]
gateway_id = "{L3}"
token_file = "line3.token"

[[readers]]
name = "prometheus"
token_file = "prom.token"

[[wms]]
name = "wms-a"
token_file = "wms.token"

[[webhooks]]
name = "wms-a"
url = "{hook_url}"
secret_file = "hook.secret"
events = ["material.requested"]
"""
    )
    return path


async def test_an_office_forwards_material_requests_and_takes_stock(tmp_path: Path) -> None:
    async with receiving(Receiver()) as wms:
        config = load_config(_config(tmp_path, wms.url))
        (tmp_path / "data").mkdir()
        urls: list[str] = []
        started = asyncio.Event()

        def up(url: str) -> None:
            urls.append(url)
            started.set()

        office = asyncio.create_task(
            run_office(config, config.read_secrets(tmp_path / "data"), now, up)
        )  # fmt: skip
        try:
            async with asyncio.timeout(15):
                await started.wait()
            async with httpx.AsyncClient(base_url=urls[0]) as client:
                _, body = requested(1)
                sent = await client.post(
                    f"/v1/gateways/{L3}/events",
                    content=f"[{body}]",
                    headers={"Authorization": f"Bearer {LINE}"},
                )
                assert sent.status_code == 200 and sent.json()["acked_through"] == 1
                async with asyncio.timeout(10):
                    await wms.wait_for(1)
                stock = {"kind": "stock", "as_of": "2026-11-11T01:00:00+00:00", "items": []}
                taken = await client.post(
                    "/v1/wms/stock", params={"line": L3}, json=stock,
                    headers={"Authorization": f"Bearer {WMS}"},
                )  # fmt: skip
                masterdata = await client.get(
                    f"/v1/gateways/{L3}/masterdata", headers={"Authorization": f"Bearer {LINE}"}
                )
                metrics = await client.get(
                    "/metrics", headers={"Authorization": f"Bearer {READER}"}
                )
        finally:
            office.cancel()
            await asyncio.gather(office, return_exceptions=True)
    assert [(r.key, r.status, r.body) for r in wms.got] == [(f"{L3}:1", 200, json.loads(body))]
    assert taken.status_code == 200 and stock in masterdata.json()
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    sent_total = families["linegate_office_hook_sent"].samples
    assert [(s.labels["hook"], s.value) for s in sent_total if s.name.endswith("_total")] == [
        ("wms-a", 1.0)
    ]
