"""A HID (keyboard-wedge) barcode scanner as a stream of raw input events on a Unix socket.

There is no /dev/uinput on CI machines, so the simulator does not create an input
device: it listens on a Unix stream socket at ``config.path`` and writes to whoever
connects the same ``struct input_event`` records an evdev device read returns. The
driver reads such a socket exactly as it reads a device. ``scan`` types a code the way a
scanner set to the configured keyboard country does, using the driver's own key map
inverted: Shift and AltGr around characters, dead key + Space for ^ and ` where the
layout has them only as dead keys, Ctrl+] or Alt+0029 for GS, Alt+0nnn for anything the
layout has no key for, then the terminator key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drivers.aim import GS, add_aim_id
from drivers.barcode_hid.config import HidScannerConfig
from drivers.barcode_hid.decoder import EV_KEY, EV_SYN, SYN_REPORT
from drivers.barcode_hid.events import InputEvent, pack_events
from drivers.barcode_hid.keymaps import KEYPAD_DIGITS, Dead, Key, Layout, layout
from simulators.faults import Faults

__all__ = [
    "DEFAULT_AIM_ID",
    "GARBLE_KEY",
    "AltCode",
    "GsKeys",
    "SimulatedHidScanner",
    "Stroke",
    "typing_table",
]

logger = logging.getLogger(__name__)

# What the scanner reports when a test does not say which symbology it "read".
DEFAULT_AIM_ID = "]C0"
# A key no layout maps: a garbled scan types one of its characters on it.
GARBLE_KEY = 183  # KEY_F13

GsKeys = Literal["ctrl", "alt_numpad"]
_WRITE_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class Stroke:
    """One key pressed with its modifiers."""

    key: int
    shift: bool = False
    altgr: bool = False
    ctrl: bool = False


@dataclass(frozen=True, slots=True)
class AltCode:
    """Alt held while a decimal code is typed on the keypad, as scanners' "Alt mode" types
    what the layout has no key for: a cp1252 byte with a leading 0, or a Unicode code
    point above 255."""

    value: int


Typed = Stroke | AltCode


def typing_table(keymap: Layout) -> dict[str, tuple[Stroke, ...]]:
    """Character → the strokes that type it, with as few modifiers as the layout allows."""
    table: dict[str, tuple[Stroke, ...]] = {}
    for shift, altgr in ((False, False), (True, False), (False, True)):
        for key, levels in keymap.keys.items():
            symbol = levels.symbol(shift=shift, altgr=altgr)
            if isinstance(symbol, str) and symbol not in table:
                table[symbol] = (Stroke(key, shift=shift, altgr=altgr),)
    # Characters a layout has only as dead keys are typed as dead key + Space.
    for shift, altgr in ((False, False), (True, False), (False, True)):
        for key, levels in keymap.keys.items():
            symbol = levels.symbol(shift=shift, altgr=altgr)
            if isinstance(symbol, Dead) and symbol.spacing not in table:
                table[symbol.spacing] = (
                    Stroke(key, shift=shift, altgr=altgr),
                    Stroke(Key.KEY_SPACE),
                )
    return table


class SimulatedHidScanner:
    """The scanner side of a HID scanner (see the module docstring).

    Args:
        name: ``station/device``.
        config: the driver's config; ``path``, ``layout``, ``terminator``, ``aim_ids``
            and ``gs_substitute`` shape what is typed.
        faults: ``drop`` loses a scan, ``delay_s`` delays it, ``garble`` types one of its
            characters on a key the layout does not map.
        gs_keys: how GS is typed: Ctrl + the layout's "]" key, or Alt + keypad 0029.
        keypad_digits: type digits on the keypad, as some scanners do.
    """

    def __init__(
        self,
        name: str,
        config: HidScannerConfig,
        faults: Faults | None = None,
        *,
        gs_keys: GsKeys = "ctrl",
        keypad_digits: bool = False,
    ) -> None:
        self._name = name
        self._config = config
        self.faults = faults if faults is not None else Faults()
        self._gs_keys = gs_keys
        self._keypad_digits = keypad_digits
        self._layout = layout(config.layout)
        self._table = typing_table(self._layout)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._client_joined = asyncio.Condition()
        self._sent = 0
        self._dropped = 0
        self._garbled = 0
        self._partial = 0
        self._lost = 0  # scans while unplugged

    @property
    def name(self) -> str:
        return self._name

    @property
    def connected(self) -> int:
        """How many readers are connected now."""
        return len(self._clients)

    async def start(self) -> None:
        """Plug in: listen at ``config.path``."""
        if self._server is not None:
            return
        path = self._prepare_path()
        self._server = await asyncio.start_unix_server(self._serve, path=path)
        logger.debug("%s: plugged in at %s", self._name, path)

    async def stop(self) -> None:
        """Unplug: drop readers, stop listening and remove the socket; safe to call twice."""
        server, self._server = self._server, None
        await self.disconnect()
        if server is not None:
            server.close()
            await server.wait_closed()
            self._remove_path()

    async def disconnect(self) -> None:
        """Drop the connected readers but keep listening."""
        clients, self._clients = self._clients, set()
        for writer in clients:
            writer.close()
        for writer in clients:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def wait_connected(self, count: int = 1, timeout_s: float = 2.0) -> None:
        """Wait until ``count`` readers are connected (tests: the driver has connected)."""
        async with asyncio.timeout(timeout_s), self._client_joined:
            await self._client_joined.wait_for(lambda: len(self._clients) >= count)

    async def scan(self, text: str, symbology: str | None = None) -> bool:
        """Type one code and the terminator; False if it was lost (a fault, unplugged).

        ``symbology`` is the AIM id typed first when the config has ``aim_ids``
        (default ``]C0``); GS in ``text`` is typed as ``gs_substitute`` if one is set.
        """
        if self.faults.should_drop():
            self._dropped += 1
            return False
        await self.faults.delay()
        if self._server is None:
            self._lost += 1
            return False
        strokes = self._strokes(self._text(text, symbology))
        if self.faults.should_garble():
            self._garbled += 1
            at = self.faults.rng.randrange(len(strokes))
            strokes[at] = [Stroke(GARBLE_KEY)]
        events = [e for group in strokes for stroke in group for e in self._stroke_events(stroke)]
        await self._write(pack_events([*events, *self._tap(self._terminator_key)]))
        self._sent += 1
        return True

    async def scan_partial(self, text: str, symbology: str | None = None) -> None:
        """Type the first half of a code and nothing more (no terminator)."""
        strokes = self._strokes(self._text(text, symbology))
        half = strokes[: max(1, len(strokes) // 2)]
        await self._write(
            pack_events(e for group in half for s in group for e in self._stroke_events(s))
        )
        self._partial += 1

    async def replay(self, events: Iterable[InputEvent]) -> None:
        """Send recorded events as they are."""
        await self._write(pack_events(events))

    def status(self) -> dict[str, Any]:
        return {
            "path": self._config.path,
            "layout": self._config.layout,
            "listening": self._server is not None,
            "readers": len(self._clients),
            "sent": self._sent,
            "dropped": self._dropped,
            "garbled": self._garbled,
            "partial": self._partial,
            "lost": self._lost,
            "faults": self.faults.as_dict(),
        }

    @property
    def _terminator_key(self) -> int:
        return Key.KEY_ENTER if self._config.terminator == "enter" else Key.KEY_TAB

    def _prepare_path(self) -> str:
        path = Path(self._config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A socket file left by a simulator that was killed: nobody listens on it.
        if path.is_socket():
            path.unlink()
        return str(path)

    def _remove_path(self) -> None:
        path = Path(self._config.path)
        if path.is_socket():
            path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._client_joined:
            self._clients.add(writer)
            self._client_joined.notify_all()
        try:
            # The driver never writes; this returns at its EOF (it closed or went away).
            await reader.read()
        finally:
            self._clients.discard(writer)
            writer.close()

    def _text(self, text: str, symbology: str | None) -> str:
        cfg = self._config
        if cfg.gs_substitute:
            text = text.replace(GS, cfg.gs_substitute)
        if cfg.aim_ids:
            text = add_aim_id(text, symbology or DEFAULT_AIM_ID)
        return text

    def _strokes(self, text: str) -> list[list[Typed]]:
        """Per character, the strokes that type it."""
        return [self._char_strokes(ch) for ch in text]

    def _char_strokes(self, ch: str) -> list[Typed]:
        if ch == GS and self._gs_keys == "ctrl":
            bracket = self._table["]"][0]
            return [Stroke(bracket.key, shift=bracket.shift, altgr=bracket.altgr, ctrl=True)]
        if ch == GS:
            return [AltCode(29)]
        if self._keypad_digits and ch.isdigit() and ch.isascii():
            return [Stroke(next(k for k, d in KEYPAD_DIGITS.items() if str(d) == ch))]
        if ch in self._table:
            return list(self._table[ch])
        with contextlib.suppress(UnicodeEncodeError):
            return [AltCode(ch.encode("cp1252")[0])]
        if ord(ch) > 0xFF:
            return [AltCode(ord(ch))]
        raise ValueError(f"cannot type {ch!r} on a {self._config.layout} layout")

    def _stroke_events(self, stroke: Typed) -> list[InputEvent]:
        if isinstance(stroke, AltCode):
            digits = [Key[f"KEY_KP{d}"] for d in f"{stroke.value:04d}"]
            return [
                *self._press(Key.KEY_LEFTALT, 1),
                *(e for d in digits for e in self._tap(d)),
                *self._press(Key.KEY_LEFTALT, 0),
            ]
        modifiers: list[int] = []
        if stroke.ctrl:
            modifiers.append(Key.KEY_LEFTCTRL)
        if stroke.shift:
            modifiers.append(Key.KEY_LEFTSHIFT)
        if stroke.altgr:
            modifiers.append(Key.KEY_RIGHTALT)
        return [
            *(e for m in modifiers for e in self._press(m, 1)),
            *self._tap(stroke.key),
            *(e for m in reversed(modifiers) for e in self._press(m, 0)),
        ]

    def _tap(self, key: int) -> list[InputEvent]:
        return [*self._press(key, 1), *self._press(key, 0)]

    @staticmethod
    def _press(key: int, value: int) -> Sequence[InputEvent]:
        now = time.time_ns() // 1000
        sec, usec = divmod(now, 1_000_000)
        return (
            InputEvent(sec, usec, EV_KEY, key, value),
            InputEvent(sec, usec, EV_SYN, SYN_REPORT, 0),
        )

    async def _write(self, data: bytes) -> None:
        for writer in list(self._clients):
            try:
                writer.write(data)
                async with asyncio.timeout(_WRITE_TIMEOUT_S):
                    await writer.drain()
            except (ConnectionError, TimeoutError):
                # The reader is gone or stuck: a scanner's keystrokes are lost then too.
                self._clients.discard(writer)
                writer.close()
