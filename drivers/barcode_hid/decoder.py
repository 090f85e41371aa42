"""Pure decoding of a HID scanner's key events into codes.

Events are ``(type, code, value)`` as the kernel reports them; only key events count
(``value`` 1 press, 0 release, 2 autorepeat, which is ignored: a scanner does not hold
keys, and a repeat would double a character). The decoder tracks Shift, Ctrl, Alt,
AltGr and CapsLock, dead keys, and two ways scanners type what the layout has no key
for:

* Ctrl + a key: the key's character as a control character, as xkb does (Ctrl+] is GS,
  0x1d). Ctrl + the key in the US "]" position gives GS on every layout too: scanners
  set to another country are seen sending that one.
* Alt held + keypad digits: the decimal character code, typed on Alt's release
  (Alt+0029 → GS). Up to 255, as on Windows, whose rule scanners copy: a leading 0
  means cp1252, none means cp437. Above 255 it is a Unicode code point (Alt+20320 → 你),
  as scanners that send text beyond one code page do.

A key the layout does not map becomes U+FFFD and is counted, so a damaged code reaches
the parser as invalid instead of as a different, valid-looking code.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from drivers.barcode_hid.keymaps import (
    ALT_KEYS,
    CTRL_KEYS,
    KEYPAD_DIGITS,
    SHIFT_KEYS,
    Dead,
    Key,
    Layout,
    Symbol,
)

__all__ = [
    "EV_KEY",
    "EV_MSC",
    "EV_SYN",
    "SYN_DROPPED",
    "SYN_REPORT",
    "DecoderCounters",
    "KeyDecoder",
    "Terminator",
]

EV_SYN = 0
EV_KEY = 1
EV_MSC = 4
SYN_REPORT = 0
SYN_DROPPED = 3  # the kernel's buffer overflowed: events were lost

_PRESS, _RELEASE = 1, 0
_REPLACEMENT = "\ufffd"

Terminator = Literal["enter", "tab"]
_TERMINATOR_KEYS: dict[Terminator, frozenset[int]] = {
    "enter": frozenset({Key.KEY_ENTER, Key.KEY_KPENTER}),
    "tab": frozenset({Key.KEY_TAB}),
}
# Enter or Tab inside a code (when it is not the terminator) types these.
_WHITESPACE_KEYS: dict[int, str] = {Key.KEY_ENTER: "\n", Key.KEY_KPENTER: "\n", Key.KEY_TAB: "\t"}
# Keys that carry no character and are not worth counting as unknown.
_SILENT_KEYS = frozenset({Key.KEY_NUMLOCK, Key.KEY_LEFTMETA, Key.KEY_RIGHTMETA})


@dataclass
class DecoderCounters:
    """What the decoder saw and threw away, for the driver's diagnostics."""

    keys: int = 0  # key presses
    unknown_keys: int = 0  # presses the layout has no character for (typed as U+FFFD)
    overlong: int = 0  # codes longer than max_length, dropped whole
    partial: int = 0  # unfinished codes dropped by drop_partial()
    events_lost: int = 0  # SYN_DROPPED reports: the code being typed was dropped


class KeyDecoder:
    """Turns key events into the raw text of each code, ended by the terminator key."""

    def __init__(self, layout: Layout, *, terminator: Terminator, max_length: int) -> None:
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self._layout = layout
        self._terminators = _TERMINATOR_KEYS[terminator]
        self._max_length = max_length
        self._text: list[str] = []
        self._length = 0  # characters in _text
        self._shift: set[int] = set()
        self._ctrl: set[int] = set()
        self._alt: set[int] = set()
        self._altgr = False
        self._caps_lock = False
        self._dead: Dead | None = None
        self._alt_digits = ""
        self._discarding = False  # inside an overlong code: skip up to its terminator
        self._resyncing = False  # after SYN_DROPPED: skip up to the next SYN_REPORT
        self.counters = DecoderCounters()

    @property
    def pending(self) -> bool:
        """Part of a code has been typed (what a partial timeout would drop)."""
        return bool(self._text or self._alt_digits or self._dead) or self._discarding

    def feed(self, type_: int, code: int, value: int) -> str | None:
        """One event; return the code it completes (without its terminator), if any."""
        if type_ == EV_SYN:
            if code == SYN_DROPPED:
                self._events_lost()
            elif code == SYN_REPORT:
                self._resyncing = False
            return None
        if type_ != EV_KEY or self._resyncing or value not in (_PRESS, _RELEASE):
            return None
        if self._modifier(code, pressed=value == _PRESS):
            return None
        if value == _RELEASE:
            return None
        self.counters.keys += 1
        if code in self._terminators:
            return self._finish()
        self._press(code)
        return None

    def drop_partial(self) -> bool:
        """Forget an unfinished code (modifier state stays); True if one was held."""
        held = bool(self._text or self._alt_digits or self._dead)
        if held and not self._discarding:
            self.counters.partial += 1
        self._clear()
        return held

    def _clear(self) -> None:
        self._text.clear()
        self._length = 0
        self._dead = None
        self._alt_digits = ""
        self._discarding = False

    def _events_lost(self) -> None:
        # The kernel says events were lost: the code being typed is incomplete, and a
        # release may be among the lost, so modifiers start again from "none held".
        self.counters.events_lost += 1
        self._clear()
        self._shift.clear()
        self._ctrl.clear()
        self._alt.clear()
        self._altgr = False
        self._resyncing = True

    def _modifier(self, code: int, *, pressed: bool) -> bool:
        """Track a modifier key; False if ``code`` is not one."""
        if code == Key.KEY_RIGHTALT and self._layout.right_alt_is_altgr:
            self._altgr = pressed
            return True
        held: set[int] | None = None
        if code in SHIFT_KEYS:
            held = self._shift
        elif code in CTRL_KEYS:
            held = self._ctrl
        elif code in ALT_KEYS:
            held = self._alt
            if not pressed:
                self._alt_released(code)
        elif code == Key.KEY_CAPSLOCK:
            if pressed:
                self._caps_lock = not self._caps_lock
            return True
        if held is None:
            return False
        if pressed:
            held.add(code)
        else:
            held.discard(code)
        return True

    def _alt_released(self, code: int) -> None:
        if not self._alt_digits or self._alt - {code}:
            return
        digits, self._alt_digits = self._alt_digits, ""
        value = int(digits)
        if value > 0xFF:
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                self._unknown()
            else:
                self._type(chr(value))
            return
        codepage = "cp1252" if digits.startswith("0") else "cp437"
        try:
            self._type(bytes([value]).decode(codepage))
        except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
            self._unknown()

    def _press(self, code: int) -> None:
        if self._alt and code in KEYPAD_DIGITS:
            self._alt_digits += str(KEYPAD_DIGITS[code])
            return
        if code in _WHITESPACE_KEYS:
            self._type(_WHITESPACE_KEYS[code])
            return
        if code in self._layout.keypad:
            self._type(self._layout.keypad[code])
            return
        levels = self._layout.keys.get(code)
        if levels is None:
            if code not in _SILENT_KEYS:
                self._unknown()
            return
        shift = bool(self._shift)
        if self._caps_lock and levels.alphabetic:
            shift = not shift
        symbol = levels.symbol(shift=shift, altgr=self._altgr)
        if self._ctrl:
            self._control(code, symbol)
        elif symbol is None:
            self._unknown()
        else:
            self._type(symbol)

    def _control(self, code: int, symbol: Symbol | None) -> None:
        if isinstance(symbol, str) and "@" <= symbol <= "~":
            self._append(chr(ord(symbol) & 0x1F))
        elif code == Key.KEY_RIGHTBRACE:
            self._append("\x1d")
        else:
            self._unknown()

    def _type(self, symbol: Symbol) -> None:
        dead, self._dead = self._dead, None
        if isinstance(symbol, Dead):
            if dead is not None:
                # Twice the same dead key types it; another dead key types the first and
                # waits on its own.
                self._append(dead.spacing)
                if dead == symbol:
                    return
            self._dead = symbol
            return
        if dead is None:
            self._append(symbol)
        elif symbol == " ":
            self._append(dead.spacing)
        else:
            composed = unicodedata.normalize("NFC", symbol + dead.combining)
            self._append(composed if len(composed) == 1 else dead.spacing + symbol)

    def _unknown(self) -> None:
        self.counters.unknown_keys += 1
        self._append(_REPLACEMENT)

    def _append(self, text: str) -> None:
        if self._discarding:
            return
        self._text.append(text)
        self._length += len(text)
        if self._length > self._max_length:
            self.counters.overlong += 1
            self._text.clear()
            self._length = 0
            self._discarding = True

    def _finish(self) -> str | None:
        if self._dead is not None:
            self._append(self._dead.spacing)
        discarding = self._discarding
        text = "".join(self._text)
        self._clear()
        if discarding or not text:
            return None
        return text
