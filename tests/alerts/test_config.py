"""[alarms] in line.toml: what it holds, and its mistakes named with file and key, a
missing secret file among them (at load, by check-config and run: before any alarm)."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config.alerts import ROLES, expand_kinds
from gateway.config.load import EX_CONFIG, ConfigError, check_config, load_line_config
from gateway.store.rows import Role
from tests.gateway.conftest import REFERENCE_LINE

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)

ALARMS = """
[alarms]
quality_failures = 4
board_url = "https://line3.example.com"

[[alarms.contacts]]
name = "王芳"
roles = ["line_lead"]
shifts = ["early"]
mobile = "13800000001"
email = "wang@example.com"

[[alarms.contacts]]
name = "陈静"
roles = ["admin"]
feishu_user_id = "ou_chen"

[[alarms.channels]]
id = "wecom"
type = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
key_file = "secrets/wecom-key"

[[alarms.channels]]
id = "ding"
type = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send"
key_file = "secrets/ding-token"
secret_file = "secrets/ding-secret"

[[alarms.channels]]
id = "mail"
type = "smtp"
host = "smtp.example.com"
username = "line3"
password_file = "secrets/mail-password"
from = "line3@example.com"

[[alarms.rules]]
kinds = ["devices", "quality"]
min_severity = "major"
to = ["line_lead"]
channels = ["wecom", "mail"]
escalate_after_min = 10
escalate_to = [["maintenance"], ["陈静"]]

[[alarms.rules]]
kinds = ["*"]
to = ["陈静"]
channels = ["ding"]
"""


def _folder(tmp_path: Path, alarms: str = ALARMS, secrets: tuple[str, ...] = ()) -> Path:
    folder = tmp_path / "line"
    shutil.copytree(REFERENCE_LINE, folder)
    with (folder / "line.toml").open("a", encoding="utf-8") as f:
        f.write(alarms)
    (folder / "secrets").mkdir()
    for name in secrets or ("wecom-key", "ding-token", "ding-secret", "mail-password"):
        (folder / "secrets" / name).write_text(f"value of {name}\n")
    return folder


def _problems(folder: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_line_config(folder, check_tls_at=NOW)
    return [(p.file, p.path, p.message) for p in caught.value.problems]


def test_a_line_with_alarms_loads_every_key(tmp_path: Path) -> None:
    config = load_line_config(_folder(tmp_path), check_tls_at=NOW)
    alarms = config.alarms
    assert alarms.quality_failures == 4
    assert alarms.board_url == "https://line3.example.com"
    wang = alarms.contact("王芳")
    assert wang is not None and wang.shifts == ["early"] and wang.mobile == "13800000001"
    mail = alarms.channel("mail")
    assert mail is not None and mail.sender == "line3@example.com"
    assert (mail.security, mail.smtp_port) == ("starttls", 587)  # the defaults
    first = alarms.rules[0]
    assert first.levels == [["line_lead"], ["maintenance"], ["陈静"]]
    assert first.matches("machine_fault", "critical")
    assert not first.matches("machine_fault", "warning")  # below min_severity
    assert not first.matches("material_shortage", "critical")
    assert alarms.rules[1].matches("material_shortage", "warning")  # "*"
    assert alarms.rules[1].matches("a_kind_added_later", "warning")  # "*" is every kind
    assert not alarms.rules[1].matches("notification", "critical")  # but never these
    out, err = io.StringIO(), io.StringIO()
    assert check_config(_folder(tmp_path / "again"), out, err, NOW) == 0, err.getvalue()


def test_a_missing_secret_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path, secrets=("wecom-key", "ding-token", "mail-password"))
    missing = folder.resolve() / "secrets" / "ding-secret"
    assert _problems(folder) == [
        (
            "line.toml",
            "alarms.channels.1.secret_file",
            f"cannot read the DingTalk robot signing secret from {missing}: "
            "No such file or directory",
        )
    ]
    out, err = io.StringIO(), io.StringIO()
    assert check_config(folder, out, err, NOW) == EX_CONFIG
    assert str(missing) in err.getvalue()
    # The commands that read no secret (plan, trace, devices …) still load the line.
    assert load_line_config(folder).alarms.channel("ding") is not None


def test_an_empty_secret_file_is_named_too(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "secrets" / "wecom-key").write_text("")
    assert _problems(folder) == [
        (
            "line.toml",
            "alarms.channels.0.key_file",
            f"the WeCom robot key file {folder.resolve() / 'secrets' / 'wecom-key'} is empty",
        )
    ]


def test_a_secret_written_into_line_toml_is_refused(tmp_path: Path) -> None:
    alarms = ALARMS.replace('key_file = "secrets/wecom-key"', 'key = "0a1b2c3d"')
    [(file, path, message)] = _problems(_folder(tmp_path, alarms))
    assert (file, path) == ("line.toml", "alarms.channels.0.key")
    assert "does not belong in line.toml" in message and "key_file" in message
    assert "0a1b2c3d" not in message


def test_a_key_in_the_webhook_address_is_refused(tmp_path: Path) -> None:
    alarms = ALARMS.replace(
        'url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"',
        'url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0a1b"',
    )
    [(file, path, message)] = _problems(_folder(tmp_path, alarms))
    assert (file, path) == ("line.toml", "alarms.channels.0")
    assert "key_file" in message


def test_mistakes_in_rules_and_contacts_are_each_named(tmp_path: Path) -> None:
    alarms = (
        ALARMS.replace('kinds = ["devices", "quality"]', 'kinds = ["devices", "qualty"]')
        .replace('channels = ["wecom", "mail"]', 'channels = ["wecom", "sms"]')
        .replace('escalate_to = [["maintenance"], ["陈静"]]', 'escalate_to = [["maintenence"]]')
    )
    [(file, path, message)] = _problems(_folder(tmp_path, alarms))
    assert (file, path) == ("line.toml", "alarms")
    assert "rules.0.kinds.1: unknown alarm kind 'qualty'" in message
    assert "rules.0.channels.1: no [[alarms.channels]] has id 'sms'" in message
    assert "rules.0.escalate_to.0.0: 'maintenence' is neither a role" in message


def test_a_contacts_shift_must_be_one_of_the_lines(tmp_path: Path) -> None:
    alarms = ALARMS.replace('shifts = ["early"]', 'shifts = ["night"]')
    assert _problems(_folder(tmp_path, alarms)) == [
        (
            "line.toml",
            "alarms.contacts.0.shifts.0",
            "unknown shift 'night' (the line's: early, late)",
        )
    ]


def test_notification_alarms_are_never_sent_by_a_rule(tmp_path: Path) -> None:
    alarms = ALARMS.replace('kinds = ["*"]', 'kinds = ["notification"]')
    [(_, path, message)] = _problems(_folder(tmp_path, alarms))
    assert path == "alarms"
    assert "never sent" in message
    assert "notification" not in expand_kinds(["*"])


def test_the_roles_a_rule_names_are_the_gateways_but_the_operator() -> None:
    assert set(ROLES) == {r.value for r in Role} - {Role.OPERATOR.value}


def test_the_kind_groups_stand_for_the_documented_kinds() -> None:
    assert expand_kinds(["storage"]) == {"disk_low", "store", "outbox_budget"}
    assert expand_kinds(["hub"]) == {"hub_refused", "hub_conflict", "hub", "masterdata"}
    assert expand_kinds(["devices"]) == {"machine_fault", "printer_problem", "device_offline"}
    assert expand_kinds(["shortage", "quality"]) == {"material_shortage", "quality"}
