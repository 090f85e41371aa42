"""The channels a notification goes by, each as its service documents it.

- WeCom (企业微信) group robot: POST ``{url}?key=KEY`` with
  ``{"msgtype": "text", "text": {"content": …, "mentioned_mobile_list": […]}}``; it
  answers ``{"errcode": 0, "errmsg": "ok"}``, and any other errcode is a failure even with
  HTTP 200. The content is at most 2048 bytes. (WeCom's developer documentation,
  群机器人配置说明.)
- DingTalk (钉钉) custom robot, signed (加签): POST
  ``{url}?access_token=TOKEN&timestamp=MS&sign=SIGN`` where SIGN is
  urlEncode(base64(HmacSHA256(key=secret, msg=timestamp + "\\n" + secret))), the
  timestamp in milliseconds within an hour of DingTalk's clock; body
  ``{"msgtype": "text", "text": {"content": …}, "at": {"atMobiles": […], "isAtAll": false}}``
  with each mentioned mobile also written as ``@mobile`` in the content; success is
  errcode 0 (310000: the signature or keywords did not match). (DingTalk's open platform
  documentation, 自定义机器人安全设置 (加签) and 自定义机器人发送群消息.)
- Feishu (飞书) custom bot with signature verification: POST ``{url}`` (the hook, its key
  the last path segment) with ``{"timestamp": "<seconds>", "sign": SIGN, "msg_type":
  "text", "content": {"text": …}}`` where SIGN is base64(HmacSHA256(key=timestamp + "\\n"
  + secret, msg="")); a mention is ``<at user_id="ou_…">name</at>`` in the text; success
  is code 0 (19021: the signature did not match, or the timestamp is over an hour off).
  (Feishu's open platform documentation, 自定义机器人使用指南, 签名校验.)
- E-mail: aiosmtplib (``aiosmtplib.send``: STARTTLS, implicit TLS or plain, login when a
  username is set), a text/plain UTF-8 message whose Chinese subject is encoded as RFC 2047
  asks (the standard library's email package does it).

The signatures' timestamps are the real wall time (``wall``), never the line's clock: the
services check them against theirs. Secrets are read from their files at each send, so a
key replaced on disk works from the next attempt; they never appear in an error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

import aiosmtplib
import httpx

from gateway.config.alerts import Channel, Contact
from gateway.config.secrets import SecretError, read_secret

__all__ = ["Outgoing", "SendError", "Sender", "build_senders"]

# What the services take (bytes of UTF-8): WeCom documents 2048 for a text's content.
_WECOM_MAX = 2048
_OTHER_MAX = 4000


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    body: str
    people: tuple[Contact, ...]  # whom to mention or write to
    at: datetime  # the line's time (the mail's Date)


class SendError(Exception):
    """The channel did not take the message; str() says why, without any secret."""


class Sender(Protocol):
    async def send(self, out: Outgoing) -> None:
        """Deliver ``out`` or raise SendError (within the channel's timeout)."""


def build_senders(
    channels: list[Channel],
    config_dir: Path,
    http: httpx.AsyncClient,
    wall: Callable[[], float] = time.time,
) -> dict[str, Sender]:
    """A sender per channel id."""
    senders: dict[str, Sender] = {}
    for channel in channels:
        secrets = _Secrets(channel, config_dir)
        if channel.type == "wecom":
            senders[channel.id] = WeComRobot(channel, secrets, http)
        elif channel.type == "dingtalk":
            senders[channel.id] = DingTalkRobot(channel, secrets, http, wall)
        elif channel.type == "feishu":
            senders[channel.id] = FeishuRobot(channel, secrets, http, wall)
        else:
            senders[channel.id] = Mailer(channel, secrets, config_dir)
    return senders


class _Secrets:
    """A channel's secret files, read when wanted; what was read is remembered only to
    be scrubbed from errors."""

    def __init__(self, channel: Channel, config_dir: Path) -> None:
        self._files = {key: (what, name) for key, what, name in channel.secret_files()}
        self._config_dir = config_dir
        self._seen: set[str] = set()

    def get(self, key: str) -> str | None:
        if key not in self._files:
            return None
        what, name = self._files[key]
        try:
            value = read_secret(name, what, self._config_dir)
        except SecretError as exc:
            raise SendError(str(exc)) from None
        self._seen.add(value)
        return value

    def need(self, key: str) -> str:
        value = self.get(key)
        if value is None:  # the config requires it for this channel type
            raise SendError(f"no {key}")
        return value

    def scrub(self, text: str) -> str:
        for secret in self._seen:
            for form in (secret, quote(secret, safe=""), quote_plus(secret)):
                text = text.replace(form, "***")
        return text


def _fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` bytes of UTF-8, on a character, marked as cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"


class _Robot:
    def __init__(self, channel: Channel, secrets: _Secrets, http: httpx.AsyncClient) -> None:
        assert channel.url is not None  # the config requires it of a robot
        self.channel = channel
        self.secrets = secrets
        self.http = http

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        timeout = self.channel.timeout_s
        try:
            # httpx's timeouts are per read; the deadline is for the whole exchange (a
            # server that trickles its answer must not hold the channel longer).
            async with asyncio.timeout(timeout):
                answer = await self.http.post(url, json=body, timeout=timeout)
        except TimeoutError:
            raise SendError(f"no answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            why = self.secrets.scrub(str(exc)) or type(exc).__name__
            raise SendError(f"{type(exc).__name__}: {why}") from None
        if not 200 <= answer.status_code < 300:
            raise SendError(f"HTTP {answer.status_code}")
        try:
            doc = answer.json()
        except ValueError:
            raise SendError(f"HTTP {answer.status_code}, but the answer is not JSON") from None
        if not isinstance(doc, dict):
            raise SendError("the answer is not a JSON object")
        return doc

    @staticmethod
    def _check(doc: dict[str, Any], code_key: str, message_key: str) -> None:
        code = doc.get(code_key)
        if code != 0:
            raise SendError(f"{code_key} {code}: {str(doc.get(message_key, ''))[:200]}")


class WeComRobot(_Robot):
    async def send(self, out: Outgoing) -> None:
        key = self.secrets.need("key_file")
        mobiles = [c.mobile for c in out.people if c.mobile]
        body = {
            "msgtype": "text",
            "text": {"content": _fit(out.body, _WECOM_MAX), "mentioned_mobile_list": mobiles},
        }
        url = f"{self.channel.url}?key={quote(key, safe='')}"
        self._check(await self._post(url, body), "errcode", "errmsg")


class DingTalkRobot(_Robot):
    def __init__(
        self,
        channel: Channel,
        secrets: _Secrets,
        http: httpx.AsyncClient,
        wall: Callable[[], float],
    ) -> None:
        super().__init__(channel, secrets, http)
        self._wall = wall

    async def send(self, out: Outgoing) -> None:
        token = self.secrets.need("key_file")
        secret = self.secrets.need("secret_file")
        timestamp = str(round(self._wall() * 1000))
        mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
        sign = quote_plus(base64.b64encode(mac.digest()).decode())
        mobiles = [c.mobile for c in out.people if c.mobile]
        mentions = " ".join(f"@{m}" for m in mobiles)
        content = _fit(out.body, _OTHER_MAX - len(mentions) - 1)
        body = {
            "msgtype": "text",
            "text": {"content": f"{content}\n{mentions}" if mentions else content},
            "at": {"atMobiles": mobiles, "isAtAll": False},
        }
        url = (
            f"{self.channel.url}?access_token={quote(token, safe='')}"
            f"&timestamp={timestamp}&sign={sign}"
        )
        self._check(await self._post(url, body), "errcode", "errmsg")


class FeishuRobot(_Robot):
    def __init__(
        self,
        channel: Channel,
        secrets: _Secrets,
        http: httpx.AsyncClient,
        wall: Callable[[], float],
    ) -> None:
        super().__init__(channel, secrets, http)
        self._wall = wall

    async def send(self, out: Outgoing) -> None:
        assert self.channel.url is not None
        key = self.secrets.get("key_file")
        url = self.channel.url if key is None else f"{self.channel.url.rstrip('/')}/{key}"
        mentions = " ".join(
            f'<at user_id="{c.feishu_user_id}">{c.name}</at>'
            for c in out.people
            if c.feishu_user_id
        )
        text = _fit(out.body, _OTHER_MAX - len(mentions.encode()) - 1)
        body: dict[str, Any] = {
            "msg_type": "text",
            "content": {"text": f"{text}\n{mentions}" if mentions else text},
        }
        secret = self.secrets.get("secret_file")
        if secret is not None:
            timestamp = str(int(self._wall()))
            mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256)
            body = {
                "timestamp": timestamp,
                "sign": base64.b64encode(mac.digest()).decode(),
                **body,
            }
        doc = await self._post(url, body)
        # Feishu's answer has code; its older form StatusCode (kept "for compatibility").
        self._check(doc, "code" if "code" in doc else "StatusCode", "msg")


class Mailer:
    def __init__(self, channel: Channel, secrets: _Secrets, config_dir: Path) -> None:
        assert channel.host is not None and channel.sender is not None  # the config's
        self.channel = channel
        self.secrets = secrets
        self._host = channel.host
        self._sender = channel.sender
        self._ca = None if channel.ca_file is None else config_dir / channel.ca_file
        self._tls: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext | None:
        """The server's certificate checked against ca_file (made at the first mail, so
        a file missing since the start is a failure of that mail, not of the gateway)."""
        if self._ca is None or self.channel.security == "none":
            return None
        if self._tls is None:
            try:
                self._tls = ssl.create_default_context(cafile=str(self._ca))
            except (OSError, ssl.SSLError) as exc:
                raise SendError(f"cannot use ca_file {self._ca}: {exc}") from None
        return self._tls

    async def send(self, out: Outgoing) -> None:
        to = [c.email for c in out.people if c.email]
        if not to:
            raise SendError("nobody to write to (no contact with an e-mail)")
        ch = self.channel
        message = EmailMessage()
        message["Subject"] = out.subject
        message["From"] = self._sender
        message["To"] = ", ".join(to)
        message["Date"] = format_datetime(out.at)
        # Given the domain: make_msgid would otherwise ask the resolver for this host's name.
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2])
        message.set_content(out.body, charset="utf-8")
        password = self.secrets.get("password_file")
        tls = self._tls_context()
        try:
            # aiosmtplib's timeout is per command; the deadline is for the whole exchange.
            async with asyncio.timeout(ch.timeout_s):
                await aiosmtplib.send(
                    message,
                    hostname=self._host,
                    port=ch.smtp_port,
                    username=ch.username,
                    password=password,
                    use_tls=ch.security == "tls",
                    # True: STARTTLS or fail, never a silent fall back to plain text.
                    start_tls=ch.security == "starttls",
                    tls_context=tls,
                    timeout=ch.timeout_s,
                )
        except TimeoutError:
            raise SendError(f"no answer within {ch.timeout_s:g} s") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            why = self.secrets.scrub(str(exc)) or type(exc).__name__
            raise SendError(f"{type(exc).__name__}: {why}") from None
