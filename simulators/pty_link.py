"""A serial cable without hardware: pseudo-terminals bridged on the event loop.

Like ``socat pty,link=HOST pty,link=DEVICE``, done in Python (socat is not installed
everywhere). The *host* end is what the gateway's driver opens, at a stable symlink
path such as a ``/dev/serial/by-id/NAME`` would be; each *device* end is a tty a
simulated device opens (pymodbus' serial server, a scanner). Bytes from the host end
go to every device end and bytes from any device end go to the host end, so one link
is a null modem with one device, and an RS-485 line with several.

Every end is a pty pair whose slave side this module keeps open itself: the master
then never reads EIO while nobody has the port open, and the tty is put in raw mode
before anyone opens it (a pty starts in cooked mode with echo). ``unplug`` closes the
host end, so the driver's port fails as a pulled USB adapter does (pyserial raises
"device reports readiness to read but returned no data"), and ``plug`` brings a new
one back at the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["Direction", "PtyLink"]

logger = logging.getLogger(__name__)

Direction = Literal["to_device", "to_host"]

# Bytes held for an end whose reader is not keeping up; beyond that they are dropped,
# as a UART's buffer would overflow.
_MAX_PENDING = 64 * 1024


@dataclass(eq=False)
class _End:
    master: int
    slave: int
    tty: str
    link: Path | None
    pending: bytearray = field(default_factory=bytearray)


def _open_end(link: Path | None) -> _End:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    name = os.ttyname(slave)
    if link is not None:
        link.parent.mkdir(parents=True, exist_ok=True)
        # Replace atomically, so the path never points nowhere while it moves.
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(name)
        tmp.replace(link)
    return _End(master, slave, name, link)


class PtyLink:
    """A null-modem (or multidrop) serial link between a host end at ``host_path`` and
    device ends; runs on the event loop that calls :meth:`open`.

    ``tap`` sees every chunk that crosses the link, with its direction (a line monitor
    for tests).
    """

    def __init__(
        self,
        host_path: str | os.PathLike[str],
        *,
        tap: Callable[[Direction, bytes], None] | None = None,
    ) -> None:
        self.host_path = Path(host_path)
        self.tap = tap
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host: _End | None = None
        self._devices: dict[str, _End] = {}

    @property
    def is_open(self) -> bool:
        return self._loop is not None

    @property
    def plugged(self) -> bool:
        """True while the host end exists (the driver can open host_path)."""
        return self._host is not None

    def open(self) -> None:
        """Create the host end at host_path; call from the running event loop."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.plug()

    def add_device(self, link: str | os.PathLike[str] | None = None) -> str:
        """A new device end; returns the path to open (``link`` if given, else the tty)."""
        loop = self._running_loop()
        end = _open_end(None if link is None else Path(link))
        self._devices[end.tty] = end
        loop.add_reader(end.master, self._on_readable, end)
        return str(end.link) if end.link is not None else end.tty

    def remove_device(self, path: str) -> None:
        """Close a device end given by the path add_device returned."""
        for key, end in list(self._devices.items()):
            if path in (end.tty, str(end.link)):
                del self._devices[key]
                self._close_end(end)

    def unplug(self) -> None:
        """Pull the host end: the driver's open port fails and host_path disappears."""
        host, self._host = self._host, None
        if host is not None:
            self._close_end(host)

    def plug(self) -> None:
        """Put a (new) host end at host_path."""
        loop = self._running_loop()
        if self._host is not None:
            return
        self._host = _open_end(self.host_path)
        loop.add_reader(self._host.master, self._on_readable, self._host)

    def close(self) -> None:
        """Close every end; safe to call twice."""
        self.unplug()
        for end in self._devices.values():
            self._close_end(end)
        self._devices.clear()
        self._loop = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("PtyLink.open() first")
        return self._loop

    def _close_end(self, end: _End) -> None:
        loop = self._running_loop()
        loop.remove_reader(end.master)
        loop.remove_writer(end.master)
        os.close(end.master)
        os.close(end.slave)
        # Only remove the path if it is still ours (a new end may have taken it).
        if end.link is not None and end.link.is_symlink() and str(end.link.readlink()) == end.tty:
            end.link.unlink()

    def _on_readable(self, source: _End) -> None:
        try:
            data = os.read(source.master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            # Cannot happen while we hold the slave open; never spin on a dead fd.
            logger.warning("pty %s failed: %s", source.tty, exc)
            self._running_loop().remove_reader(source.master)
            return
        if not data:
            return
        if source is self._host:
            direction: Direction = "to_device"
            targets = list(self._devices.values())
        else:
            direction = "to_host"
            targets = [] if self._host is None else [self._host]
        if self.tap is not None:
            self.tap(direction, data)
        for target in targets:
            self._write(target, data)

    def _write(self, target: _End, data: bytes) -> None:
        if target.pending:
            if len(target.pending) + len(data) <= _MAX_PENDING:
                target.pending += data
            return
        try:
            sent = os.write(target.master, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            logger.debug("pty %s: write failed: %s", target.tty, exc)
            return
        if sent < len(data):
            target.pending += data[sent:]
            self._running_loop().add_writer(target.master, self._on_writable, target)

    def _on_writable(self, target: _End) -> None:
        try:
            sent = os.write(target.master, target.pending)
        except BlockingIOError:
            return
        except OSError:
            sent = len(target.pending)
        del target.pending[:sent]
        if not target.pending:
            self._running_loop().remove_writer(target.master)
