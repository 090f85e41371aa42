"""A line with [alarms] on a real SQLite file and the injected clock, the notification
service running in the test's loop, and local servers that speak the robots' webhooks and
SMTP (simulators/notify_receiver.py: they check signatures by the services' own formulas,
sharing no code with the gateway)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.alerts.rows import NotificationRow
from gateway.alerts.service import Alerts
from gateway.app.root import Gateway
from gateway.config.alerts import AlarmsSection
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.i18n import t
from gateway.orderbook import alarms
from gateway.store.rows import Severity
from simulators.notify_receiver import MailReceiver, NotifyReceiver, RobotSecrets
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE

SECRETS = RobotSecrets(
    wecom_key="test-wecom-7f3a",
    dingtalk_token="test-dingtalk-token-91",
    dingtalk_secret="SECtest0dd5c0ffee",
    feishu_key="test-feishu-hook-42",
    feishu_secret="test-feishu-secret-x",
)
MAIL_USER = "linegate"
MAIL_PASSWORD = "mail-pass-√9"  # not ASCII: the password file is UTF-8
FAULT_ID = "machine_fault:laser-1/engraver"
# The reference line: early 08:00-16:00, late 16:00-24:00, Asia/Shanghai; LINE_MORNING is
# 10:00 of a Thursday, in the early shift.


def contacts() -> list[dict[str, Any]]:
    return [
        {
            "name": "王芳",
            "roles": ["line_lead"],
            "shifts": ["early"],
            "mobile": "13800000001",
            "email": "wang@example.com",
            "feishu_user_id": "ou_wang",
        },
        {
            "name": "李强",
            "roles": ["line_lead"],
            "shifts": ["late"],
            "mobile": "13800000002",
            "email": "li@example.com",
            "feishu_user_id": "ou_li",
        },
        {"name": "张敏", "roles": ["maintenance"], "mobile": "13800000003"},
        {
            "name": "陈静",
            "roles": ["admin"],
            "mobile": "13800000005",
            "email": "chen@example.com",
            "feishu_user_id": "ou_chen",
        },
    ]


def write_secrets(folder: Path, secrets: RobotSecrets = SECRETS) -> dict[str, str]:
    """The secret files of every channel, in ``folder``; their absolute paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    values = {
        "wecom-key": secrets.wecom_key,
        "dingtalk-token": secrets.dingtalk_token,
        "dingtalk-secret": secrets.dingtalk_secret,
        "feishu-key": secrets.feishu_key,
        "feishu-secret": secrets.feishu_secret or "",
        "mail-password": MAIL_PASSWORD,
    }
    paths = {}
    for name, value in values.items():
        (folder / name).write_text(value + "\n", encoding="utf-8")
        paths[name] = str(folder / name)
    return paths


def channels(robots_url: str, files: dict[str, str], smtp_port: int) -> list[dict[str, Any]]:
    return [
        {
            "id": "wecom",
            "type": "wecom",
            "url": f"{robots_url}/cgi-bin/webhook/send",
            "key_file": files["wecom-key"],
            "timeout_s": 1.0,
        },
        {
            "id": "dingtalk",
            "type": "dingtalk",
            "url": f"{robots_url}/robot/send",
            "key_file": files["dingtalk-token"],
            "secret_file": files["dingtalk-secret"],
            "timeout_s": 1.0,
        },
        {
            "id": "feishu",
            "type": "feishu",
            "url": f"{robots_url}/open-apis/bot/v2/hook",
            "key_file": files["feishu-key"],
            "secret_file": files["feishu-secret"],
            "timeout_s": 1.0,
        },
        {
            "id": "mail",
            "type": "smtp",
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "username": MAIL_USER,
            "password_file": files["mail-password"],
            "from": "linegate@example.com",
            "timeout_s": 2.0,
        },
    ]


def line_config(alarms_doc: dict[str, Any] | AlarmsSection) -> LineConfig:
    """The reference line without devices or planner, with ``alarms_doc`` as [alarms]."""
    config = load_line_config(REFERENCE_LINE)
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    planner = config.planner.model_copy(update={"enabled": False})
    section = (
        alarms_doc
        if isinstance(alarms_doc, AlarmsSection)
        else AlarmsSection.model_validate(alarms_doc)
    )
    return config.model_copy(update={"stations": stations, "planner": planner, "alarms": section})


@dataclass
class Servers:
    robots: NotifyReceiver
    mail: MailReceiver
    files: dict[str, str]

    def channels(self) -> list[dict[str, Any]]:
        return channels(self.robots.url, self.files, self.mail.port)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    files = write_secrets(tmp_path / "secrets")
    with (
        NotifyReceiver(SECRETS) as robots,
        MailReceiver(username=MAIL_USER, password=MAIL_PASSWORD) as mail,
    ):
        yield Servers(robots, mail, files)


@dataclass
class AlarmedLine:
    gateway: Gateway
    clock: ManualClock
    alerts: Alerts

    def at(self, iso_time: str) -> None:
        self.clock.at = datetime.fromisoformat(iso_time)

    def advance_min(self, minutes: float) -> None:
        self.clock.advance(minutes * 60)

    def raise_fault(
        self,
        alarm_id: str = FAULT_ID,
        severity: Severity = Severity.MAJOR,
        why: str = "spindle jam",
    ) -> None:
        """The alarm the floor raises for a faulted machine (gateway/floor/machines.py)."""
        core = self.gateway.core
        with core.store.transaction():
            alarms.raise_alarm(
                core,
                alarm_id,
                "machine_fault",
                "laser-1/engraver",
                severity,
                t(
                    "{machine} is {state}: {why}",
                    machine="laser-1/engraver",
                    state="ABORTED",
                    why=why,
                ),
            )

    def clear(self, alarm_id: str = FAULT_ID) -> None:
        core = self.gateway.core
        with core.store.transaction():
            alarms.clear_alarm(core, alarm_id, "the machine is back")

    def ack(self, alarm_id: str = FAULT_ID, by: str = "lead") -> None:
        core = self.gateway.core
        with core.store.transaction():
            alarms.acknowledge(core, alarm_id, by)

    def notes(self, alarm_id: str = FAULT_ID) -> list[NotificationRow]:
        return self.gateway.core.store.fetch_all(
            NotificationRow,
            "SELECT * FROM notifications WHERE alarm_id = ? ORDER BY id",
            (alarm_id,),
        )


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (yielding to the gateway's loop) until ``check()`` holds, ``within`` seconds."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polling the store and the servers is the point
            await asyncio.sleep(0.01)


async def settle(seconds: float = 0.3) -> None:
    """Give the service a few ticks to do what it would (to show it did nothing)."""
    await asyncio.sleep(seconds)


@asynccontextmanager
async def alarmed_line(
    data_dir: Path, alarms_doc: dict[str, Any] | AlarmsSection, start: datetime = LINE_MORNING
) -> AsyncIterator[AlarmedLine]:
    """The gateway's store and core on ``data_dir`` (kept across uses: a restart is a
    second use), its notification service running with a fast tick."""
    config = line_config(alarms_doc)
    clock = ManualClock(start)
    gw = Gateway(config, data_dir=data_dir, clock=clock)
    gw.open()
    alerts = Alerts(gw.core, tick_s=0.02)
    task = asyncio.create_task(alerts.run())
    try:
        yield AlarmedLine(gw, clock, alerts)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gw.store.close()
