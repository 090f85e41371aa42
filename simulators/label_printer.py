"""A simulated ZPL label printer: TCP port 9100 (or a pty for a serial printer) that parses
what it receives, keeps every label it prints, and answers host status (~HS).

It reads the stream the way a printer does (``drivers.label_printer.zpl``): ``~``
commands act at once, formats go into the receive buffer and print one after another,
``^CI28`` and ``^FH`` decode field data. Each printed label is kept in ``labels`` with its
job id, text fields, barcodes and raw ZPL, so a test can see exactly what would be on it.

Device faults: ``paper_out``, ``head_open`` and ``pause`` show in ~HS and hold printing;
formats received meanwhile stay in the buffer and print once the printer is ready again,
as on a real printer, unless ``~JA`` cancels them. Link faults (``faults``: drop, delay,
garble) apply to ~HS replies, the only thing a printer answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from drivers.label_printer.config import LabelPrinterConfig, PrinterAddress
from drivers.label_printer.status import HostStatus, format_host_status
from drivers.label_printer.zpl import Command, PrintedLabel, ZplFormat, ZplReader, read_label
from simulators.faults import Faults

__all__ = ["SimulatedPrinter"]

log = logging.getLogger(__name__)

_READ_SIZE = 4096
_LABEL_LENGTH_DOTS = 1218  # 6 in at 203 dpi, as the templates set with ^LL
_COMMUNICATION_SETTINGS = 0b0001_1110  # ~HS "aaa": Xon/Xoff, no parity, 1 stop, 8 data bits, 9600

Send = Callable[[bytes], None]
Handle = Callable[[Command | ZplFormat, Send], Awaitable[None]]


class SimulatedPrinter:
    """A ZPL printer at the address of ``config.url``; port 0 picks a free port."""

    def __init__(
        self,
        name: str,
        config: LabelPrinterConfig,
        *,
        faults: Faults | None = None,
        print_time_s: float = 0.05,
    ) -> None:
        self._name = name
        self._config = config
        self._address: PrinterAddress = config.address
        self.faults = faults if faults is not None else Faults()
        self._print_time_s = print_time_s
        # Printed labels in order, every ~ command received, the receive buffer.
        self.labels: list[PrintedLabel] = []
        self.controls: list[str] = []
        self._buffer: list[PrintedLabel] = []
        self._formats_cancelled = 0
        self._paper_out = False
        self._head_open = False
        self._paused = False
        # ^CI persists from one format to the next, as on a printer, until power off.
        self._utf8 = False
        self._readers: set[ZplReader] = set()
        self._port = self._address.port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._pty: _Pty | None = None
        self._printing: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # --- SimulatedDevice ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def port(self) -> int:
        """The TCP port listened on (the real one once started, when the config said 0)."""
        return self._port

    @property
    def url(self) -> str:
        """The url a driver connects to (the actual port for TCP)."""
        if self._address.transport == "tcp":
            return f"tcp://{self._address.host}:{self._port}"
        return self._config.url

    async def start(self) -> None:
        """Power on: listen (the same port again after a stop), or create the pty."""
        if self._printing is not None:
            return
        if self._address.transport == "tcp":
            self._server = await asyncio.start_server(
                self._serve_tcp, self._address.host, self._port
            )
            self._port = self._server.sockets[0].getsockname()[1]
        else:
            self._pty = self._open_pty(Path(self._address.path))
        self._printing = asyncio.create_task(self._print_loop(), name=f"{self._name} printing")
        log.info("%s: simulated printer at %s", self._name, self.url)

    async def stop(self) -> None:
        """Power off: connections drop, the receive buffer is lost; safe to call twice."""
        if self._printing is None:
            return
        printing, self._printing = self._printing, None
        printing.cancel()
        await asyncio.wait({printing})
        if self._server is not None:
            self._server.close()
        await self.disconnect()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await self._close_pty()
        self._buffer.clear()
        self._readers.clear()
        self._utf8 = False

    async def disconnect(self) -> None:
        """Drop the connections (a cable blip) but stay on; a pty is re-created."""
        for writer in list(self._connections):
            writer.transport.abort()
        handlers = list(self._handlers)
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        if self._pty is not None and self._printing is not None:
            path = self._pty.path
            await self._close_pty()
            self._pty = self._open_pty(path)

    def status(self) -> dict[str, Any]:
        hs = self.host_status()
        return {
            "url": self.url,
            "running": self._printing is not None,
            "connections": len(self._connections),
            "problem": hs.problem,
            "paper_out": self._paper_out,
            "head_open": self._head_open,
            "paused": self._paused,
            "formats_in_buffer": hs.formats_in_buffer,
            "labels_printed": len(self.labels),
            "formats_cancelled": self._formats_cancelled,
            "last_job_id": self.labels[-1].job_id if self.labels else None,
            "controls_received": len(self.controls),
            "faults": self.faults.as_dict(),
        }

    # --- device faults ------------------------------------------------------------------

    def paper_out(self, out: bool = True) -> None:
        """Run out of labels (True) or load a new roll (False)."""
        self._paper_out = out
        self._wake.set()

    def head_open(self, open_: bool = True) -> None:
        self._head_open = open_
        self._wake.set()

    def pause(self, paused: bool = True) -> None:
        """The operator pressed PAUSE (True) or resumed (False)."""
        self._paused = paused
        self._wake.set()

    def host_status(self) -> HostStatus:
        """What ~HS would answer now."""
        return HostStatus(
            paper_out=self._paper_out,
            paused=self._paused,
            head_open=self._head_open,
            partial_format=any(reader.in_format for reader in self._readers),
            formats_in_buffer=len(self._buffer),
            labels_remaining=sum(label.quantity for label in self._buffer),
            label_length_dots=_LABEL_LENGTH_DOTS,
            communication_settings=_COMMUNICATION_SETTINGS,
            print_mode=2,  # tear-off
        )

    @property
    def held(self) -> list[PrintedLabel]:
        """Formats received and not printed yet (the receive buffer)."""
        return list(self._buffer)

    # --- the printer --------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._connections.add(writer)
        zpl = ZplReader()
        self._readers.add(zpl)

        def send(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        try:
            while data := await reader.read(_READ_SIZE):
                for item in zpl.feed(data):
                    await self._handle(item, send)
        except OSError:
            pass  # the host went away: as good as a close
        finally:
            self._readers.discard(zpl)
            self._connections.discard(writer)
            self._handlers.discard(task)
            writer.transport.abort()

    def _open_pty(self, path: Path) -> _Pty:
        zpl = ZplReader()
        self._readers.add(zpl)
        return _Pty.create(path, zpl, self._handle)

    async def _close_pty(self) -> None:
        if self._pty is not None:
            pty, self._pty = self._pty, None
            self._readers.discard(pty.reader)
            await pty.close()

    async def _handle(self, item: Command | ZplFormat, send: Send) -> None:
        if isinstance(item, ZplFormat):
            label, self._utf8 = read_label(item, utf8=self._utf8)
            self._buffer.append(label)
            self._wake.set()
            return
        self.controls.append(item.code)
        if item.code == "~HS":
            await self._answer_host_status(send)
        elif item.code == "~JA":
            self._formats_cancelled += len(self._buffer)
            self._buffer.clear()
        elif item.code in ("~PP", "~PS"):
            self.pause(item.code == "~PP")

    async def _answer_host_status(self, send: Send) -> None:
        if self.faults.should_drop():
            return
        await self.faults.delay()
        reply = format_host_status(self.host_status())
        if self.faults.should_garble():
            reply = self.faults.garble_bytes(reply)
        send(reply)

    def _ready(self) -> bool:
        return self.host_status().problem is None

    async def _print_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer and self._ready():
                await asyncio.sleep(self._print_time_s)
                # Paper may have run out, or ~JA cleared the buffer, while it printed.
                if self._buffer and self._ready():
                    self.labels.append(self._buffer.pop(0))


class _Pty:
    """The printer's end of a serial line: a pty whose other end is reached by a symlink at
    the configured path, as a /dev/serial/by-id name points at a tty."""

    def __init__(
        self, path: Path, reader: ZplReader, master: int, slave: int, pump: asyncio.Task[None]
    ) -> None:
        self.path = path
        self.reader = reader
        self._master = master
        self._slave = slave
        self._task = pump

    @classmethod
    def create(cls, path: Path, reader: ZplReader, handle: Handle) -> _Pty:
        master, slave = os.openpty()
        # Raw from the start: a cooked pty would echo and translate CR before the host
        # opens it. The printer holds the slave open too, so the master never sees EIO
        # while no host is connected.
        tty.setraw(slave)
        os.set_blocking(master, False)
        if path.is_symlink():
            path.unlink()
        path.symlink_to(os.ttyname(slave))
        pump = asyncio.create_task(cls._pump(master, reader, handle), name=f"pty {path}")
        return cls(path, reader, master, slave, pump)

    @staticmethod
    async def _pump(master: int, zpl: ZplReader, handle: Handle) -> None:
        loop = asyncio.get_running_loop()

        def send(data: bytes) -> None:
            # Nobody reading and the line's buffer full: the bytes are lost, as on a wire.
            with contextlib.suppress(BlockingIOError):
                os.write(master, data)

        while True:
            readable: asyncio.Future[None] = loop.create_future()

            def wake(ready: asyncio.Future[None] = readable) -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(master, wake)
            try:
                await readable
            finally:
                loop.remove_reader(master)
            try:
                data = os.read(master, _READ_SIZE)
            except BlockingIOError:
                continue
            for item in zpl.feed(data):
                await handle(item, send)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.wait({self._task})
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
