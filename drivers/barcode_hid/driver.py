"""The HID (keyboard-wedge) barcode scanner, read without an X server.

What ``config.path`` is decides how it is opened (``stat``):

* a character device: an evdev input device. evdev opens it, checks it has keys and
  grabs it (EVIOCGRAB) if configured, so scans are not typed into a console as well.
* a Unix stream socket: a peer that writes the same raw ``struct input_event`` records
  a device read returns. There is no /dev/uinput on CI machines (dependency probe §1),
  so this is how the simulator, in this process or another, feeds the real decoding path.
  (Not a FIFO: with a socket each connect is a fresh stream, as opening a device is, and
  the simulator sees its reader come and go.) Anything else is refused.

Either way the fd is read from a ``loop.add_reader`` callback with ``os.read`` and the
records are parsed by :mod:`drivers.barcode_hid.events`, so the path the tests drive is
the production one. (evdev's ``async_read_loop`` is not used: the partial-code timeout
would cancel its ``__anext__``, which leaves the reader registered; the next event read
is then set on the cancelled future, lost, with an error logged from a loop callback.)
On ENODEV, EOF or any read error the reader is removed at
once, since a dead evdev fd stays readable and would spin the loop (vocalinux#241), and
``run`` raises DeviceUnavailable. A grab does not survive an unplug (rdev#42): the next
``connect`` grabs the new device again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any, ClassVar, Literal

from drivers.aim import code_preview, normalise_scan
from drivers.barcode_hid.config import HidScannerConfig
from drivers.barcode_hid.decoder import KeyDecoder
from drivers.barcode_hid.events import EVENT_SIZE, EventStreamParser
from drivers.barcode_hid.keymaps import layout
from drivers.base import DeviceRejected, DeviceUnavailable, ScanSink

__all__ = ["HidScanner"]

logger = logging.getLogger(__name__)

# os.read on an evdev fd must ask for whole events (EINVAL otherwise).
_READ_SIZE = EVENT_SIZE * 64
_LAST_CODES = 10

Source = Literal["evdev", "socket"]


@dataclasses.dataclass
class _Counters:
    connects: int = 0
    events: int = 0
    codes: int = 0
    aim_missing: int = 0  # codes without an AIM identifier although aim_ids is set


class HidScanner:
    """Reads codes typed by a HID scanner and hands each to ``on_scan``.

    Args:
        name: ``station/device``, as in logs and alarms.
        config: the ``[devices.NAME]`` table.
        on_scan: called with every complete code; must not block.
    """

    kind: ClassVar[str] = "barcode_hid"

    def __init__(self, name: str, config: HidScannerConfig, on_scan: ScanSink) -> None:
        self._name = name
        self._config = config
        self._on_scan = on_scan
        self._device: Any = None  # evdev.InputDevice when the path is an input device
        self._socket: socket.socket | None = None
        self._source: Source | None = None
        self._grabbed = False
        self._device_name = ""
        self._fd: int | None = None
        self._reading = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # Filled by the reader callback: a chunk of bytes, or None once the link is lost.
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._lost: str | None = None
        self._parser = EventStreamParser()
        self._decoder = self._new_decoder()
        self._counters = _Counters()
        self._last_codes: collections.deque[str] = collections.deque(maxlen=_LAST_CODES)

    @property
    def name(self) -> str:
        return self._name

    async def connect(self) -> None:
        """Open (and grab) the device or connect to the event socket.

        Raises DeviceUnavailable while the path is absent or in use, DeviceRejected if it
        is neither an input device nor a socket.
        """
        await self.close()
        path = self._config.path
        mode = self._path_mode()
        loop = asyncio.get_running_loop()
        self._loop = loop
        try:
            if stat.S_ISCHR(mode):
                fd = self._open_device()
            elif stat.S_ISSOCK(mode):
                fd = await self._open_socket(loop)
            else:
                raise DeviceRejected(
                    f"{self._name}: {path} is neither an input device nor a Unix socket "
                    "of input events"
                )
        except BaseException:
            # Half-opened (no keys, grab refused, connect cancelled): let nothing linger.
            self._release()
            raise
        self._fd = fd
        self._chunks = asyncio.Queue()
        self._lost = None
        self._parser = EventStreamParser()
        self._decoder = self._new_decoder()
        loop.add_reader(fd, self._on_readable)
        self._reading = True
        self._counters.connects += 1
        logger.debug("%s: reading %s (%s)", self._name, path, self._source)

    async def run(self) -> None:
        """Decode and deliver codes until cancelled; raise DeviceUnavailable on unplug."""
        if self._fd is None:
            raise DeviceUnavailable(f"{self._name}: not connected")
        while True:
            chunk = await self._next_chunk()
            if chunk is None:
                if self._lost is not None:
                    raise DeviceUnavailable(f"{self._name}: {self._lost}")
                continue
            self._deliver(chunk)

    async def close(self) -> None:
        """Stop reading, release the grab and close; safe to call twice or before connect."""
        self._release()

    def diagnostics(self) -> dict[str, Any]:
        return {
            "path": self._config.path,
            "source": self._source,
            "device_name": self._device_name,
            "layout": self._config.layout,
            "grabbed": self._grabbed,
            "connected": self._fd is not None and self._lost is None,
            "reading": self._reading,
            "last_error": self._lost,
            **dataclasses.asdict(self._counters),
            **dataclasses.asdict(self._decoder.counters),
            "last_codes": list(self._last_codes),
        }

    def _release(self) -> None:
        self._remove_reader()
        self._fd = None
        device, self._device = self._device, None
        if device is not None:
            if self._grabbed:
                # Ungrabbing a device that is gone fails with ENODEV: it is released anyway.
                with contextlib.suppress(OSError):
                    device.ungrab()
            with contextlib.suppress(OSError):
                device.close()
        self._grabbed = False
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _new_decoder(self) -> KeyDecoder:
        cfg = self._config
        return KeyDecoder(layout(cfg.layout), terminator=cfg.terminator, max_length=cfg.max_length)

    def _path_mode(self) -> int:
        path = self._config.path
        try:
            return Path(path).stat().st_mode  # follows the by-id symlink
        except FileNotFoundError:
            raise DeviceUnavailable(f"{self._name}: {path} is absent (unplugged?)") from None
        except OSError as exc:
            raise DeviceUnavailable(f"{self._name}: {path}: {exc.strerror}") from None

    def _open_device(self) -> int:
        # Imported here: evdev is a compiled, Linux-only package that only this path needs.
        import evdev

        path = self._config.path
        try:
            device = evdev.InputDevice(path)
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL):
                raise DeviceRejected(f"{self._name}: {path} is not an input device") from None
            raise DeviceUnavailable(f"{self._name}: {path}: {exc.strerror or exc}") from None
        self._device = device
        self._source = "evdev"
        self._device_name = str(device.name)
        if evdev.ecodes.EV_KEY not in device.capabilities():
            raise DeviceRejected(f"{self._name}: {path} ({device.name}) has no keys")
        if self._config.grab:
            try:
                device.grab()
            except OSError as exc:
                # EBUSY: another process holds the grab (a second gateway, a kiosk app).
                raise DeviceUnavailable(
                    f"{self._name}: cannot grab {path}: {exc.strerror or exc}"
                ) from None
            self._grabbed = True
        fd: int = device.fd
        return fd

    async def _open_socket(self, loop: asyncio.AbstractEventLoop) -> int:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        self._socket = sock
        self._source = "socket"
        self._device_name = "event stream"
        try:
            async with asyncio.timeout(self._config.timeout_s):
                await loop.sock_connect(sock, self._config.path)
        except TimeoutError:
            raise DeviceUnavailable(
                f"{self._name}: {self._config.path}: connect timed out"
            ) from None
        except OSError as exc:
            # ECONNREFUSED: a socket file left behind with nobody listening.
            raise DeviceUnavailable(
                f"{self._name}: {self._config.path}: {exc.strerror or exc}"
            ) from None
        return sock.fileno()

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # ENODEV from an unplugged input device (python-evdev#64, #191).
            self._link_lost(exc.strerror or str(exc))
            return
        if not data:
            self._link_lost("end of the event stream")
            return
        self._chunks.put_nowait(data)

    def _link_lost(self, why: str) -> None:
        self._remove_reader()
        self._lost = why
        self._chunks.put_nowait(None)
        logger.debug("%s: link lost: %s", self._name, why)

    def _remove_reader(self) -> None:
        if self._reading and self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._reading = False

    async def _next_chunk(self) -> bytes | None:
        """The next chunk, or None for "link lost" or "partial code timed out"."""
        if not self._decoder.pending:
            return await self._chunks.get()
        try:
            async with asyncio.timeout(self._config.partial_timeout_s):
                return await self._chunks.get()
        except TimeoutError:
            if self._decoder.drop_partial():
                logger.info(
                    "%s: dropped a partial code (no terminator within %.1f s)",
                    self._name,
                    self._config.partial_timeout_s,
                )
            return None

    def _deliver(self, chunk: bytes) -> None:
        cfg = self._config
        for event in self._parser.feed(chunk):
            self._counters.events += 1
            text = self._decoder.feed(event.type, event.code, event.value)
            if text is None:
                continue
            code = normalise_scan(text, aim_ids=cfg.aim_ids, gs_substitute=cfg.gs_substitute)
            if cfg.aim_ids and code.symbology is None:
                self._counters.aim_missing += 1
            self._counters.codes += 1
            self._last_codes.append(code_preview(text))
            self._on_scan(code)
