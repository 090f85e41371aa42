"""The demo's [alarms]: its people, a channel of each kind pointed at the local receiver
(simulators/notify_receiver.py) and rules that escalate within the demo's compressed
time. The demo starts the receiver and passes its address and secrets here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.config.alerts import AlarmsSection

__all__ = ["demo_alarms"]


def demo_alarms(
    folder: Path,
    robots_url: str,
    smtp_port: int | None,
    *,
    shifts: Sequence[str],
    wecom_key: str,
    dingtalk_token: str,
    dingtalk_secret: str,
    feishu_key: str,
    feishu_secret: str | None,
    board_url: str | None = None,
) -> AlarmsSection:
    """[alarms] for the demo: the secrets written to files in ``folder`` (as a line keeps
    them), the robots at ``robots_url``, mail to ``127.0.0.1:smtp_port`` (None: no mail).
    The two line leads work the line's first two ``shifts``, so an alarm left alone over a
    shift change is handed over."""
    folder.mkdir(parents=True, exist_ok=True)

    def secret(name: str, value: str) -> str:
        path = folder / name
        path.write_text(value + "\n", encoding="utf-8")
        path.chmod(0o600)
        return str(path)

    base = robots_url.rstrip("/")
    channels: list[dict[str, object]] = [
        {
            "id": "wecom",
            "type": "wecom",
            "url": f"{base}/cgi-bin/webhook/send",
            "key_file": secret("wecom-key", wecom_key),
            "timeout_s": 5.0,
        },
        {
            "id": "dingtalk",
            "type": "dingtalk",
            "url": f"{base}/robot/send",
            "key_file": secret("dingtalk-token", dingtalk_token),
            "secret_file": secret("dingtalk-secret", dingtalk_secret),
            "timeout_s": 5.0,
        },
        {
            "id": "feishu",
            "type": "feishu",
            "url": f"{base}/open-apis/bot/v2/hook",
            "key_file": secret("feishu-key", feishu_key),
            "timeout_s": 5.0,
        },
    ]
    if feishu_secret is not None:
        channels[2]["secret_file"] = secret("feishu-secret", feishu_secret)
    device_channels = ["wecom"]
    if smtp_port is not None:
        channels.append(
            {
                "id": "mail",
                "type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from": "linegate@example.com",
                "timeout_s": 5.0,
            }
        )
        device_channels.append("mail")
    leads = list(shifts[:2])
    contacts: list[dict[str, object]] = [
        {
            "name": "王芳 Wang Fang",
            "roles": ["line_lead"],
            "mobile": "13800000001",
            "email": "wang.fang@example.com",
            "feishu_user_id": "ou_demo_wangfang",
            **({"shifts": [leads[0]]} if leads else {}),
        },
        {
            "name": "李强 Li Qiang",
            "roles": ["line_lead"],
            "mobile": "13800000002",
            "email": "li.qiang@example.com",
            "feishu_user_id": "ou_demo_liqiang",
            **({"shifts": [leads[-1]]} if leads else {}),
        },
        {
            "name": "张敏 Zhang Min",
            "roles": ["maintenance"],
            "mobile": "13800000003",
            "email": "zhang.min@example.com",
        },
        {
            "name": "刘洋 Liu Yang",
            "roles": ["quality"],
            "mobile": "13800000004",
            "feishu_user_id": "ou_demo_liuyang",
        },
        {
            "name": "陈静 Chen Jing",
            "roles": ["admin"],
            "mobile": "13800000005",
            "email": "chen.jing@example.com",
            "feishu_user_id": "ou_demo_chenjing",
        },
    ]
    rules: list[dict[str, object]] = [
        {
            "kinds": ["devices"],
            "min_severity": "major",
            "to": ["maintenance", "line_lead"],
            "channels": device_channels,
            "escalate_after_min": 10.0,
            "escalate_to": [["admin"]],
        },
        {
            "kinds": ["packing"],
            "to": ["line_lead"],
            "channels": device_channels,
            "escalate_after_min": 10.0,
            "escalate_to": [["admin"]],
        },
        {
            "kinds": ["quality"],
            "to": ["quality", "line_lead"],
            "channels": ["dingtalk"],
            "escalate_after_min": 15.0,
            "escalate_to": [["admin"]],
        },
        {
            "kinds": ["shortage", "storage", "hub"],
            "to": ["line_lead"],
            "channels": ["feishu"],
            "escalate_after_min": 30.0,
            "escalate_to": [["admin"]],
        },
    ]
    return AlarmsSection.model_validate(
        {
            "contacts": contacts,
            "channels": channels,
            "rules": rules,
            # Retries in the demo's compressed time: 30 s of line time is 0.5 s at ×60.
            "retry_initial_s": 30.0,
            "retry_max_s": 600.0,
            **({"board_url": board_url} if board_url else {}),
        }
    )
