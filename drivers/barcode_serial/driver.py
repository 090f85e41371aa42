"""The serial barcode scanner: pyserial opens and sets up the port, the event loop reads it.

The port is opened non-blocking (``timeout=0``) and read from a ``loop.add_reader``
callback that only moves bytes into a queue; ``run`` frames them and hands each code to
``on_scan``, so a failing sink surfaces in ``run`` rather than in a loop callback.
Unplugging shows up as a read error or a read of nothing from a "readable" port
(pyserial#331, reproduced on a pty: research §3.6); the reader is removed at once so a
dead fd cannot spin the loop, and ``run`` raises DeviceUnavailable. ``connect`` opens the
configured path again, so a by-id symlink that udev re-creates on re-plug just works.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import logging
import os
import stat
import termios
from pathlib import Path
from typing import Any, ClassVar

import serial

from drivers.aim import code_preview, normalise_scan
from drivers.barcode_serial.config import SerialScannerConfig
from drivers.barcode_serial.framing import FrameDecoder
from drivers.base import DeviceRejected, DeviceUnavailable, ScannedCode, ScanSink

__all__ = ["SerialScanner"]

logger = logging.getLogger(__name__)

_READ_SIZE = 4096
_LAST_CODES = 10


@dataclasses.dataclass
class _Counters:
    connects: int = 0
    codes: int = 0
    bytes: int = 0
    decode_errors: int = 0  # codes that were not valid UTF-8 (delivered with U+FFFD)
    aim_missing: int = 0  # codes without an AIM identifier although aim_ids is set


class SerialScanner:
    """Reads codes from a serial scanner and hands each to ``on_scan``.

    Args:
        name: ``station/device``, as in logs and alarms.
        config: the ``[devices.NAME]`` table.
        on_scan: called with every complete code; must not block.
    """

    kind: ClassVar[str] = "barcode_serial"

    def __init__(self, name: str, config: SerialScannerConfig, on_scan: ScanSink) -> None:
        self._name = name
        self._config = config
        self._on_scan = on_scan
        self._port: serial.Serial | None = None
        self._reader_fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Filled by the reader callback: a chunk of bytes, or None once the link is lost.
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._lost: str | None = None
        self._framer = self._new_framer()
        self._counters = _Counters()
        self._last_codes: collections.deque[str] = collections.deque(maxlen=_LAST_CODES)
        self._device_path = ""

    @property
    def name(self) -> str:
        return self._name

    async def connect(self) -> None:
        """Open the port; DeviceUnavailable while it is absent, DeviceRejected if it is
        not a serial device."""
        await self.close()
        # Nothing here is awaited: pyserial opens O_NONBLOCK and sets termios, and neither
        # waits on the device (a scanner has no handshake to time out).
        port = self._open()
        loop = asyncio.get_running_loop()
        self._port = port
        self._loop = loop
        self._chunks = asyncio.Queue()
        self._lost = None
        self._framer = self._new_framer()
        self._reader_fd = port.fileno()
        loop.add_reader(self._reader_fd, self._on_readable)
        self._counters.connects += 1
        logger.debug("%s: opened %s (%s)", self._name, self._config.port, self._device_path)

    async def run(self) -> None:
        """Frame and deliver codes until cancelled; raise DeviceUnavailable on unplug."""
        if self._port is None:
            raise DeviceUnavailable(f"{self._name}: not connected")
        while True:
            chunk = await self._next_chunk()
            if chunk is None:
                if self._lost is not None:
                    raise DeviceUnavailable(f"{self._name}: {self._lost}")
                continue
            self._deliver(chunk)

    async def close(self) -> None:
        """Stop reading and close the port; safe to call twice or before connect."""
        self._remove_reader()
        port, self._port = self._port, None
        if port is not None:
            # Closing a port whose device is gone may fail (termios EIO, pyserial#417):
            # it is being thrown away either way.
            with contextlib.suppress(OSError, serial.SerialException):
                port.close()

    def diagnostics(self) -> dict[str, Any]:
        return {
            "port": self._config.port,
            "device": self._device_path,
            "connected": self._port is not None and self._lost is None,
            "reading": self._reader_fd is not None,
            "last_error": self._lost,
            **dataclasses.asdict(self._counters),
            **dataclasses.asdict(self._framer.counters),
            "last_codes": list(self._last_codes),
        }

    def _new_framer(self) -> FrameDecoder:
        cfg = self._config
        return FrameDecoder(
            prefix=cfg.prefix.encode(),
            suffix=cfg.suffix.encode(),
            line_end=cfg.line_end,
            max_length=cfg.max_length,
        )

    def _open(self) -> serial.Serial:
        cfg = self._config
        try:
            mode = Path(cfg.port).stat().st_mode  # follows the by-id symlink
        except FileNotFoundError:
            raise DeviceUnavailable(f"{self._name}: {cfg.port} is absent (unplugged?)") from None
        except OSError as exc:
            raise DeviceUnavailable(f"{self._name}: {cfg.port}: {exc.strerror}") from None
        if not stat.S_ISCHR(mode):
            raise DeviceRejected(f"{self._name}: {cfg.port} is not a serial device (not a tty)")
        self._device_path = os.path.realpath(cfg.port)
        try:
            return serial.Serial(
                port=cfg.port,
                baudrate=cfg.baudrate,
                bytesize=cfg.bytesize,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                timeout=0,
                # Two readers on one port each get half the bytes ("multiple access on
                # port", pyserial#331): refuse a second one instead.
                exclusive=True,
            )
        except serial.SerialException as exc:
            context = exc.__context__
            if isinstance(context, termios.error) and context.args[0] == errno.ENOTTY:
                raise DeviceRejected(
                    f"{self._name}: {cfg.port} is a device but not a serial port"
                ) from None
            raise DeviceUnavailable(f"{self._name}: {exc}") from None

    def _on_readable(self) -> None:
        port = self._port
        if port is None:
            return
        try:
            data = port.read(_READ_SIZE)
        except (serial.SerialException, OSError) as exc:
            # EIO, or "readiness to read but returned no data": the device is gone.
            self._link_lost(str(exc))
            return
        if data:
            self._chunks.put_nowait(data)

    def _link_lost(self, why: str) -> None:
        self._remove_reader()
        self._lost = why
        self._chunks.put_nowait(None)
        logger.debug("%s: link lost: %s", self._name, why)

    def _remove_reader(self) -> None:
        if self._reader_fd is not None and self._loop is not None:
            self._loop.remove_reader(self._reader_fd)
        self._reader_fd = None

    async def _next_chunk(self) -> bytes | None:
        """The next chunk, or None for "link lost" or "partial code timed out"."""
        if not self._framer.pending:
            return await self._chunks.get()
        try:
            async with asyncio.timeout(self._config.partial_timeout_s):
                return await self._chunks.get()
        except TimeoutError:
            dropped = self._framer.drop_partial()
            if dropped:
                logger.info(
                    "%s: dropped a partial code (%d bytes, no suffix within %.1f s)",
                    self._name,
                    dropped,
                    self._config.partial_timeout_s,
                )
            return None

    def _deliver(self, chunk: bytes) -> None:
        cfg = self._config
        self._counters.bytes += len(chunk)
        for data in self._framer.feed(chunk):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self._counters.decode_errors += 1
                text = data.decode("utf-8", errors="replace")
            code: ScannedCode = normalise_scan(
                text, aim_ids=cfg.aim_ids, gs_substitute=cfg.gs_substitute
            )
            if cfg.aim_ids and code.symbology is None:
                self._counters.aim_missing += 1
            self._counters.codes += 1
            self._last_codes.append(code_preview(text))
            self._on_scan(code)
