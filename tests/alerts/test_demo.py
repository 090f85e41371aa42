"""What `make demo` shows of alarms: its [alarms] (gateway/alerts/demo.py) pointed at the
local receiver (simulators/notify_receiver.py) with the receiver's secrets, every message
written out as the demo prints it."""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path

from gateway.alerts.demo import demo_alarms
from gateway.store.rows import Severity
from simulators.notify_receiver import DEMO_SECRETS, MailReceiver, NotifyReceiver
from tests.alerts.conftest import alarmed_line, eventually


async def test_the_demos_alarms_reach_its_receiver_and_are_printed(tmp_path: Path) -> None:
    printed = io.StringIO()
    with NotifyReceiver(out=printed.write) as robots, MailReceiver(out=printed.write) as mail:
        section = demo_alarms(
            tmp_path / "secrets",
            robots.url,
            mail.port,
            shifts=["early", "late"],
            board_url="http://127.0.0.1:8080",
            **asdict(DEMO_SECRETS),
        )
        # The secrets are in files of their own, readable by the gateway's user only.
        assert _private([n for c in section.channels for _, _, n in c.secret_files()]) == 5
        async with alarmed_line(tmp_path / "data", section) as ln:
            ln.raise_fault(severity=Severity.MAJOR)  # devices: WeCom and mail
            await eventually(lambda: len(robots.taken("wecom")) == 1 and len(mail.mails) == 1)
            [wecom] = robots.taken("wecom")
            # 王芳 leads the early shift (10:00), 张敏 is maintenance.
            assert wecom.mentions == ("13800000001", "13800000003")
            assert mail.mails[0].recipients == ("wang.fang@example.com", "zhang.min@example.com")
            assert "看板：http://127.0.0.1:8080/board" in wecom.text
            ln.advance_min(10)  # not acknowledged: the plant manager
            await eventually(lambda: len(robots.taken("wecom")) == 2 and len(mail.mails) == 2)
            assert robots.taken("wecom")[1].mentions == ("13800000005",)
            with ln.gateway.store.transaction():
                from gateway.orderbook.alarms import raise_alarm

                raise_alarm(
                    ln.gateway.core,
                    "shortage:INK-CYAN",
                    "material_shortage",
                    "INK-CYAN",
                    Severity.WARNING,
                    "not enough INK-CYAN",
                )
            await eventually(lambda: len(robots.taken("feishu")) == 1)
            assert robots.taken("feishu")[0].mentions == ("ou_demo_wangfang",)
    lines = printed.getvalue().splitlines()
    wecom_lines = [line for line in lines if line.startswith("  notify  wecom    ")]
    assert len(wecom_lines) == 2
    assert wecom_lines[0].startswith(
        "  notify  wecom    【报警 · 严重】 杭州一厂 3 线 / Hangzhou plant 1, line 3 · "
        "laser-1/engraver / laser-1/engraver 处于 ABORTED 状态：spindle jam"
    )
    assert wecom_lines[0].endswith("  @13800000001 @13800000003")
    first, escalated = [line for line in lines if line.startswith("  notify  mail     ")]
    assert first.endswith("  to wang.fang@example.com, zhang.min@example.com")
    assert escalated.endswith("  to chen.jing@example.com")
    assert len([line for line in lines if line.startswith("  notify  feishu   ")]) == 1


def _private(files: list[str]) -> int:
    """How many of ``files`` only their owner may read; AssertionError for another."""
    for name in files:
        assert Path(name).stat().st_mode & 0o077 == 0, name
    return len(files)
