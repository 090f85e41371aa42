"""A small reader of xkeyboard-config's symbol files: the independent reference for the
HID scanner's key maps and for the recorded corpus.

It reads ``/usr/share/X11/xkb/keycodes/evdev`` (xkb key names → kernel key codes, which
are the xkb codes minus 8), ``/usr/share/X11/xkb/symbols/*`` (key name → keysyms per
level, following ``include`` statements) and ``/usr/include/X11/keysymdef.h`` (keysym
names → Unicode). It knows nothing of ``drivers.barcode_hid``, so a table there that
disagrees with xkb shows up as a difference instead of being copied into the test.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KEYSYMDEF", "XKB_DIR", "XkbLayout", "available", "evdev_codes", "keysym_chars"]

XKB_DIR = Path("/usr/share/X11/xkb")
KEYSYMDEF = Path("/usr/include/X11/keysymdef.h")

# The xkb files of each layout name the scanner driver uses.
_LAYOUT_FILES = {"us": "us", "uk": "gb", "de": "de", "fr": "fr"}

# Keypad keysyms carry no U+ comment in keysymdef.h.
_KEYPAD_CHARS = {
    **{f"KP_{d}": str(d) for d in range(10)},
    "KP_Decimal": ".",
    "KP_Separator": ",",
    "KP_Add": "+",
    "KP_Subtract": "-",
    "KP_Multiply": "*",
    "KP_Divide": "/",
    "KP_Equal": "=",
    "KP_Space": " ",
}

_SECTION = re.compile(r'((?:[a-z_]+\s+)*)xkb_symbols\s+"([^"]+)"\s*\{')
_STATEMENT = re.compile(r'include\s+"([^"]+)"|key\s+<(\w+)>\s*\{(.*?)\}\s*;', re.DOTALL)
_SYMBOLS = re.compile(r"symbols\[Group1\]\s*=\s*\[([^\]]*)\]")
_LEVELS = re.compile(r"\[([^\]]*)\]")
_KEYCODE = re.compile(r"^\s*<(\w+)>\s*=\s*(\d+)\s*;", re.MULTILINE)
_KEYSYM = re.compile(r"^#define XK_(\w+)\s+0x[0-9a-fA-F]+\s*/\*\s*U\+([0-9A-Fa-f]{4,6})", re.M)


def available() -> bool:
    """The files this module reads are installed (xkb-data and x11proto-dev on Debian)."""
    return (XKB_DIR / "keycodes" / "evdev").is_file() and KEYSYMDEF.is_file()


@functools.cache
def evdev_codes() -> dict[str, int]:
    """xkb key name (``AE01``) → Linux key code (``KEY_1`` = 2)."""
    text = (XKB_DIR / "keycodes" / "evdev").read_text()
    return {name: int(code) - 8 for name, code in _KEYCODE.findall(text)}


@functools.cache
def keysym_chars() -> dict[str, str]:
    """keysym name → the character it types (names without one are absent)."""
    found = _KEYSYM.findall(KEYSYMDEF.read_text())
    chars = {name: chr(int(hexcode, 16)) for name, hexcode in found}
    chars.update(_KEYPAD_CHARS)
    return chars


def keysym_char(name: str) -> str | None:
    """The character of one keysym, ``dead_<x>`` kept as is, None for non-characters."""
    if name.startswith("dead_"):
        return name
    if re.fullmatch(r"U[0-9A-Fa-f]{4,6}", name):
        return chr(int(name[1:], 16))
    if re.fullmatch(r"0x1[0-9A-Fa-f]{6}", name):
        return chr(int(name, 16) - 0x1000000)
    return keysym_chars().get(name)


@functools.cache
def _sections(file: str) -> tuple[dict[str, str], str]:
    """(section name → body, the default section's name) of one symbols file."""
    text = re.sub(r"//[^\n]*", "", (XKB_DIR / "symbols" / file).read_text())
    sections: dict[str, str] = {}
    default = ""
    for match in _SECTION.finditer(text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        sections[match.group(2)] = text[match.end() : i - 1]
        if "default" in match.group(1).split() or not default:
            default = match.group(2)
    return sections, default


def _symbols(reference: str) -> dict[str, list[str]]:
    """Key name → keysym names per level for ``file`` or ``file(section)``, includes
    resolved in order, later definitions replacing earlier ones."""
    file, _, section = reference.partition("(")
    section = section.rstrip(")")
    if not (XKB_DIR / "symbols" / file).is_file():
        return {}
    sections, default = _sections(file)
    body = sections.get(section or default, "")
    keys: dict[str, list[str]] = {}
    for match in _STATEMENT.finditer(body):
        include, key, definition = match.groups()
        if include:
            keys.update(_symbols(include))
            continue
        levels = _SYMBOLS.search(definition) or _LEVELS.search(definition)
        if levels is not None:
            keys[key] = [sym.strip() for sym in levels.group(1).split(",")]
    return keys


@dataclass(frozen=True)
class XkbLayout:
    """One layout as xkb defines it on a pc105 keyboard."""

    name: str
    keys: dict[str, list[str]]  # xkb key name → keysym names per level

    @classmethod
    def load(cls, name: str) -> XkbLayout:
        keys = _symbols("pc")
        keys.update(_symbols(_LAYOUT_FILES[name]))
        return cls(name, keys)

    def char(self, key: str, level: int) -> str | None:
        """What ``key`` types at ``level`` (1 plain, 2 Shift, 3 AltGr); a one-level key
        types the same on every level, as xkb's ONE_LEVEL type does."""
        levels = self.keys.get(key, [])
        if len(levels) == 1:
            level = 1
        if level > len(levels):
            return None
        return keysym_char(levels[level - 1])

    def find(self, char: str) -> tuple[str, int] | None:
        """The key and lowest level that type ``char``, main block before keypad."""
        for level in (1, 2, 3):
            for key in self.keys:
                if not key.startswith("KP") and self.char(key, level) == char:
                    return key, level
        return None
