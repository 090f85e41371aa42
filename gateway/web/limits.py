"""How much a client may send the station API, and how slowly.

The largest body a station legitimately sends is a few hundred bytes (a reason of at most
200 characters, a scan of at most 256). Without a limit, one 10 MB body cost the gateway
126 MB and froze every station for 0.66 s while it was parsed, on the one event loop.
So a body over :data:`MAX_BODY_BYTES` is refused before it is read (by its
``Content-Length``) or as soon as the count passes the limit (a chunked body); and a body
must arrive within :data:`BODY_TIMEOUT_S` (a route that takes a file, :data:`ROUTE_LIMITS`,
has larger limits of its own). The head has its limits in the HTTP protocol
(gateway/web/protocol.py), where uvicorn reads it before the app sees anything.

The numbers are constants, not settings of the line: they follow from what the routes
take, not from the line, and no line would need others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.web.answers import refusal_bytes

__all__ = [
    "BODY_TIMEOUT_S",
    "HEAD_TIMEOUT_S",
    "KEEP_ALIVE_S",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "ROUTE_LIMITS",
    "BodyGuard",
]

# The largest body a route takes is about 3 KiB even with every character written as a
# \u escape (a reason of 200 characters and a label id of 64); 16 KiB leaves room for any
# client's padding and still bounds what parsing one body can cost.
MAX_BODY_BYTES = 16 * 1024
# A request head still incomplete after this many bytes is refused (400): h11's own
# default, named here. A station's head is some 200 bytes.
MAX_HEAD_BYTES = 16 * 1024
# A station's request fits in one TCP segment: 5 s covers several retransmissions on a
# poor Wi-Fi link, and bounds how long a trickling client holds a connection.
HEAD_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 5.0
# How long a kept-alive connection may sit idle between requests (uvicorn's default).
KEEP_ALIVE_S = 5
# The one route that takes a file rather than an action: a line lead's forecast for the
# capacity check (gateway/web/capacity_routes.py), some 400 bytes an order, so 4 MiB is
# ten thousand orders; over a tablet's Wi-Fi it may take a while to arrive. Parsing it is
# the planning worker's, not the loop's. (path → (largest body, its deadline))
ROUTE_LIMITS: Mapping[str, tuple[int, float]] = MappingProxyType(
    {"/api/capacity": (4 * 1024 * 1024, 30.0)}
)


class BodyGuard:
    """ASGI middleware: every request's body is read here, whole, before the app runs,
    within :data:`BODY_TIMEOUT_S` and up to :data:`MAX_BODY_BYTES`; otherwise the answer
    is 413 ``BODY_TOO_LARGE`` or 408 ``TIMEOUT`` and the connection is closed (the rest
    of the body is not read). The app then gets the body from memory.

    Reading every body here, also for paths that take none, means no route or error
    answer can leave a body unread and unbounded behind it. (Starlette's own
    ``RequestBodyLimitMiddleware`` exists only in recent versions, keeps the connection
    open to a client still sending, answers in plain text and has no deadline.)
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        timeout_s: float = BODY_TIMEOUT_S,
        routes: Mapping[str, tuple[int, float]] = ROUTE_LIMITS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.routes = routes  # a path's own limits, where they differ

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, timeout_s = self.routes.get(scope["path"], (self.max_bytes, self.timeout_s))
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await self._too_large(send, max_bytes)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client is gone: nobody to answer
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > max_bytes:
                        break
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _close_with(
                send,
                408,
                "TIMEOUT",
                f"The request's body did not arrive within {timeout_s:g} s.",
                "Nothing was recorded. Check the terminal's network, then do it again.",
            )
            return
        if size > max_bytes:
            await self._too_large(send, max_bytes)
            return
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, send: Send, max_bytes: int) -> None:
        await _close_with(
            send,
            413,
            "BODY_TOO_LARGE",
            f"The request's body is over {max_bytes} bytes; no station action sends that much.",
            "Nothing was recorded. Send the action's fields only, as JSON.",
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's ``receive``: the body read by the guard, then the connection's own
    messages (a disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _close_with(send: Send, status: int, code: str, message: str, next_step: str) -> None:
    """Answer the refusal and have the server close the connection after it: whatever
    the client still sends is not read."""
    body = refusal_bytes(code, message, next_step)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _content_length(scope: Scope) -> int | None:
    """The declared length of the body; None for a chunked body. (The server has already
    refused a malformed or contradictory one.)"""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
