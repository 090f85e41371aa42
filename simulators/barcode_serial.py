"""A serial barcode scanner on a pty, plugged in at the configured by-id path.

``start`` creates a pty pair and points a symlink at ``config.port`` to its slave, as
udev does for ``/dev/serial/by-id/…``; ``stop`` unplugs (the master is closed, so the
driver's next read fails with EIO, and the link is removed); ``start`` again re-plugs
with a new pty behind the same path. ``scan`` sends ``prefix + AIM id + data + suffix``
as the configured scanner would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tty
from pathlib import Path
from typing import Any

from drivers.aim import GS, add_aim_id
from drivers.barcode_serial.config import SerialScannerConfig
from simulators.faults import Faults

__all__ = ["DEFAULT_AIM_ID", "SimulatedSerialScanner"]

logger = logging.getLogger(__name__)

# What the scanner reports when a test does not say which symbology it "read".
DEFAULT_AIM_ID = "]C0"


class SimulatedSerialScanner:
    """The scanner side of a serial scanner link (see the module docstring).

    Link faults: ``drop`` loses a scan, ``delay_s`` delays it, ``garble`` flips bits in
    its data (the prefix and suffix stay intact, so the driver still sees one frame).
    """

    def __init__(
        self, name: str, config: SerialScannerConfig, faults: Faults | None = None
    ) -> None:
        self._name = name
        self._config = config
        self.faults = faults if faults is not None else Faults()
        self._master: int | None = None
        self._slave: int | None = None
        self._tty = ""
        self._plugs = 0
        self._sent = 0
        self._dropped = 0
        self._garbled = 0
        self._partial = 0
        self._lost = 0  # written while the driver's side was full or closed

    @property
    def name(self) -> str:
        return self._name

    @property
    def plugged(self) -> bool:
        return self._master is not None

    async def start(self) -> None:
        """Plug in: a new pty, with ``config.port`` pointing at its slave."""
        if self._master is None:
            self._plug()

    async def stop(self) -> None:
        """Unplug: close the pty and remove the link; safe to call twice."""
        self._unplug()

    async def disconnect(self) -> None:
        """Unplug and plug in again (a new pty behind the same path)."""
        await self.stop()
        await self.start()

    async def scan(self, text: str, symbology: str | None = None) -> bool:
        """Send one code as the scanner would; False if it was lost (a fault, unplugged).

        ``symbology`` is the AIM id sent when the config has ``aim_ids`` (default
        ``]C0``); GS in ``text`` is sent as the configured ``gs_substitute``.
        """
        if self.faults.should_drop():
            self._dropped += 1
            return False
        await self.faults.delay()
        data = self._data(text, symbology)
        if self.faults.should_garble():
            self._garbled += 1
            data = self.faults.garble_bytes(data)
        cfg = self._config
        if not self._write(cfg.prefix.encode() + data + cfg.suffix.encode()):
            return False
        self._sent += 1
        return True

    async def scan_partial(self, text: str, symbology: str | None = None) -> None:
        """Send the first half of a code and nothing more (a scan cut off mid-way)."""
        frame = self._config.prefix.encode() + self._data(text, symbology)
        self._write(frame[: max(1, len(frame) // 2)])
        self._partial += 1

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (noise, several codes in one burst, a split suffix)."""
        self._write(data)

    def status(self) -> dict[str, Any]:
        return {
            "port": self._config.port,
            "tty": self._tty if self.plugged else None,
            "plugged": self.plugged,
            "plugs": self._plugs,
            "sent": self._sent,
            "dropped": self._dropped,
            "garbled": self._garbled,
            "partial": self._partial,
            "lost": self._lost,
            "faults": self.faults.as_dict(),
        }

    def _plug(self) -> None:
        master, slave = os.openpty()
        # Raw mode from the start: a pty begins in cooked mode (echo, CR→NL), which
        # would mangle anything written before the driver's pyserial sets it raw.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._tty = os.ttyname(slave)
        link = Path(self._config.port)
        link.parent.mkdir(parents=True, exist_ok=True)
        # Replace the link in one step, as udev does, so a reader never sees it missing.
        temp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        temp.symlink_to(self._tty)
        temp.replace(link)
        self._plugs += 1
        logger.debug("%s: plugged in at %s -> %s", self._name, link, self._tty)

    def _unplug(self) -> None:
        master, slave = self._master, self._slave
        self._master = self._slave = None
        link = Path(self._config.port)
        # Only our own link: another process may have plugged a scanner in there since.
        if link.is_symlink() and str(link.readlink()) == self._tty:
            link.unlink()
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)

    def _data(self, text: str, symbology: str | None) -> bytes:
        cfg = self._config
        if cfg.gs_substitute:
            text = text.replace(GS, cfg.gs_substitute)
        if cfg.aim_ids:
            text = add_aim_id(text, symbology or DEFAULT_AIM_ID)
        return text.encode()

    def _write(self, data: bytes) -> bool:
        """Write to the pty; False if the bytes were lost, as a real scanner's are when it
        is unplugged or nobody has read the port for a long time (the buffer is full)."""
        written = 0
        if self._master is not None:
            with contextlib.suppress(BlockingIOError):
                written = os.write(self._master, data)
        if written < len(data):
            self._lost += 1
            return False
        return True
