"""Each channel against a local server speaking its service's format: the robots check
the signatures by the services' documented formulas (simulators/notify_receiver.py, no
code shared with the gateway) and answer as the services do; mail goes to a real SMTP
server (aiosmtpd). A refusal (a wrong key, a bad signature) is a failure recorded with the
service's own code, retried, and given up after max_attempts with an alarm on the board."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from gateway.alerts.rows import Purpose, State
from gateway.cli.lab_certs import make_lab_certs
from gateway.orderbook.alarms import active_alarms
from simulators.notify_receiver import MailReceiver, Robot
from tests.alerts.conftest import (
    MAIL_PASSWORD,
    MAIL_USER,
    SECRETS,
    Servers,
    alarmed_line,
    contacts,
    eventually,
    settle,
)

ZH_MESSAGE = "laser-1/engraver 处于 ABORTED 状态：spindle jam"
EN_MESSAGE = "laser-1/engraver is ABORTED: spindle jam"
LINE_NAME = "杭州一厂 3 线 / Hangzhou plant 1, line 3"  # [line] name of the reference line


def _write(path: str, secret: str) -> None:
    Path(path).write_text(secret + "\n", encoding="utf-8")


def _doc(servers: Servers, **extra: Any) -> dict[str, Any]:
    return {
        "contacts": contacts(),
        "channels": servers.channels(),
        "rules": [
            {
                "kinds": ["devices"],
                "to": ["line_lead", "maintenance"],
                "channels": ["wecom", "dingtalk", "feishu", "mail"],
            }
        ],
        **extra,
    }


async def test_each_channel_sends_in_its_services_format(tmp_path: Path, servers: Servers) -> None:
    doc = _doc(servers, board_url="https://line3.example.com/")
    async with alarmed_line(tmp_path / "data", doc) as ln:
        ln.raise_fault()
        await eventually(lambda: len(servers.robots.taken()) == 3 and len(servers.mail.mails) == 1)
        await settle()
        # Told once each: the early shift's line lead and maintenance (any shift); the
        # late shift's lead is not on duty at 10:00.
        got = {r.robot: r for r in servers.robots.received}  # each channel on its own
        assert len(servers.robots.received) == 3
        assert {robot: r.ok for robot, r in got.items()} == {
            "wecom": True,
            "dingtalk": True,
            "feishu": True,
        }
        wecom, ding, feishu = got["wecom"], got["dingtalk"], got["feishu"]
        assert wecom.mentions == ("13800000001", "13800000003")
        assert ding.mentions == ("13800000001", "13800000003")
        assert ding.body["at"] == {"atMobiles": ["13800000001", "13800000003"], "isAtAll": False}
        assert "@13800000001" in ding.text and "@13800000003" in ding.text
        assert feishu.mentions == ("ou_wang",)  # 张敏 has no Feishu id
        assert '<at user_id="ou_wang">王芳</at>' in feishu.text
        for robot in (wecom, ding, feishu):
            text = robot.text
            assert text.startswith(
                f"【报警 · 严重】 {LINE_NAME} · laser-1/engraver\n{ZH_MESSAGE}\n"
            )
            assert "10:00 报警（0 分钟前），第 1 级：请在看板上确认。" in text
            assert f"[Alarm · major] {LINE_NAME} · laser-1/engraver\n{EN_MESSAGE}\n" in text
            assert "Raised at 10:00 (0 min ago), level 1: acknowledge it on the board." in text
            assert "看板：https://line3.example.com/board" in text
            assert "Board: https://line3.example.com/board" in text
        [mail] = servers.mail.mails
        assert mail.sender == "linegate@example.com"
        assert mail.recipients == ("wang@example.com",)  # the only one with an address
        assert mail.login == MAIL_USER
        raw_head = mail.data.split(b"\r\n\r\n", 1)[0].decode("ascii")  # headers: ASCII only
        assert "=?utf-8?" in raw_head  # the Chinese subject, RFC 2047
        message = message_from_bytes(mail.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        assert message["Subject"] == (
            f"【报警 · 严重】 hz01/line3 {ZH_MESSAGE} / [Alarm · major] {EN_MESSAGE}"
        )
        assert message["To"] == "wang@example.com"
        assert message["Date"] == "Thu, 26 Nov 2026 10:00:00 +0800"  # the line's clock
        assert message.get_content_type() == "text/plain"
        assert message.get_content_charset() == "utf-8"
        body = message.get_content()
        assert ZH_MESSAGE in body and EN_MESSAGE in body
        notes = ln.notes()
        assert [(n.channel, n.state, n.attempts, n.purpose) for n in notes] == [
            (channel, State.SENT, 1, Purpose.RAISED)
            for channel in ("wecom", "dingtalk", "feishu", "mail")
        ]


async def test_refusals_are_failures_recorded_retried_then_given_up(
    tmp_path: Path, servers: Servers
) -> None:
    files = servers.files
    # A wrong WeCom key, a wrong DingTalk signing secret, a wrong Feishu signing secret.
    _write(files["wecom-key"], "not-the-key")
    _write(files["dingtalk-secret"], "SECwrong")
    _write(files["feishu-secret"], "wrong")
    doc = _doc(servers, max_attempts=2, retry_initial_s=30.0)
    doc["rules"][0]["channels"] = ["wecom", "dingtalk", "feishu"]
    async with alarmed_line(tmp_path / "data", doc) as ln:
        ln.raise_fault()
        await eventually(lambda: all(n.attempts == 1 for n in ln.notes()) and len(ln.notes()) == 3)
        errors = {n.channel: (n.state, n.last_error) for n in ln.notes()}
        assert errors == {
            "wecom": (State.PENDING, "errcode 93000: invalid webhook url"),
            "dingtalk": (State.PENDING, "errcode 310000: sign not match"),
            "feishu": (
                State.PENDING,
                "code 19021: sign match fail or timestamp is not within one hour from current time",
            ),
        }
        assert servers.robots.taken() == []
        # The secrets never show in what is recorded.
        for n in ln.notes():
            assert SECRETS.wecom_key not in (n.last_error or "")
        ln.clock.advance(29)
        await settle()
        assert all(n.attempts == 1 for n in ln.notes())  # not before retry_initial_s
        ln.clock.advance(1)
        await eventually(lambda: all(n.state is State.FAILED for n in ln.notes()))
        assert [n.attempts for n in ln.notes()] == [2, 2, 2]
        shown = {a["alarm_id"]: a for a in active_alarms(ln.gateway.core)}
        for channel in ("wecom", "dingtalk", "feishu"):
            alarm = shown[f"notification:{channel}"]
            assert alarm["kind"] == "notification" and alarm["source"] == channel
            assert "gave up after 2 attempts" in alarm["message"]
            assert "尝试 2 次后放弃" in alarm["message_zh"]
        # Given up is given up: no endless loop of attempts, and no notification of the
        # notification alarms.
        robots: tuple[Robot, ...] = ("wecom", "dingtalk", "feishu")
        ln.clock.advance(3600)
        await settle()
        assert [servers.robots.requests(r) for r in robots] == [2, 2, 2]
        # The key put right on disk: the next alarm goes, and the board's alarm clears.
        _write(files["wecom-key"], SECRETS.wecom_key)
        ln.raise_fault("machine_fault:dtg-1/printer")
        await eventually(lambda: len(servers.robots.taken("wecom")) == 1)
        await eventually(
            lambda: (
                "notification:wecom" not in {a["alarm_id"] for a in active_alarms(ln.gateway.core)}
            )
        )
        assert "notification:dingtalk" in {a["alarm_id"] for a in active_alarms(ln.gateway.core)}


async def test_a_feishu_bot_without_a_signing_secret_takes_plain_messages(
    tmp_path: Path, servers: Servers
) -> None:
    from dataclasses import replace

    from simulators.notify_receiver import NotifyReceiver

    doc = _doc(servers)
    with NotifyReceiver(replace(SECRETS, feishu_secret=None)) as unsigned:
        feishu = dict(doc["channels"][2])
        del feishu["secret_file"]
        feishu["url"] = f"{unsigned.url}/open-apis/bot/v2/hook"
        doc["channels"][2] = feishu
        doc["rules"][0]["channels"] = ["feishu"]
        async with alarmed_line(tmp_path / "data", doc) as ln:
            ln.raise_fault()
            await eventually(lambda: len(unsigned.taken("feishu")) == 1)
            [got] = unsigned.taken("feishu")
            assert "sign" not in got.body and "timestamp" not in got.body
            assert got.body["msg_type"] == "text"


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_over_tls_checks_the_servers_certificate_and_logs_in(
    tmp_path: Path, servers: Servers, security: str
) -> None:
    """A mail server with a certificate of a private CA (ca_file): STARTTLS on a plain
    connection, or TLS from the first byte; the login is required, over TLS only."""
    certs = make_lab_certs(
        tmp_path / "certs", ["localhost"], [ip_address("127.0.0.1")], 30, datetime.now(UTC)
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certs.server_cert, certs.server_key)
    with MailReceiver(
        username=MAIL_USER,
        password=MAIL_PASSWORD,
        tls=server_tls,
        implicit_tls=security == "tls",
    ) as mail:
        doc = _doc(servers)
        mail_channel = dict(doc["channels"][3])
        mail_channel |= {"port": mail.port, "security": security, "ca_file": str(certs.ca_cert)}
        doc["channels"][3] = mail_channel
        doc["rules"][0]["channels"] = ["mail"]
        async with alarmed_line(tmp_path / "data", doc) as ln:
            ln.raise_fault()
            await eventually(lambda: len(mail.mails) == 1)
            [got] = mail.mails
            assert (got.tls, got.login, got.recipients) == (True, MAIL_USER, ("wang@example.com",))
            await eventually(lambda: ln.notes()[0].state is State.SENT)


async def test_mail_to_a_server_whose_certificate_is_not_trusted_is_a_failure(
    tmp_path: Path, servers: Servers
) -> None:
    certs = make_lab_certs(
        tmp_path / "certs", ["localhost"], [ip_address("127.0.0.1")], 30, datetime.now(UTC)
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certs.server_cert, certs.server_key)
    with MailReceiver(tls=server_tls) as mail:
        doc = _doc(servers)
        doc["channels"][3] = dict(doc["channels"][3]) | {"port": mail.port, "security": "starttls"}
        doc["rules"][0]["channels"] = ["mail"]
        async with alarmed_line(tmp_path / "data", doc) as ln:  # the system's CAs only
            ln.raise_fault()
            await eventually(lambda: ln.notes() != [] and ln.notes()[0].attempts == 1)
            assert "CERTIFICATE_VERIFY_FAILED" in (ln.notes()[0].last_error or "")
            assert mail.mails == []
