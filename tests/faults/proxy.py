"""A small TCP fault proxy on loopback, between the gateway and the broker (or the hub).

Modes, switched at any time: ``pass``; ``blackhole`` (the sockets stay open, no byte gets
through either way: a cable pulled behind a switch); ``hold_replies`` (bytes reach the
server, none come back: its acknowledgements are lost); ``reset`` (every connection is
aborted, and new ones too: a firewall sending RSTs); ``delay`` (each chunk waits
``delay_s``); ``throttle`` (at most ``rate_bps`` bytes per second each way).

:class:`ProxyThread` runs one in a thread of its own, for tests that are not async.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Literal

Mode = Literal["pass", "blackhole", "hold_replies", "reset", "delay", "throttle"]


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.mode: Mode = "pass"
        self.delay_s = 0.2
        self.rate_bps = 10_000
        self.connections = 0
        self._open = asyncio.Event()  # client → server
        self._open.set()
        self._replies = asyncio.Event()  # server → client
        self._replies.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def set(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "blackhole":
            self._open.clear()
        else:
            self._open.set()
        if mode in ("blackhole", "hold_replies"):
            self._replies.clear()
        else:
            self._replies.set()
        if mode == "reset":
            for writer in list(self._writers):
                writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.set("reset")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.mode == "reset":
                return
            self.connections += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(
                    self._pipe(reader, up_writer, self._open),
                    self._pipe(up_reader, writer, self._replies),
                )
            finally:
                up_writer.transport.abort()
                self._writers.discard(up_writer)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, gate: asyncio.Event
    ) -> None:
        try:
            while data := await source.read(65536):
                await gate.wait()  # held bytes wait here, the sockets stay open
                if self.mode == "delay":
                    await asyncio.sleep(self.delay_s)
                elif self.mode == "throttle":
                    for k in range(0, len(data), 1024):
                        started = time.monotonic()
                        sink.write(data[k : k + 1024])
                        await sink.drain()
                        await asyncio.sleep(
                            max(0.0, 1024 / self.rate_bps - (time.monotonic() - started))
                        )
                    continue
                sink.write(data)
                await sink.drain()
            sink.write_eof()
        except (OSError, RuntimeError):
            sink.transport.abort()


class ProxyThread:
    """A :class:`FaultProxy` on an event loop of its own thread."""

    def __init__(self, upstream_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy = FaultProxy(upstream_port)
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(5)

    @property
    def port(self) -> int:
        return self.proxy.port

    def set(self, mode: Mode) -> None:
        self._loop.call_soon_threadsafe(self.proxy.set, mode)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
