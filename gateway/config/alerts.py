"""[alarms] of line.toml: who is told of which alarm, by which channel, and who next when
nobody acknowledges it (gateway/alerts does the telling).

The board and the station screens always show every alarm; these rules add messages to
people: a WeCom (企业微信), DingTalk (钉钉) or Feishu (飞书) group robot, or e-mail.

- ``[[alarms.contacts]]``: a person: ``name``, ``roles``, the ``shifts`` they work (names of
  the line's ``[[shifts]]``; left out: any time), and where they are reached: ``email``,
  ``mobile`` (the @mention in WeCom and DingTalk), ``feishu_user_id`` (the @mention in
  Feishu).
- ``[[alarms.channels]]``: a robot's webhook or a mail server. Its secrets (the robot's key
  or access token, its signing secret, the mail password) never sit in line.toml: the
  ``*_file`` keys name a file, a systemd credential or a path relative to the config
  folder, read as the hub's secrets are (gateway/config/secrets.py).
- ``[[alarms.rules]]``: which alarm kinds (or groups of kinds, :data:`KIND_GROUPS`) from
  which severity up go ``to`` whom (roles and/or contact names) by which ``channels``; when
  nobody acknowledges it within ``escalate_after_min``, to the next level of
  ``escalate_to``, and so on, each level ``escalate_after_min`` later than the one before,
  counted from the raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.secrets import SecretError, read_secret

__all__ = [
    "ALARM_KINDS",
    "KIND_GROUPS",
    "NOTIFICATION_KIND",
    "ROLES",
    "AlarmRule",
    "AlarmsSection",
    "Channel",
    "ChannelType",
    "Contact",
    "alarm_problems",
    "expand_kinds",
]

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)

# The kinds of alarm the gateway raises (grep raise_alarm): a rule naming another is a typo.
ALARM_KINDS: frozenset[str] = frozenset(
    {
        "machine_fault",  # a machine's OPC UA state or a job it refused (gateway/floor)
        "printer_problem",  # a label printer that cannot print
        "device_offline",  # a device past its restart budget
        "disk_low",  # the data folder's disk nearly full: intake paused
        "outbox_budget",  # events waiting for the hub past 80 % of their budget
        "store",  # the store itself
        "material_shortage",  # orders waiting for a material
        "quality",  # a station's last quality checks all failed ([alarms] quality_failures)
        "hub_refused",  # the hub refuses events or the orders request (HTTP link)
        "hub_conflict",  # an order revision sent again with other contents
        "hub",  # the hub link itself
        "masterdata",  # a catalog or stock snapshot refused
        "media",  # an e-SOP picture that cannot be fetched
        "packing",  # a parcel no container holds: packing waits for a line lead
    }
)
# A notification that could not be sent, raised by gateway/alerts itself: shown on the
# board and /api/alarms, never sent anywhere (a channel that cannot send would page about
# itself), so no rule may name it.
NOTIFICATION_KIND = "notification"
# Names a rule may use for several kinds at once; "*" is every kind.
KIND_GROUPS: dict[str, frozenset[str]] = {
    "storage": frozenset({"disk_low", "store", "outbox_budget"}),
    "hub": frozenset({"hub_refused", "hub_conflict", "hub", "masterdata"}),
    "devices": frozenset({"machine_fault", "printer_problem", "device_offline"}),
    "shortage": frozenset({"material_shortage"}),
    "*": ALARM_KINDS,
}
# gateway.store.rows.Role without the operator (an operator is reached at the station).
ROLES: tuple[str, ...] = ("line_lead", "quality", "maintenance", "admin", "viewer")
RoleName = Literal["line_lead", "quality", "maintenance", "admin", "viewer"]
SeverityName = Literal["warning", "major", "critical"]
SEVERITY_RANK: dict[str, int] = {"warning": 0, "major": 1, "critical": 2}

Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ChannelId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Mobile = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{5,20}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$", max_length=254)]
SecretFile = Annotated[str, StringConstraints(min_length=1)]

ChannelType = Literal["wecom", "dingtalk", "feishu", "smtp"]
# What each channel type reads from which file (and needs): its name in error messages.
_SECRETS: dict[ChannelType, tuple[tuple[str, str, bool], ...]] = {
    # (key, what, required)
    "wecom": (("key_file", "WeCom robot key", True),),
    "dingtalk": (
        ("key_file", "DingTalk robot access token", True),
        ("secret_file", "DingTalk robot signing secret", True),
    ),
    # The key is the hook's last path segment (…/bot/v2/hook/KEY); the signing secret is
    # optional on Feishu's side ("签名校验" may be off), so it is here.
    "feishu": (
        ("key_file", "Feishu robot hook key", False),
        ("secret_file", "Feishu robot signing secret", False),
    ),
    "smtp": (("password_file", "SMTP password", False),),
}


class Contact(BaseModel):
    """One ``[[alarms.contacts]]``: a person alarms may reach."""

    model_config = _MODEL_CONFIG

    name: Name
    roles: list[RoleName] = []
    # Names of the line's [[shifts]] this person works; left out: told at any time.
    shifts: list[Name] | None = Field(default=None, min_length=1)
    email: Email | None = None
    mobile: Mobile | None = None
    feishu_user_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class Channel(BaseModel):
    """One ``[[alarms.channels]]``: a group robot's webhook or a mail server."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    id: ChannelId
    type: ChannelType
    # Robots: the webhook without its secret, e.g. https://qyapi.weixin.qq.com/cgi-bin/webhook/send,
    # https://oapi.dingtalk.com/robot/send, https://open.feishu.cn/open-apis/bot/v2/hook
    url: str | None = None
    key_file: SecretFile | None = None
    secret_file: SecretFile | None = None
    # SMTP: the server, how it speaks TLS (STARTTLS on 587, implicit TLS on 465, "none"
    # only for a server on this box), the account and the sender's address.
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1)
    password_file: SecretFile | None = None
    sender: Email | None = Field(default=None, alias="from")
    # The CA that signed the mail server's certificate, relative to the config folder
    # (default: the system's); the server's name is always checked.
    ca_file: str | None = Field(default=None, min_length=1)
    # One attempt's deadline: a server that hangs holds only this channel, this long.
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Secrets written into the file itself are refused, with where they belong instead.
    key: None = None
    secret: None = None
    password: None = None

    @field_validator("key", "secret", "password", mode="before")
    @classmethod
    def _no_secrets_here(cls, value: object, info: ValidationInfo) -> None:
        raise ValueError(
            f"a {info.field_name} does not belong in line.toml (it is readable and gets "
            f"copied): put it in a file and name it with {info.field_name}_file"
        )

    @model_validator(mode="after")
    def _fits_type(self) -> Self:
        if self.type == "smtp":
            if self.host is None or self.sender is None:
                raise ValueError("an smtp channel needs host and from")
            if self.url is not None or self.key_file is not None or self.secret_file is not None:
                raise ValueError(
                    "an smtp channel takes host, port, security, username, password_file "
                    "and from, not url, key_file or secret_file"
                )
            if self.password_file is not None and self.username is None:
                raise ValueError("password_file needs username")
            if self.ca_file is not None and self.security == "none":
                raise ValueError('ca_file is for TLS: security "none" has none')
            return self
        if self.url is None:
            raise ValueError(f"a {self.type} channel needs url (the webhook, without its key)")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {self.url!r} is not an http:// or https:// address")
        if parts.query or parts.fragment:
            raise ValueError(
                f"url {self.url!r} carries a query: the key or token goes in key_file, "
                "never in line.toml"
            )
        smtp_keys = (self.host, self.port, self.username, self.password_file, self.ca_file)
        if any(v is not None for v in smtp_keys):
            raise ValueError(f"a {self.type} channel takes url, key_file and secret_file")
        if self.sender is not None:
            raise ValueError(f"a {self.type} channel takes no from")
        for key, what, required in _SECRETS[self.type]:
            if required and getattr(self, key) is None:
                raise ValueError(f"a {self.type} channel needs {key} (the {what})")
        if self.type == "wecom" and self.secret_file is not None:
            raise ValueError("a wecom channel has no signing secret: key_file only")
        return self

    @property
    def smtp_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.security]

    def secret_files(self) -> list[tuple[str, str, str]]:
        """(key, what, file) of each secret this channel reads."""
        return [
            (key, what, value)
            for key, what, _ in _SECRETS[self.type]
            if (value := getattr(self, key)) is not None
        ]


class AlarmRule(BaseModel):
    """One ``[[alarms.rules]]``."""

    model_config = _MODEL_CONFIG

    # Alarm kinds, or groups of them (KIND_GROUPS; "*" for every kind).
    kinds: list[Name] = Field(min_length=1)
    min_severity: SeverityName = "warning"
    # Roles (line_lead, quality, maintenance, admin, viewer) and/or contact names.
    to: list[Name] = Field(min_length=1)
    channels: list[ChannelId] = Field(min_length=1)
    # Not acknowledged this long after the raise: escalate_to[0] is told; after twice as
    # long escalate_to[1], and so on. Left out: no escalation.
    escalate_after_min: float | None = Field(default=None, gt=0, le=7 * 24 * 60)
    escalate_to: list[list[Name]] = []

    @model_validator(mode="after")
    def _escalation(self) -> Self:
        if self.escalate_to and self.escalate_after_min is None:
            raise ValueError("escalate_to needs escalate_after_min")
        if self.escalate_after_min is not None and not self.escalate_to:
            raise ValueError("escalate_after_min needs escalate_to (who is told next)")
        if any(not level for level in self.escalate_to):
            raise ValueError("each level of escalate_to names at least one role or contact")
        return self

    @property
    def levels(self) -> list[list[str]]:
        """Who is told at each level: 0 at the raise, then each escalation."""
        return [list(self.to), *(list(level) for level in self.escalate_to)]

    def matches(self, kind: str, severity: str) -> bool:
        # "*" also takes a kind raised by code newer than ALARM_KINDS: never a silent gap.
        wanted = (
            kind != NOTIFICATION_KIND if "*" in self.kinds else kind in expand_kinds(self.kinds)
        )
        return wanted and SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK.get(self.min_severity, 0)


class AlarmsSection(BaseModel):
    """[alarms]: see the module's doc."""

    model_config = _MODEL_CONFIG

    contacts: list[Contact] = []
    channels: list[Channel] = []
    rules: list[AlarmRule] = []
    # A station whose last this many quality checks all failed raises a `quality` alarm;
    # the next check that passes clears it.
    quality_failures: int = Field(default=3, ge=1, le=100)
    # Where people open the board from their phone (e.g. https://line3.example.com): each
    # message links to its /board. Left out: no link.
    board_url: str | None = None
    # A message not sent is tried again after retry_initial_s, then twice as long each
    # time up to retry_max_s (line time), at most max_attempts times; then it is given up
    # and the alarm `notification:CHANNEL` says so on the board.
    retry_initial_s: float = Field(default=30.0, gt=0, le=3600)
    retry_max_s: float = Field(default=900.0, gt=0, le=86_400)
    max_attempts: int = Field(default=6, ge=1, le=100)
    # Notifications done with (their alarm cleared and said so) are kept this long.
    keep_days: int = Field(default=30, ge=1, le=3650)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = _section_problems(self)
        if problems:
            raise ValueError("; ".join(f"{key}: {why}" for key, why in problems))
        return self

    def contact(self, name: str) -> Contact | None:
        return next((c for c in self.contacts if c.name == name), None)

    def channel(self, channel_id: str) -> Channel | None:
        return next((c for c in self.channels if c.id == channel_id), None)


def expand_kinds(names: Iterable[str]) -> frozenset[str]:
    """The alarm kinds ``names`` (kinds and groups) stand for."""
    kinds: set[str] = set()
    for name in names:
        kinds |= KIND_GROUPS.get(name, {name})
    return frozenset(kinds)


def _section_problems(section: AlarmsSection) -> list[tuple[str, str]]:
    """(dotted key under alarms, what is wrong) of what the models alone cannot see."""
    problems: list[tuple[str, str]] = []
    names = [c.name for c in section.contacts]
    for i, name in enumerate(names):
        if name in ROLES:
            problems.append((f"contacts.{i}.name", f"{name!r} is a role: give the person's name"))
        elif name in names[:i]:
            problems.append((f"contacts.{i}.name", f"contact {name!r} is listed twice"))
    ids = [c.id for c in section.channels]
    for i, channel_id in enumerate(ids):
        if channel_id in ids[:i]:
            problems.append((f"channels.{i}.id", f"channel {channel_id!r} is listed twice"))
    if section.retry_initial_s > section.retry_max_s:
        problems.append(("retry_initial_s", "is more than retry_max_s"))
    if section.board_url is not None:
        parts = urlsplit(section.board_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(("board_url", f"{section.board_url!r} is not an http(s) address"))
    known_kinds = ALARM_KINDS | KIND_GROUPS.keys()
    for r, rule in enumerate(section.rules):
        for k, kind in enumerate(rule.kinds):
            if kind == NOTIFICATION_KIND:
                problems.append(
                    (
                        f"rules.{r}.kinds.{k}",
                        "notification alarms (a channel that cannot send) are shown on the "
                        "board, never sent",
                    )
                )
            elif kind not in known_kinds:
                problems.append(
                    (
                        f"rules.{r}.kinds.{k}",
                        f"unknown alarm kind {kind!r}: one of {sorted(ALARM_KINDS)} or a "
                        f"group {sorted(KIND_GROUPS)}",
                    )
                )
        for c, channel_id in enumerate(rule.channels):
            if channel_id not in ids:
                problems.append(
                    (f"rules.{r}.channels.{c}", f"no [[alarms.channels]] has id {channel_id!r}")
                )
        where = [("to", rule.to)] + [
            (f"escalate_to.{n}", level) for n, level in enumerate(rule.escalate_to)
        ]
        for key, level in where:
            for k, who in enumerate(level):
                if who not in ROLES and who not in names:
                    problems.append(
                        (
                            f"rules.{r}.{key}.{k}",
                            f"{who!r} is neither a role ({', '.join(ROLES)}) nor a contact's name",
                        )
                    )
    return problems


def alarm_problems(
    section: AlarmsSection, shift_names: Iterable[str], config_dir: Path | None
) -> list[tuple[str, str]]:
    """(dotted key under alarms, what is wrong) across the line: contacts' shifts the line
    has, and, with ``config_dir`` (check-config, run), every channel's secret file read."""
    problems: list[tuple[str, str]] = []
    shifts = set(shift_names)
    for i, contact in enumerate(section.contacts):
        for k, shift in enumerate(contact.shifts or ()):
            if shift not in shifts:
                known = ", ".join(sorted(shifts)) or "none: the line has no [[shifts]]"
                problems.append(
                    (f"contacts.{i}.shifts.{k}", f"unknown shift {shift!r} (the line's: {known})")
                )
    if config_dir is None:
        return problems
    for i, channel in enumerate(section.channels):
        for key, what, name in channel.secret_files():
            try:
                read_secret(name, what, config_dir)
            except SecretError as exc:
                problems.append((f"channels.{i}.{key}", str(exc)))
        if channel.ca_file is not None and not (config_dir / channel.ca_file).is_file():
            problems.append(
                (f"channels.{i}.ca_file", f"no such file: {config_dir / channel.ca_file}")
            )
    return problems
