"""Notifications never block the line: a webhook that answers 500 is tried again until it
takes the message, one that hangs is given up on at its deadline (and retried) while the
other channels and the station API go on; and what is pending survives a restart, sent
once after it, never twice."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from cloud_sync.memory import MemoryHub, MemoryLink
from gateway.alerts.rows import State
from gateway.alerts.service import Alerts
from gateway.app.root import Gateway
from tests.alerts.conftest import (
    Servers,
    alarmed_line,
    contacts,
    eventually,
    line_config,
    settle,
)
from tests.clocks import LINE_MORNING, ManualClock
from tests.conftest import free_port
from tests.keys import issue_keys


def _doc(servers: Servers, channels: list[str]) -> dict[str, Any]:
    return {
        "contacts": contacts(),
        "channels": servers.channels(),
        "rules": [{"kinds": ["devices"], "to": ["line_lead"], "channels": channels}],
        "retry_initial_s": 30.0,
        "retry_max_s": 120.0,
    }


async def test_a_hanging_and_a_failing_webhook_hold_nothing_else(
    tmp_path: Path, servers: Servers
) -> None:
    """The whole gateway: its station API on a port, the notification service in its task
    group. WeCom hangs (its deadline is 1 s), DingTalk answers 500 twice."""
    robots = servers.robots
    robots.fail_next("wecom", 1, "hang")
    robots.fail_next("dingtalk", 2, "500")
    config = line_config(_doc(servers, ["wecom", "dingtalk", "feishu"]))
    clock = ManualClock(LINE_MORNING)
    gw = Gateway(
        config,
        data_dir=tmp_path,
        clock=clock,
        link=MemoryLink(MemoryHub(), config.line.site, config.line.line, clock.now),
        http_port=0,
    )
    gw.alerts = Alerts(gw.core, tick_s=0.02)
    serving = asyncio.create_task(gw.run())
    try:
        async with asyncio.timeout(20):
            await gw.started.wait()
        keys = issue_keys(gw.store, config, clock.now())
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, auth=keys
        ) as api:
            login = await api.post("/api/stations/laser-1/login", json={"badge": "OP-1006"})
            assert login.is_success, login.text
            raised = time.monotonic()
            _raise(gw)
            # Feishu is not held up by WeCom's hang, nor DingTalk's failures.
            await eventually(lambda: len(robots.taken("feishu")) == 1, within=2)
            # Sooner than WeCom's 1 s deadline: it did not wait for the hanging one.
            assert robots.taken("feishu")[0].at - raised < 0.9
            await eventually(lambda: robots.requests("wecom") == 1, within=2)  # hanging now
            # Meanwhile the station API answers as fast as ever.
            for _ in range(5):
                began = time.monotonic()
                answer = await api.post("/api/stations/laser-1/scan", json={"code": "NOPE-1"})
                assert answer.status_code in (200, 409), answer.text
                assert time.monotonic() - began < 0.5  # WeCom still hangs meanwhile
            notes = {n.channel: n for n in _notes(gw)}
            assert notes["dingtalk"].last_error == "HTTP 500"
            assert notes["dingtalk"].state is State.PENDING
            # WeCom's deadline passes: a failure recorded, to try again.
            await eventually(lambda: _by(gw, "wecom").attempts == 1, within=3)
            assert _by(gw, "wecom").last_error == "no answer within 1 s"
            assert time.monotonic() - raised < 3.0  # its deadline, not HANG_S (60 s)
            clock.advance(30)
            await eventually(lambda: len(robots.taken("wecom")) == 1, within=3)
            # DingTalk's 500 again: its next try 60 s later (doubled).
            await eventually(lambda: _by(gw, "dingtalk").attempts == 2, within=3)
            clock.advance(60)
            expected = [
                ("wecom", State.SENT, 2),
                ("dingtalk", State.SENT, 3),
                ("feishu", State.SENT, 1),
            ]
            await eventually(
                lambda: [(n.channel, n.state, n.attempts) for n in _notes(gw)] == expected,
                within=3,
            )
            assert len(robots.taken("dingtalk")) == 1
            assert (robots.requests("wecom"), robots.requests("dingtalk")) == (2, 3)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


async def test_pending_notifications_go_after_a_restart_and_sent_ones_never_again(
    tmp_path: Path, servers: Servers
) -> None:
    data = tmp_path / "data"
    doc = _doc(servers, ["wecom", "dingtalk"])
    nobody = f"http://127.0.0.1:{free_port()}"  # WeCom is unreachable in the first run
    first = json.loads(json.dumps(doc))
    first["channels"][0]["url"] = f"{nobody}/cgi-bin/webhook/send"
    async with alarmed_line(data, first) as ln:
        ln.raise_fault()
        # Stopped once DingTalk's is recorded sent (a stop between the service's answer
        # and that commit sends it again after the restart: twice rather than never).
        await eventually(
            lambda: (
                [(n.state, n.attempts) for n in ln.notes()] == [(State.PENDING, 1), (State.SENT, 1)]
            )
        )
        assert (ln.notes()[0].last_error or "").startswith("ConnectError")
    # The gateway stops with WeCom's message pending, DingTalk's sent; it comes back with
    # WeCom reachable, on the same store, its clock where it was.
    async with alarmed_line(data, doc) as ln:
        await settle()
        assert servers.robots.taken("wecom") == []  # its retry is not due yet
        ln.clock.advance(30)
        await eventually(lambda: len(servers.robots.taken("wecom")) == 1)
        await settle()
        assert servers.robots.requests("dingtalk") == 1  # sent before: not again
    async with alarmed_line(data, doc) as ln:
        ln.clock.advance(3600)
        await settle()
        assert (servers.robots.requests("wecom"), servers.robots.requests("dingtalk")) == (1, 1)
        assert [(n.channel, n.state) for n in ln.notes()] == [
            ("wecom", State.SENT),
            ("dingtalk", State.SENT),
        ]


def _raise(gw: Gateway) -> None:
    from gateway.i18n import t
    from gateway.orderbook.alarms import raise_alarm
    from gateway.store.rows import Severity

    with gw.store.transaction():
        raise_alarm(
            gw.core,
            "machine_fault:laser-1/engraver",
            "machine_fault",
            "laser-1/engraver",
            Severity.MAJOR,
            t("{machine} is {state}: {why}", machine="laser-1/engraver", state="ABORTED", why="x"),
        )


def _notes(gw: Gateway) -> list[Any]:
    from gateway.alerts.service import notifications_of

    return notifications_of(gw.core, "machine_fault:laser-1/engraver")


def _by(gw: Gateway, channel: str) -> Any:
    return next(n for n in _notes(gw) if n.channel == channel)


async def test_notifications_done_with_are_kept_keep_days(tmp_path: Path, servers: Servers) -> None:
    data = tmp_path / "data"
    doc = _doc(servers, ["wecom"]) | {"keep_days": 30}
    async with alarmed_line(data, doc) as ln:
        ln.raise_fault()
        await eventually(lambda: [n.state for n in ln.notes()] == [State.SENT])
        ln.clear()
        await eventually(lambda: [n.state for n in ln.notes()] == [State.SENT, State.SENT])
        assert all(n.done for n in ln.notes())
    later = LINE_MORNING + timedelta(days=29, hours=23)
    async with alarmed_line(data, doc, start=later) as ln:
        await settle()
        assert len(ln.notes()) == 2  # not 30 days old yet
    async with alarmed_line(data, doc, start=LINE_MORNING + timedelta(days=30, minutes=1)) as ln:
        await eventually(lambda: ln.notes() == [])
