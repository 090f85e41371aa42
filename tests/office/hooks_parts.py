"""The webhooks' tests' parts: a real HTTP receiver (Starlette on uvicorn, loopback) that
checks each signature by the documented formula, a standing clock, events as a gateway
sends them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud_sync.contract import Envelope
from office.app import serve_http
from office.hooks import HookSpec
from tests.office.conftest import now

SECRET = "s3cret-of-the-receiver"
L3, L4, L5 = "hz01/line3", "hz01/line4", "hz01/line5"


class Clock:
    def __init__(self) -> None:
        self.at = now()

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def signature_ok(secret: str, header: str, body: bytes) -> bool:
    """README: ``X-Linegate-Signature: t=<unix s>,v1=hex(HMAC-SHA256(secret, "<t>." + body))``."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


@dataclass
class Received:
    key: str
    event: str
    attempt: int
    t: int
    status: int  # what the receiver answered; 0: it hung past the sender's deadline
    body: dict[str, Any]


@dataclass
class Receiver:
    """Answers each POST by ``script`` (a status by call index, or "hang"; then 200)."""

    secret: str = SECRET
    script: list[int | str] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        signature = request.headers["x-linegate-signature"]
        if not signature_ok(self.secret, signature, body):
            self.bad_signatures += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        calls = len(self.got)
        step = self.script[calls] if calls < len(self.script) else 200
        status = 0 if step == "hang" else int(step)
        self.got.append(
            Received(
                request.headers["idempotency-key"],
                request.headers["x-linegate-event"],
                int(request.headers["x-linegate-attempt"]),
                int(signature.split(",")[0].removeprefix("t=")),
                status,
                json.loads(body),
            )
        )
        self.arrived.set()
        if step == "hang":
            await asyncio.sleep(2)  # past the sender's deadline
            return JSONResponse({"ok": True})
        return JSONResponse({"status": status}, status_code=status)

    async def wait_for(self, count: int) -> None:
        while len(self.got) < count:
            self.arrived.clear()
            await self.arrived.wait()

    def taken(self) -> list[str]:
        """The keys answered 2xx, in the order they came."""
        return [r.key for r in self.got if 200 <= r.status < 300]


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    async with serve_http(app, "127.0.0.1", 0) as url:
        receiver.url = f"{url}/hook"
        yield receiver


def hook(url: str, events: set[str], **kw: Any) -> HookSpec:
    return HookSpec(
        name=kw.pop("name", "wms"), url=url, secret=SECRET, events=frozenset(events), **kw
    )


def event(
    seq: int, type_: str, gateway_id: str = L3, order_id: str | None = None, **data: Any
) -> tuple[Envelope, str]:
    d = {
        "v": 1, "gateway_id": gateway_id, "seq": seq, "event_id": f"{gateway_id}:{seq}",
        "ts": "2026-11-11T02:00:00.000+00:00", "type": type_, "order_id": order_id,
        "data": data, "x_extra": "kept",
    }  # fmt: skip
    return Envelope.model_validate(d), json.dumps(d)


def requested(seq: int, gateway_id: str = L3, revision: int = 1) -> tuple[Envelope, str]:
    return event(
        seq, "material.requested", gateway_id, None,
        request_id=f"PR-{seq}", revision=revision, material="CARTON-M", qty=2, uom="pcs",
        lot=None, deliver_to="pack-1", need_by="2026-11-11T03:00:00+00:00", orders=["SO-1"],
    )  # fmt: skip


async def drain(send: Callable[[], Any], rounds: int = 50) -> int:
    """Send rounds until one sends nothing; how many attempts in all."""
    total = 0
    for _ in range(rounds):
        made = int(await send())
        if made == 0:
            return total
        total += made
    raise AssertionError("the outbox did not drain")
