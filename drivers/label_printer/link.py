"""The byte stream to a printer: a TCP connection to port 9100, or a serial line.

Both give the driver the same three calls. Timeouts are the caller's (it wraps each
exchange in ``asyncio.timeout``); a lost link shows as ``ConnectionError`` from ``read`` or
``write``, whatever the operating system called it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from typing import Protocol

import serial

from drivers.label_printer.config import PrinterAddress

__all__ = ["ByteLink", "SerialLink", "TcpLink", "open_link"]

_READ_SIZE = 4096


class ByteLink(Protocol):
    async def read(self) -> bytes:
        """The next bytes the printer sent; raise ConnectionError when the link is gone."""
        ...

    async def write(self, data: bytes) -> None:
        """Send all of data; raise ConnectionError when the link is gone."""
        ...

    async def close(self) -> None:
        """Release the link; safe to call twice."""
        ...


async def open_link(address: PrinterAddress, *, baudrate: int) -> ByteLink:
    """Open the link (the caller bounds it with a timeout); OSError if it cannot be opened."""
    if address.transport == "tcp":
        reader, writer = await asyncio.open_connection(address.host, address.port)
        return TcpLink(reader, writer)
    return SerialLink.open(address.path, baudrate=baudrate)


class TcpLink:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        data = await self._reader.read(_READ_SIZE)
        if not data:
            raise ConnectionResetError("the printer closed the connection")
        return data

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionResetError("the connection to the printer is closed")
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer.is_closing():
            return
        self._writer.close()
        # The caller bounds this wait: a peer that vanished can leave it hanging, and
        # close() has released the socket already.
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class SerialLink:
    """A serial port driven from the event loop: pyserial sets the line up (raw mode,
    speed, exclusive lock); reads and writes go to its file descriptor directly."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port
        self._fd: int = port.fileno()

    @classmethod
    def open(cls, path: str, *, baudrate: int) -> SerialLink:
        try:
            port = serial.Serial(path, baudrate=baudrate, timeout=0, exclusive=True)
        except serial.SerialException as exc:
            raise ConnectionRefusedError(f"cannot open {path}: {exc}") from exc
        # Bytes left from before (a reply to an earlier session) must not be read as the
        # answer to this session's first request.
        port.reset_input_buffer()
        return cls(port)

    async def read(self) -> bytes:
        while True:
            await self._wait(readable=True)
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:
                # EIO when the other end of a pty or a USB adapter is gone.
                raise ConnectionResetError(f"serial line lost: {exc}") from exc
            if not data:
                # Readable with nothing to read: the device is gone (pyserial#331).
                raise ConnectionResetError("serial device reports no data: unplugged?")
            return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self._fd, view)
            except BlockingIOError:
                await self._wait(readable=False)
                continue
            except OSError as exc:
                raise ConnectionResetError(f"serial line lost: {exc}") from exc
            view = view[sent:]

    async def close(self) -> None:
        if not self._port.is_open:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._fd)
        loop.remove_writer(self._fd)
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()

    async def _wait(self, *, readable: bool) -> None:
        if not self._port.is_open:
            raise ConnectionResetError("serial line closed")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        add, remove = (
            (loop.add_reader, loop.remove_reader)
            if readable
            else (loop.add_writer, loop.remove_writer)
        )
        try:
            add(self._fd, wake)
        except OSError as exc:
            if exc.errno in (errno.EBADF, errno.EINVAL):
                raise ConnectionResetError(f"serial line lost: {exc}") from exc
            raise
        try:
            await ready
        finally:
            remove(self._fd)
