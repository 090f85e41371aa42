"""A local stand-in for the services alarm notifications go to: one HTTP server that
speaks the WeCom (企业微信), DingTalk (钉钉) and Feishu (飞书) group robots' webhooks, and
an SMTP server (aiosmtpd) for mail; each message it takes is kept and written out.

It checks what it is sent as the services do, by their documentation and on its own
(it shares no code with the gateway):

- WeCom: ``POST /cgi-bin/webhook/send?key=KEY``, a JSON text message whose content is at
  most 2048 bytes; ``{"errcode": 0, "errmsg": "ok"}``, or errcode 93000 for a wrong key.
- DingTalk: ``POST /robot/send?access_token=T&timestamp=MS&sign=S``, S being
  urlEncode(base64(HmacSHA256(key=secret, msg=timestamp + "\\n" + secret))) and the
  timestamp within an hour; errcode 0, 310000 for a bad signature, 300001 for a wrong token.
- Feishu: ``POST /open-apis/bot/v2/hook/KEY``, with ``timestamp`` (seconds, within an
  hour) and ``sign`` = base64(HmacSHA256(key=timestamp + "\\n" + secret, msg="")) in the
  body when a secret is set; code 0, 19021 for a bad signature, 19001 for a wrong key.

For tests it can answer the next requests of a robot with HTTP 500 or not at all
(:meth:`NotifyReceiver.fail_next`). ``python -m simulators.notify_receiver`` serves both
with :data:`DEMO_SECRETS` and writes every message out.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DEMO_SECRETS",
    "Fault",
    "Mail",
    "MailReceiver",
    "NotifyReceiver",
    "Received",
    "Robot",
    "RobotSecrets",
]

Robot = Literal["wecom", "dingtalk", "feishu"]
Fault = Literal["500", "hang"]
HOUR_S = 3600
WECOM_PATH = "/cgi-bin/webhook/send"
DINGTALK_PATH = "/robot/send"
FEISHU_PATH = "/open-apis/bot/v2/hook/"
# How long a hanging answer holds at most (a test's gateway gives up long before).
HANG_S = 60.0


@dataclass(frozen=True)
class RobotSecrets:
    wecom_key: str
    dingtalk_token: str
    dingtalk_secret: str
    feishu_key: str
    feishu_secret: str | None


# The demo's robots: what its gateway's secret files hold and this receiver checks.
DEMO_SECRETS = RobotSecrets(
    wecom_key="demo-wecom-key-0001",
    dingtalk_token="demo-dingtalk-token-0001",
    dingtalk_secret="SECdemo0123456789abcdef",
    feishu_key="demo-feishu-hook-0001",
    feishu_secret="demo-feishu-secret",
)


@dataclass(frozen=True)
class Received:
    """A message a robot took (or refused: ``answer`` says which)."""

    robot: Robot
    text: str
    mentions: tuple[str, ...]  # mobiles (WeCom, DingTalk) or user ids (Feishu)
    body: dict[str, Any]
    answer: dict[str, Any]
    at: float  # time.monotonic() when it came

    @property
    def ok(self) -> bool:
        return self.answer.get("errcode", self.answer.get("code")) == 0


@dataclass
class _State:
    secrets: RobotSecrets
    out: Callable[[str], object] | None
    wall: Callable[[], float]
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[Received] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)


class NotifyReceiver:
    """The robots' webhooks on ``host`` (port 0: a free one), in a thread of its own."""

    def __init__(
        self,
        secrets: RobotSecrets = DEMO_SECRETS,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        out: Callable[[str], object] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._state = _State(secrets, out, wall)
        state = self._state

        class Handler(_RobotHandler):
            shared = state

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def received(self) -> list[Received]:
        with self._state.lock:
            return list(self._state.received)

    def taken(self, robot: Robot | None = None) -> list[Received]:
        """The messages answered with success, of ``robot`` or of all."""
        return [r for r in self.received if r.ok and (robot is None or r.robot == robot)]

    def requests(self, robot: Robot) -> int:
        """Requests that reached ``robot``, answered or not."""
        with self._state.lock:
            return self._state.requests.get(robot, 0)

    def fail_next(self, robot: Robot, times: int, how: Fault) -> None:
        """Answer the next ``times`` requests to ``robot`` with HTTP 500, or never."""
        with self._state.lock:
            self._state.faults.setdefault(robot, []).extend([how] * times)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="notify-receiver", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._state.release.set()  # hanging answers end
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> NotifyReceiver:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _b64_hmac(key: bytes, msg: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


class _RobotHandler(BaseHTTPRequestHandler):
    shared: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the requests are the messages written out

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        robot: Robot | None = None
        if parts.path == WECOM_PATH:
            robot = "wecom"
        elif parts.path == DINGTALK_PATH:
            robot = "dingtalk"
        elif parts.path.startswith(FEISHU_PATH):
            robot = "feishu"
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if robot is None:
            self._answer(404, {"error": "no such webhook"})
            return
        state = self.shared
        with state.lock:
            state.requests[robot] = state.requests.get(robot, 0) + 1
            faults = state.faults.get(robot, [])
            fault = faults.pop(0) if faults else None
        if fault == "hang":
            state.release.wait(HANG_S)
            self.close_connection = True
            return
        if fault == "500":
            self._answer(500, {"error": "internal error"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._answer(400, {"error": "the body is not a JSON object"})
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if robot == "wecom":
            answer, text, mentions = self._wecom(query, body)
        elif robot == "dingtalk":
            answer, text, mentions = self._dingtalk(query, body)
        else:
            answer, text, mentions = self._feishu(parts.path[len(FEISHU_PATH) :], body)
        got = Received(robot, text, mentions, body, answer, time.monotonic())
        with state.lock:
            state.received.append(got)
        if state.out is not None:
            state.out(_shown(got))
        self._answer(200, answer)

    def _wecom(
        self, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[dict[str, Any], str, tuple[str, ...]]:
        text = body.get("text") if body.get("msgtype") == "text" else None
        content = text.get("content") if isinstance(text, dict) else None
        mobiles = text.get("mentioned_mobile_list", []) if isinstance(text, dict) else []
        if query.get("key") != self.shared.secrets.wecom_key:
            return {"errcode": 93000, "errmsg": "invalid webhook url"}, "", ()
        if not isinstance(content, str) or not content:
            return {"errcode": 44004, "errmsg": "empty content"}, "", ()
        if len(content.encode()) > 2048:
            return {"errcode": 40058, "errmsg": "content exceeds 2048 bytes"}, content, ()
        if not isinstance(mobiles, list) or not all(isinstance(m, str) for m in mobiles):
            return {"errcode": 40058, "errmsg": "invalid mentioned_mobile_list"}, content, ()
        return {"errcode": 0, "errmsg": "ok"}, content, tuple(mobiles)

    def _dingtalk(
        self, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[dict[str, Any], str, tuple[str, ...]]:
        secrets = self.shared.secrets
        if query.get("access_token") != secrets.dingtalk_token:
            return {"errcode": 300001, "errmsg": "token is not exist"}, "", ()
        timestamp = query.get("timestamp", "")
        # parse_qs undid the urlEncode: what is left is the Base64 of the MAC.
        expected = _b64_hmac(
            secrets.dingtalk_secret.encode(), f"{timestamp}\n{secrets.dingtalk_secret}".encode()
        )
        fresh = timestamp.isdigit() and abs(int(timestamp) / 1000 - self.shared.wall()) < HOUR_S
        if not fresh or not hmac.compare_digest(query.get("sign", ""), expected):
            return {"errcode": 310000, "errmsg": "sign not match"}, "", ()
        text = body.get("text") if body.get("msgtype") == "text" else None
        content = text.get("content") if isinstance(text, dict) else None
        at = body.get("at", {})
        mobiles = at.get("atMobiles", []) if isinstance(at, dict) else []
        if not isinstance(content, str) or not content:
            return {"errcode": 40035, "errmsg": "missing content"}, "", ()
        if not isinstance(mobiles, list) or not all(isinstance(m, str) for m in mobiles):
            return {"errcode": 40035, "errmsg": "invalid atMobiles"}, content, ()
        return {"errcode": 0, "errmsg": "ok"}, content, tuple(mobiles)

    def _feishu(
        self, key: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], str, tuple[str, ...]]:
        secrets = self.shared.secrets
        if key != secrets.feishu_key:
            invalid = "param invalid: incoming webhook access token invalid"
            return {"code": 19001, "msg": invalid}, "", ()
        if secrets.feishu_secret is not None:
            timestamp = body.get("timestamp")
            stamp = timestamp if isinstance(timestamp, str) else ""
            expected = _b64_hmac(f"{stamp}\n{secrets.feishu_secret}".encode(), b"")
            sign = body.get("sign")
            fresh = stamp.isdigit() and abs(int(stamp) - self.shared.wall()) < HOUR_S
            if not fresh or not isinstance(sign, str) or not hmac.compare_digest(sign, expected):
                return {
                    "code": 19021,
                    "msg": "sign match fail or timestamp is not within one hour from current time",
                }, "", ()  # fmt: skip
        content = body.get("content") if body.get("msg_type") == "text" else None
        text = content.get("text") if isinstance(content, dict) else None
        if not isinstance(text, str) or not text:
            return {"code": 9499, "msg": "Bad Request"}, "", ()
        mentions = tuple(_feishu_mentions(text))
        return {"code": 0, "msg": "success", "data": {}}, text, mentions

    def _answer(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _feishu_mentions(text: str) -> list[str]:
    """The user ids of ``<at user_id="…">name</at>`` in a Feishu text."""
    found = []
    rest = text
    marker = '<at user_id="'
    while (start := rest.find(marker)) >= 0:
        rest = rest[start + len(marker) :]
        end = rest.find('"')
        if end < 0:
            break
        found.append(rest[:end])
        rest = rest[end:]
    return found


def _shown(got: Received) -> str:
    """A message as the demo prints it: the robot, whom it mentions, its first lines."""
    lines = [line for line in got.text.splitlines() if line.strip()]
    head = " / ".join(lines[:2]) if lines else "(empty)"
    who = f"  @{' @'.join(got.mentions)}" if got.mentions else ""
    verdict = "" if got.ok else f"  REFUSED {got.answer}"
    return f"  notify  {got.robot:<8} {head}{who}{verdict}\n"


@dataclass(frozen=True)
class Mail:
    """A mail the SMTP server took: the envelope and the message as it came."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    login: str | None  # the user it authenticated as, if it did
    tls: bool  # it came over TLS (STARTTLS or implicit)


class MailReceiver:
    """An SMTP server (aiosmtpd, in its own thread) that keeps every mail. With ``tls`` (a
    server context) it speaks STARTTLS, and requires it, or with ``implicit_tls`` TLS from
    the first byte. With ``username``/``password`` it asks for AUTH LOGIN/PLAIN: required
    after STARTTLS, offered otherwise (aiosmtpd warns against requiring it without).
    Each mail says who logged in and whether it came over TLS."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        out: Callable[[str], object] | None = None,
    ) -> None:
        # Imported here: aiosmtpd is a development extra, needed by the demo and the tests.
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self._out = out
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                data = envelope.original_content or b""
                auth = session.auth_data
                login = auth.decode() if isinstance(auth, bytes) else auth
                mail = Mail(
                    str(envelope.mail_from),
                    tuple(envelope.rcpt_tos),
                    bytes(data),
                    login,
                    # STARTTLS sets the session's ssl; implicit TLS only its transport's.
                    session.ssl is not None
                    or server.transport.get_extra_info("ssl_object") is not None,
                )
                with receiver._lock:
                    receiver.mails.append(mail)
                if receiver._out is not None:
                    receiver._out(_shown_mail(mail))
                return "250 Message accepted for delivery"

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> Any:
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == username
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok, auth_data=auth_data.login if ok else None)

        if port == 0:
            port = _free_port(host)
        kwargs: dict[str, Any] = {}
        if tls is not None and implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs |= {"tls_context": tls, "require_starttls": True}
        if username is not None:
            kwargs["authenticator"] = authenticate
            if tls is not None and not implicit_tls:
                kwargs["auth_required"] = True
            else:
                # aiosmtpd knows TLS only by STARTTLS: on implicit TLS (as on plain text)
                # AUTH is offered, not required (it warns against requiring it there).
                kwargs["auth_require_tls"] = False
        self._controller = Controller(Handler(), hostname=host, port=port, **kwargs)
        self.host = host
        self.port = port

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailReceiver:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _shown_mail(mail: Mail) -> str:
    from email import message_from_bytes, policy

    message = message_from_bytes(mail.data, policy=policy.default)
    return f"  notify  {'mail':<8} {message['Subject']}  to {', '.join(mail.recipients)}\n"


def main() -> None:
    """``python -m simulators.notify_receiver [--port P] [--smtp-port S]``: the robots'
    webhooks (with :data:`DEMO_SECRETS`) and an SMTP server, each message written out."""
    import argparse

    parser = argparse.ArgumentParser(description="a local receiver of alarm notifications")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--smtp-port", type=int, default=8025)
    args = parser.parse_args()

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    robots = NotifyReceiver(host=args.host, port=args.port, out=write)
    mail = MailReceiver(host=args.host, port=args.smtp_port, out=write)
    with robots, mail:
        write(f"robots on {robots.url}, SMTP on {args.host}:{args.smtp_port}; Ctrl-C stops\n")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
