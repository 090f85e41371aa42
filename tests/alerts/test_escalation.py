"""Escalation on the line's clock (injected, never today's): the next level after
escalate_after_min without an acknowledgement, none once acknowledged, a handover to the
incoming shift's people at a shift change (the clock still counting from the raise), and
a note to everyone told once the alarm clears."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.alerts.rows import Purpose, State
from simulators.notify_receiver import Received
from tests.alerts.conftest import Servers, alarmed_line, contacts, eventually, settle

WANG, LI, ZHANG, CHEN = "13800000001", "13800000002", "13800000003", "13800000005"


def _doc(
    servers: Servers, after_min: float, levels: list[list[str]], **rule: Any
) -> dict[str, Any]:
    return {
        "contacts": contacts(),
        "channels": servers.channels(),
        "rules": [
            {
                "kinds": ["machine_fault"],
                "to": ["line_lead"],
                "channels": ["wecom"],
                "escalate_after_min": after_min,
                "escalate_to": levels,
                **rule,
            }
        ],
    }


def _wecom(servers: Servers) -> list[Received]:
    return servers.robots.taken("wecom")


async def test_unacknowledged_it_goes_up_a_level_each_escalate_after_min(
    tmp_path: Path, servers: Servers
) -> None:
    async with alarmed_line(tmp_path / "d", _doc(servers, 10, [["maintenance"], ["admin"]])) as ln:
        ln.raise_fault()  # 10:00, the early shift
        await eventually(lambda: len(_wecom(servers)) == 1)
        assert _wecom(servers)[0].mentions == (WANG,)
        ln.clock.advance(10 * 60 - 1)
        await settle()
        assert len(_wecom(servers)) == 1  # 9 min 59 s: not yet
        ln.clock.advance(1)
        await eventually(lambda: len(_wecom(servers)) == 2)
        second = _wecom(servers)[1]
        assert second.mentions == (ZHANG,)
        assert "升级到第 2 级：已 10 分钟无人确认（10:00 报警）。" in second.text
        assert "Escalated to level 2: not acknowledged for 10 min (raised at 10:00)." in second.text
        ln.advance_min(10)
        await eventually(lambda: len(_wecom(servers)) == 3)
        assert _wecom(servers)[2].mentions == (CHEN,)
        ln.advance_min(120)  # no level beyond the last
        await settle()
        assert len(_wecom(servers)) == 3
        assert [(n.level, n.purpose) for n in ln.notes()] == [
            (0, Purpose.RAISED),
            (1, Purpose.ESCALATED),
            (2, Purpose.ESCALATED),
        ]


async def test_an_acknowledgement_stops_escalation_and_the_clear_is_told_to_those_told(
    tmp_path: Path, servers: Servers
) -> None:
    async with alarmed_line(tmp_path / "d", _doc(servers, 10, [["maintenance"], ["admin"]])) as ln:
        ln.raise_fault()
        await eventually(lambda: len(_wecom(servers)) == 1)
        ln.advance_min(10)
        await eventually(lambda: len(_wecom(servers)) == 2)  # 王芳, then 张敏
        ln.advance_min(5)
        ln.ack(by="lead")  # 10:15
        ln.advance_min(60)
        await settle()
        assert len(_wecom(servers)) == 2  # level 3 (陈静) never told
        commits = ln.gateway.store.commits
        ln.advance_min(5)
        await settle()
        assert ln.gateway.store.commits == commits  # a quiet line: nothing written
        ln.clear()  # 11:20
        await eventually(lambda: len(_wecom(servers)) == 3)
        cleared = _wecom(servers)[2]
        assert cleared.mentions == (WANG, ZHANG)
        assert cleared.text.startswith("【已解除 · 严重】")
        assert "已解除，持续 80 分钟（10:00 报警）。" in cleared.text
        assert "Cleared after 80 min (raised at 10:00)." in cleared.text
        ln.advance_min(60)
        await settle()
        assert len(_wecom(servers)) == 3  # once
        assert all(n.done for n in ln.notes())


async def test_acknowledged_before_it_went_nothing_goes(tmp_path: Path, servers: Servers) -> None:
    servers.robots.fail_next("wecom", 1, "500")
    doc = _doc(servers, 10, [["admin"]])
    async with alarmed_line(tmp_path / "d", doc) as ln:
        ln.raise_fault()
        await eventually(lambda: ln.notes() != [] and ln.notes()[0].attempts == 1)
        ln.ack()
        ln.advance_min(30)  # past the retry and the escalation
        await settle()
        assert [(n.state, n.attempts) for n in ln.notes()] == [(State.CANCELLED, 1)]
        assert _wecom(servers) == []
        ln.clear()
        await settle()
        assert _wecom(servers) == []  # nobody was told: no cleared note either


async def test_over_a_shift_change_it_is_handed_over_and_escalates_from_the_raise(
    tmp_path: Path, servers: Servers
) -> None:
    start = datetime.fromisoformat("2026-11-26T15:50:00+08:00")  # the early shift's end
    doc = _doc(servers, 30, [["admin"]])
    doc["rules"][0]["channels"] = ["wecom", "mail"]
    async with alarmed_line(tmp_path / "d", doc, start=start) as ln:
        ln.raise_fault()
        await eventually(lambda: len(_wecom(servers)) == 1 and len(servers.mail.mails) == 1)
        assert _wecom(servers)[0].mentions == (WANG,)
        assert servers.mail.mails[0].recipients == ("wang@example.com",)
        ln.at("2026-11-26T15:59:59+08:00")
        await settle()
        assert len(_wecom(servers)) == 1
        ln.at("2026-11-26T16:00:00+08:00")  # the late shift begins: 李强 takes over
        await eventually(lambda: len(_wecom(servers)) == 2 and len(servers.mail.mails) == 2)
        handover = _wecom(servers)[1]
        assert handover.mentions == (LI,)
        assert "移交给 late 班：已 10 分钟无人确认（15:50 报警，第 1 级）。" in handover.text
        assert "Handed over to shift late: not acknowledged for 10 min" in handover.text
        assert servers.mail.mails[1].recipients == ("li@example.com",)
        ln.at("2026-11-26T16:19:59+08:00")
        await settle()
        assert len(_wecom(servers)) == 2  # once per shift
        ln.at("2026-11-26T16:20:00+08:00")  # 30 min after the raise, not after the handover
        await eventually(lambda: len(_wecom(servers)) == 3)
        assert _wecom(servers)[2].mentions == (CHEN,)
        assert [(n.channel, n.level, n.purpose, n.shift) for n in ln.notes()] == [
            ("wecom", 0, Purpose.RAISED, "early@2026-11-26"),
            ("mail", 0, Purpose.RAISED, "early@2026-11-26"),
            ("wecom", 0, Purpose.HANDOVER, "late@2026-11-26"),
            ("mail", 0, Purpose.HANDOVER, "late@2026-11-26"),
            ("wecom", 1, Purpose.ESCALATED, "late@2026-11-26"),
            ("mail", 1, Purpose.ESCALATED, "late@2026-11-26"),
        ]


async def test_mail_with_nobody_on_duty_waits_for_the_next_shift(
    tmp_path: Path, servers: Servers
) -> None:
    start = datetime.fromisoformat("2026-11-27T01:00:00+08:00")  # between shifts (00-08)
    doc = _doc(servers, 600, [["admin"]])
    doc["rules"][0]["channels"] = ["mail"]
    async with alarmed_line(tmp_path / "d", doc, start=start) as ln:
        ln.raise_fault()
        await settle()
        assert servers.mail.mails == []  # both line leads work shifts; none is on
        ln.at("2026-11-27T08:00:00+08:00")
        await eventually(lambda: len(servers.mail.mails) == 1)
        assert servers.mail.mails[0].recipients == ("wang@example.com",)
