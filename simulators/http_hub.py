"""An HTTP hub as the contract describes it (hub-protocol.md, "HTTP"), with faults on demand.

``POST /v1/gateways/{site}/{line}/events`` takes a JSON array of envelopes and answers
``{"acked_through": N}``, the highest seq below which it holds every event; it keeps each
seq once (a repeat counts as a duplicate, as a real hub's dedup by seq would see it).
``GET .../orders?after=CURSOR`` hands out the orders queued with :meth:`HttpHub.add_orders`,
``GET .../masterdata`` the documents set with :meth:`HttpHub.set_masterdata`. Requests
without the bearer token get 401.

Faults for the next requests to the events endpoint (:meth:`HttpHub.fail`):
``"500"``, ``"503"`` and ``"429"`` (with Retry-After), ``"timeout"`` (the events are stored,
then the answer comes too late for the client), ``"truncated"`` (the answer's JSON is cut
off), ``"refuse"`` (400: a refusal no retry can fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["HttpHub", "serve_http_hub"]

JsonDict = dict[str, Any]


@dataclass
class HttpHub:
    """The hub's state: what it holds, what it saw, what it will do next."""

    site: str
    line: str
    token: str | None = None
    retry_after_s: int = 1
    slow_s: float = 3.0  # how late a "timeout" answer comes
    events: dict[int, JsonDict] = field(default_factory=dict)
    duplicates: int = 0
    posts: int = 0
    idempotency_keys: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    faults: deque[str] = field(default_factory=deque)
    orders: list[JsonDict] = field(default_factory=list)
    masterdata: list[JsonDict] = field(default_factory=list)
    order_polls: int = 0
    # False: a hub that keeps only events that follow on from what it holds (the contract
    # allows out-of-order delivery; such a hub makes the gateway send the rest again).
    keeps_ahead: bool = True
    # For benchmarks: events whose data carries "committed_at" (epoch seconds) get their
    # commit-to-hub latency recorded, in milliseconds.
    live_ms: list[float] = field(default_factory=list)

    def fail(self, *faults: str) -> None:
        self.faults.extend(faults)

    def add_orders(self, *orders: JsonDict) -> None:
        self.orders.extend(orders)

    def set_masterdata(self, *docs: JsonDict) -> None:
        self.masterdata = list(docs)

    _through: int = 0  # every seq up to this is held (advanced as events come)

    @property
    def acked_through(self) -> int:
        while self._through + 1 in self.events:
            self._through += 1
        return self._through

    def missing(self, through: int) -> list[int]:
        return [seq for seq in range(1, through + 1) if seq not in self.events]

    # -- the endpoints ---------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        return self.token is None or request.headers.get("authorization") == f"Bearer {self.token}"

    async def _events(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._answer(JSONResponse({"error": "unauthorised"}, status_code=401))
        self.posts += 1
        self.idempotency_keys[request.headers.get("idempotency-key", "")] += 1
        fault = self.faults.popleft() if self.faults else None
        if fault in ("500", "503", "429"):
            headers = {"Retry-After": str(self.retry_after_s)} if fault != "500" else {}
            return self._answer(Response(b"busy", status_code=int(fault), headers=headers))
        if fault == "refuse":
            return self._answer(JSONResponse({"error": "schema"}, status_code=400))
        try:
            batch = json.loads(await request.body())
        except json.JSONDecodeError:
            return self._answer(JSONResponse({"error": "not JSON"}, status_code=400))
        envelopes = batch if isinstance(batch, list) else [batch]
        for envelope in sorted(envelopes, key=lambda e: int(e["seq"])):
            seq = int(envelope["seq"])
            if seq in self.events:
                self.duplicates += 1
            elif self.keeps_ahead or seq == self.acked_through + 1:
                self.events[seq] = envelope
                committed = envelope.get("data", {}).get("committed_at")
                if isinstance(committed, float):
                    self.live_ms.append((time.time() - committed) * 1000)
        if fault == "timeout":
            await asyncio.sleep(self.slow_s)  # held, but the client gave up waiting
        body = json.dumps({"acked_through": self.acked_through}).encode()
        if fault == "truncated":
            body = body[: len(body) // 2]
        return self._answer(Response(body, media_type="application/json"))

    async def _orders(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._answer(JSONResponse({"error": "unauthorised"}, status_code=401))
        self.order_polls += 1
        after = int(request.query_params.get("after") or 0)
        page = self.orders[after : after + 100]
        return self._answer(JSONResponse({"orders": page, "cursor": str(after + len(page))}))

    async def _stats(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "held": len(self.events),
                "acked_through": self.acked_through,
                "duplicates": self.duplicates,
                "posts": self.posts,
                "live_ms": self.live_ms,
            }
        )

    async def _masterdata(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._answer(JSONResponse({"error": "unauthorised"}, status_code=401))
        return self._answer(JSONResponse(self.masterdata))

    def _answer(self, response: Response) -> Response:
        self.statuses[response.status_code] += 1
        return response

    def app(self) -> Starlette:
        root = f"/v1/gateways/{self.site}/{self.line}"
        return Starlette(
            routes=[
                Route(f"{root}/events", self._events, methods=["POST"]),
                Route(f"{root}/orders", self._orders, methods=["GET"]),
                Route(f"{root}/masterdata", self._masterdata, methods=["GET"]),
                Route(f"{root}/stats", self._stats, methods=["GET"]),
            ]
        )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # the caller owns signals
        yield


@contextlib.asynccontextmanager
async def serve_http_hub(hub: HttpHub, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``hub`` on a free port of ``host`` in this loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(hub.app(), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task
        sock.close()


def main() -> None:
    """``python -m simulators.http_hub --port P``: serve an HTTP hub until stopped."""
    import argparse

    parser = argparse.ArgumentParser(description="an HTTP hub for linegate (no faults)")
    parser.add_argument("--site", default="hz01")
    parser.add_argument("--line", default="line3")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--token")
    args = parser.parse_args()
    hub = HttpHub(args.site, args.line, token=args.token)
    uvicorn.run(hub.app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
