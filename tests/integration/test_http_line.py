"""A line on the HTTP transport: `linegate run` with `[hub] transport = "http"` against the
HTTP hub simulator on loopback, its bearer token in a systemd credential. Master data and
orders come in by polling; the events go out; a refusal by the hub raises the
`hub_refused` alarm and keeps the events, which reach the hub after a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gateway.config.load import load_line_config
from simulators.http_hub import HttpHub, serve_http_hub
from tests.clocks import line_clock_offset_s
from tests.conftest import free_port
from tests.keys import issue_keys_in

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "simulators" / "data"
TOKEN = "line3-http-token"

LINE = """\
[line]
site = "hz01"
line = "line3"
timezone = "Asia/Shanghai"

[hub]
transport = "http"
url = "{url}"
token_file = "hub-token"
poll_s = 0.1
masterdata_poll_s = 0.2

[http]
port = {port}
"""


def _order(order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": "2030-01-01T10:00:00+08:00",
        "lines": [{"sku": "TEE-WHT-M", "qty": 1, "personalization": {"ink_profile": "standard"}}],
    }


async def _start(
    folder: Path, data: Path, credentials: Path, clock_offset_s: float
) -> asyncio.subprocess.Process:
    log_path = data.parent / "gateway.log"
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "run", "--config", str(folder),
            "--data-dir", str(data), "--clock-offset-s", str(clock_offset_s), cwd=ROOT,
            env={**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)},
            stdout=log, stderr=log,
        )  # fmt: skip


async def _until(pred: Any, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling a hub in another process
            await asyncio.sleep(0.05)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        async with asyncio.timeout(15):
            await proc.wait()


def _types(hub: HttpHub) -> list[str]:
    return [hub.events[seq]["type"] for seq in sorted(hub.events)]


async def test_a_line_on_the_http_transport(tmp_path: Path) -> None:
    hub = HttpHub("hz01", "line3", token=TOKEN)
    hub.set_masterdata(
        json.loads((DATA / "reference-catalog.json").read_text()),
        json.loads((DATA / "reference-stock.json").read_text()),
    )
    hub.add_orders(_order("SO-1"), _order("SO-2"))
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "hub-token").write_text(TOKEN + "\n")
    port = free_port()
    clock_offset_s = line_clock_offset_s()  # one line time across the restart
    async with serve_http_hub(hub) as url:
        folder = tmp_path / "line"
        folder.mkdir()
        (folder / "line.toml").write_text(LINE.format(url=url, port=port))
        (folder / "pack-1.toml").write_text(
            '[station]\nid = "pack-1"\ncapabilities = ["pack", "dtg_print"]\n'
        )
        proc = await _start(folder, tmp_path / "data", credentials, clock_offset_s)
        try:
            await _until(lambda: _types(hub).count("order.accepted") == 2)
            assert hub.missing(hub.acked_through) == [] and hub.duplicates == 0

            # The hub starts refusing: an alarm, and the events wait in the outbox.
            hub.fail(*["refuse"] * 1000)
            hub.add_orders(_order("SO-3"))
            # The board's reader holds a token, as a program reading the alarms would.
            now = datetime.now(UTC) + timedelta(seconds=clock_offset_s)
            keys = issue_keys_in(tmp_path / "data" / "linegate.db", load_line_config(folder), now)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=keys) as api:

                async def alarms() -> list[str]:
                    return [a["alarm_id"] for a in (await api.get("/api/alarms")).json()]

                async with asyncio.timeout(30):
                    while "hub_refused:events" not in await alarms():  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # orders still come in: the alarm stays
                assert "hub_refused:events" in await alarms()
            held = len(hub.events)
        finally:
            await _stop(proc)

        # Fixed at the hub; the gateway restarted: what waited arrives, the alarm clears.
        hub.faults.clear()
        proc = await _start(folder, tmp_path / "data", credentials, clock_offset_s)
        try:
            await _until(lambda: "order.accepted" in _types(hub)[held:])
            await _until(lambda: "alarm.cleared" in _types(hub))
        finally:
            await _stop(proc)
    accepted = [hub.events[s]["order_id"] for s in sorted(hub.events)
                if hub.events[s]["type"] == "order.accepted"]  # fmt: skip
    assert accepted == ["SO-1", "SO-2", "SO-3"]
    assert hub.missing(max(hub.events)) == []  # no gap: nothing lost across the refusal
    raised = [hub.events[s]["data"]["alarm_id"] for s in sorted(hub.events)
              if hub.events[s]["type"] == "alarm.raised"]  # fmt: skip
    assert "hub_refused:events" in raised
