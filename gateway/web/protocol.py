"""uvicorn's HTTP/1.1 protocol (h11) with a deadline on every request's head.

uvicorn bounds only the idle wait between two requests of a kept-alive connection
(``timeout_keep_alive``, armed after an answer). A connection opened and left silent is
never closed, and any byte received cancels that timer, so a client that trickles a
request's head a byte at a time holds its connection as long as it likes (slowloris);
uvicorn (0.55) has no setting against it, and an ASGI middleware sees a request only once
its head is complete. So here the head must be complete within :data:`HEAD_TIMEOUT_S` of
the connection being opened, or of its first byte on a kept-alive connection (the idle
wait before it stays uvicorn's), or the connection is closed. The body has its own
deadline in :class:`gateway.web.limits.BodyGuard`, where the app can still answer.

The gateway names this class as uvicorn's protocol, so uvicorn never picks httptools
instead (its ``auto`` choice when httptools happens to be installed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from gateway.web.answers import refusal_bytes
from gateway.web.limits import HEAD_TIMEOUT_S

__all__ = ["StationHttp"]

logger = logging.getLogger(__name__)


class StationHttp(H11Protocol):
    """One client connection of the station API."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        # The first byte of a head on a kept-alive connection starts its clock.
        self._await_head()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_deadline()  # the head is complete: the body is BodyGuard's

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot read (a malformed request line or header, a head over
        MAX_HEAD_BYTES) is answered in the API's shape, not in uvicorn's plain text."""
        body = refusal_bytes(
            "BAD_REQUEST",
            "The request is not valid HTTP/1.1, or its head is too long.",
            "Nothing was recorded. Check the terminal's software.",
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()

    def _await_head(self) -> None:
        if (
            self._head_deadline is None
            and self.conn.their_state is h11.IDLE
            and not self.transport.is_closing()
        ):
            self._head_deadline = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _cancel_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # No request yet, so no answer (h11 sends none before a request): just close.
            logger.info(
                "closed a connection from %s: no complete request head within %g s",
                self.client,
                HEAD_TIMEOUT_S,
            )
            self.transport.close()
