"""Keyboard layouts without an X server: Linux key codes → characters, per layout.

A HID scanner "types" its data on a keyboard of the country it is set to, and the
kernel hands us key codes (positions), not characters (python-evdev#69). These tables
say what each position types on the US, UK, German and French layouts at the levels a
scanner uses: plain, Shift and AltGr (right Alt), plus the keypad with NumLock on. They
follow xkeyboard-config (``symbols/us``, ``gb``, ``de``, ``fr``, ``latin``, ``keypad``);
``tests/drivers/test_barcode_hid.py`` compares them with those files where present.

Key codes are those of ``linux/input-event-codes.h`` (stable kernel ABI), written out
here so this module needs no evdev; a test checks them against ``evdev.ecodes``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ACUTE",
    "ALT_KEYS",
    "CIRCUMFLEX",
    "CTRL_KEYS",
    "DIAERESIS",
    "GRAVE",
    "KEYPAD_DIGITS",
    "LAYOUT_NAMES",
    "SHIFT_KEYS",
    "Dead",
    "Key",
    "KeyLevels",
    "Layout",
    "LayoutName",
    "Symbol",
    "layout",
]


class Key(enum.IntEnum):
    """The key codes this module maps (names and values as in the kernel header)."""

    KEY_ESC = 1
    KEY_1 = 2
    KEY_2 = 3
    KEY_3 = 4
    KEY_4 = 5
    KEY_5 = 6
    KEY_6 = 7
    KEY_7 = 8
    KEY_8 = 9
    KEY_9 = 10
    KEY_0 = 11
    KEY_MINUS = 12
    KEY_EQUAL = 13
    KEY_BACKSPACE = 14
    KEY_TAB = 15
    KEY_Q = 16
    KEY_W = 17
    KEY_E = 18
    KEY_R = 19
    KEY_T = 20
    KEY_Y = 21
    KEY_U = 22
    KEY_I = 23
    KEY_O = 24
    KEY_P = 25
    KEY_LEFTBRACE = 26
    KEY_RIGHTBRACE = 27
    KEY_ENTER = 28
    KEY_LEFTCTRL = 29
    KEY_A = 30
    KEY_S = 31
    KEY_D = 32
    KEY_F = 33
    KEY_G = 34
    KEY_H = 35
    KEY_J = 36
    KEY_K = 37
    KEY_L = 38
    KEY_SEMICOLON = 39
    KEY_APOSTROPHE = 40
    KEY_GRAVE = 41
    KEY_LEFTSHIFT = 42
    KEY_BACKSLASH = 43
    KEY_Z = 44
    KEY_X = 45
    KEY_C = 46
    KEY_V = 47
    KEY_B = 48
    KEY_N = 49
    KEY_M = 50
    KEY_COMMA = 51
    KEY_DOT = 52
    KEY_SLASH = 53
    KEY_RIGHTSHIFT = 54
    KEY_KPASTERISK = 55
    KEY_LEFTALT = 56
    KEY_SPACE = 57
    KEY_CAPSLOCK = 58
    KEY_NUMLOCK = 69
    KEY_KP7 = 71
    KEY_KP8 = 72
    KEY_KP9 = 73
    KEY_KPMINUS = 74
    KEY_KP4 = 75
    KEY_KP5 = 76
    KEY_KP6 = 77
    KEY_KPPLUS = 78
    KEY_KP1 = 79
    KEY_KP2 = 80
    KEY_KP3 = 81
    KEY_KP0 = 82
    KEY_KPDOT = 83
    KEY_102ND = 86
    KEY_KPENTER = 96
    KEY_RIGHTCTRL = 97
    KEY_KPSLASH = 98
    KEY_RIGHTALT = 100
    KEY_KPEQUAL = 117
    KEY_LEFTMETA = 125
    KEY_RIGHTMETA = 126


SHIFT_KEYS = frozenset({Key.KEY_LEFTSHIFT, Key.KEY_RIGHTSHIFT})
CTRL_KEYS = frozenset({Key.KEY_LEFTCTRL, Key.KEY_RIGHTCTRL})
# Right Alt is AltGr on layouts that have a third level (Layout.right_alt_is_altgr).
ALT_KEYS = frozenset({Key.KEY_LEFTALT, Key.KEY_RIGHTALT})

# For Alt + keypad decimal codes (Alt held, KP0 KP0 KP2 KP9 → chr(29)).
KEYPAD_DIGITS: Mapping[int, int] = {
    Key.KEY_KP0: 0,
    Key.KEY_KP1: 1,
    Key.KEY_KP2: 2,
    Key.KEY_KP3: 3,
    Key.KEY_KP4: 4,
    Key.KEY_KP5: 5,
    Key.KEY_KP6: 6,
    Key.KEY_KP7: 7,
    Key.KEY_KP8: 8,
    Key.KEY_KP9: 9,
}


@dataclass(frozen=True, slots=True)
class Dead:
    """A dead key: types nothing itself and accents the next character.

    ``name`` is the xkb keysym without ``dead_``; ``spacing`` is what it types when
    followed by Space (how a scanner on a German layout sends "^" and "`").
    """

    name: str
    spacing: str
    combining: str


CIRCUMFLEX = Dead("circumflex", "^", "\u0302")
GRAVE = Dead("grave", "`", "\u0300")
ACUTE = Dead("acute", "\u00b4", "\u0301")
DIAERESIS = Dead("diaeresis", "\u00a8", "\u0308")

Symbol = str | Dead


@dataclass(frozen=True, slots=True)
class KeyLevels:
    """What one key types: plain, with Shift, with AltGr (None: nothing on that level)."""

    plain: Symbol
    shift: Symbol | None = None
    altgr: Symbol | None = None

    def symbol(self, *, shift: bool, altgr: bool) -> Symbol | None:
        if altgr:
            # A scanner never needs Shift+AltGr (level 4); AltGr alone picks level 3.
            return self.altgr
        return self.shift if shift else self.plain

    @property
    def alphabetic(self) -> bool:
        """CapsLock applies: a letter whose Shift level is its capital."""
        plain, shift = self.plain, self.shift
        return isinstance(plain, str) and plain.isalpha() and shift == plain.upper()


LayoutName = Literal["us", "uk", "de", "fr"]
LAYOUT_NAMES: tuple[LayoutName, ...] = ("us", "uk", "de", "fr")


@dataclass(frozen=True, slots=True)
class Layout:
    """One keyboard layout as a scanner types on it."""

    name: LayoutName
    keys: Mapping[int, KeyLevels]  # the main block: letters, digits, punctuation, space
    keypad: Mapping[int, str]  # with NumLock on (scanners that use the keypad assume it)
    right_alt_is_altgr: bool


K = Key
_ROW_AD = (K.KEY_Q, K.KEY_W, K.KEY_E, K.KEY_R, K.KEY_T, K.KEY_Y, K.KEY_U, K.KEY_I, K.KEY_O, K.KEY_P)
_ROW_AC = (K.KEY_A, K.KEY_S, K.KEY_D, K.KEY_F, K.KEY_G, K.KEY_H, K.KEY_J, K.KEY_K, K.KEY_L)
_ROW_AB = (K.KEY_Z, K.KEY_X, K.KEY_C, K.KEY_V, K.KEY_B, K.KEY_N, K.KEY_M)

# xkb symbols/keypad (x11): the NumLock level; the German layout's keypad "." types ","
# (symbols/de includes kpdl(comma)).
_KEYPAD: dict[int, str] = {
    K.KEY_KP0: "0",
    K.KEY_KP1: "1",
    K.KEY_KP2: "2",
    K.KEY_KP3: "3",
    K.KEY_KP4: "4",
    K.KEY_KP5: "5",
    K.KEY_KP6: "6",
    K.KEY_KP7: "7",
    K.KEY_KP8: "8",
    K.KEY_KP9: "9",
    K.KEY_KPDOT: ".",
    K.KEY_KPSLASH: "/",
    K.KEY_KPASTERISK: "*",
    K.KEY_KPMINUS: "-",
    K.KEY_KPPLUS: "+",
    K.KEY_KPEQUAL: "=",
}

_Row = tuple[Key, Symbol, Symbol | None, Symbol | None]


def _letters(codes: tuple[Key, ...], letters: str) -> list[_Row]:
    return [(code, ch, ch.upper(), None) for code, ch in zip(codes, letters, strict=False)]


def _table(rows: list[_Row]) -> dict[int, KeyLevels]:
    """Later rows override earlier ones for the same key, as xkb includes do."""
    return {int(code): KeyLevels(plain, shift, altgr) for code, plain, shift, altgr in rows}


def _us() -> Layout:
    # symbols/us "basic"; <LSGT> (the 102nd key, absent on US boards) from symbols/pc.
    rows: list[_Row] = [
        (K.KEY_GRAVE, "`", "~", None),
        (K.KEY_1, "1", "!", None),
        (K.KEY_2, "2", "@", None),
        (K.KEY_3, "3", "#", None),
        (K.KEY_4, "4", "$", None),
        (K.KEY_5, "5", "%", None),
        (K.KEY_6, "6", "^", None),
        (K.KEY_7, "7", "&", None),
        (K.KEY_8, "8", "*", None),
        (K.KEY_9, "9", "(", None),
        (K.KEY_0, "0", ")", None),
        (K.KEY_MINUS, "-", "_", None),
        (K.KEY_EQUAL, "=", "+", None),
        *_letters(_ROW_AD, "qwertyuiop"),
        (K.KEY_LEFTBRACE, "[", "{", None),
        (K.KEY_RIGHTBRACE, "]", "}", None),
        *_letters(_ROW_AC, "asdfghjkl"),
        (K.KEY_SEMICOLON, ";", ":", None),
        (K.KEY_APOSTROPHE, "'", '"', None),
        (K.KEY_BACKSLASH, "\\", "|", None),
        *_letters(_ROW_AB, "zxcvbnm"),
        (K.KEY_COMMA, ",", "<", None),
        (K.KEY_DOT, ".", ">", None),
        (K.KEY_SLASH, "/", "?", None),
        (K.KEY_SPACE, " ", " ", None),
        (K.KEY_102ND, "<", ">", None),
    ]
    return Layout("us", _table(rows), _KEYPAD, right_alt_is_altgr=False)


def _uk() -> Layout:
    # symbols/gb "basic" over symbols/latin: " and @ swap with the US places, # and ~ sit
    # left of Enter, \ and | on the 102nd key (InvenTree#10589 is this swap biting).
    rows: list[_Row] = [
        (K.KEY_GRAVE, "`", "\u00ac", "|"),
        (K.KEY_1, "1", "!", None),
        (K.KEY_2, "2", '"', None),
        (K.KEY_3, "3", "\u00a3", None),
        (K.KEY_4, "4", "$", "\u20ac"),
        (K.KEY_5, "5", "%", None),
        (K.KEY_6, "6", "^", None),
        (K.KEY_7, "7", "&", None),
        (K.KEY_8, "8", "*", None),
        (K.KEY_9, "9", "(", None),
        (K.KEY_0, "0", ")", None),
        (K.KEY_MINUS, "-", "_", None),
        (K.KEY_EQUAL, "=", "+", None),
        *_letters(_ROW_AD, "qwertyuiop"),
        (K.KEY_LEFTBRACE, "[", "{", None),
        (K.KEY_RIGHTBRACE, "]", "}", None),
        *_letters(_ROW_AC, "asdfghjkl"),
        (K.KEY_SEMICOLON, ";", ":", None),
        (K.KEY_APOSTROPHE, "'", "@", None),
        (K.KEY_BACKSLASH, "#", "~", None),
        *_letters(_ROW_AB, "zxcvbnm"),
        (K.KEY_COMMA, ",", "<", None),
        (K.KEY_DOT, ".", ">", None),
        (K.KEY_SLASH, "/", "?", None),
        (K.KEY_SPACE, " ", " ", None),
        (K.KEY_102ND, "\\", "|", None),
    ]
    return Layout("uk", _table(rows), _KEYPAD, right_alt_is_altgr=True)


def _de() -> Layout:
    # symbols/de "basic" over latin(type4): QWERTZ, ^ and ` only as dead keys, the
    # brackets, backslash, @ and ~ on AltGr.
    rows: list[_Row] = [
        (K.KEY_GRAVE, CIRCUMFLEX, "\u00b0", None),
        (K.KEY_1, "1", "!", None),
        (K.KEY_2, "2", '"', "\u00b2"),
        (K.KEY_3, "3", "\u00a7", "\u00b3"),
        (K.KEY_4, "4", "$", None),
        (K.KEY_5, "5", "%", None),
        (K.KEY_6, "6", "&", None),
        (K.KEY_7, "7", "/", "{"),
        (K.KEY_8, "8", "(", "["),
        (K.KEY_9, "9", ")", "]"),
        (K.KEY_0, "0", "=", "}"),
        (K.KEY_MINUS, "\u00df", "?", "\\"),
        (K.KEY_EQUAL, ACUTE, GRAVE, None),
        *_letters(_ROW_AD, "qwertzuiop"),
        (K.KEY_Q, "q", "Q", "@"),
        (K.KEY_E, "e", "E", "\u20ac"),
        (K.KEY_LEFTBRACE, "\u00fc", "\u00dc", None),
        (K.KEY_RIGHTBRACE, "+", "*", "~"),
        *_letters(_ROW_AC, "asdfghjkl"),
        (K.KEY_SEMICOLON, "\u00f6", "\u00d6", None),
        (K.KEY_APOSTROPHE, "\u00e4", "\u00c4", None),
        (K.KEY_BACKSLASH, "#", "'", None),
        *_letters(_ROW_AB, "yxcvbnm"),
        (K.KEY_M, "m", "M", "\u00b5"),
        (K.KEY_COMMA, ",", ";", None),
        (K.KEY_DOT, ".", ":", None),
        (K.KEY_SLASH, "-", "_", None),
        (K.KEY_SPACE, " ", " ", None),
        (K.KEY_102ND, "<", ">", "|"),
    ]
    keypad: dict[int, str] = {**_KEYPAD, K.KEY_KPDOT: ","}
    return Layout("de", _table(rows), keypad, right_alt_is_altgr=True)


def _fr() -> Layout:
    # symbols/fr "basic" over latin: AZERTY, digits need Shift (agirorn/node-hid-stream#16),
    # # { [ | ` \ ^ @ ] } ~ on AltGr of the top row, ^ and ¨ also as a dead key.
    rows: list[_Row] = [
        # xkb puts ~ on Shift+² as well as on AltGr+é; decode both.
        (K.KEY_GRAVE, "\u00b2", "~", None),
        (K.KEY_1, "&", "1", None),
        (K.KEY_2, "\u00e9", "2", "~"),
        (K.KEY_3, '"', "3", "#"),
        (K.KEY_4, "'", "4", "{"),
        (K.KEY_5, "(", "5", "["),
        (K.KEY_6, "-", "6", "|"),
        (K.KEY_7, "\u00e8", "7", "`"),
        (K.KEY_8, "_", "8", "\\"),
        (K.KEY_9, "\u00e7", "9", "^"),
        (K.KEY_0, "\u00e0", "0", "@"),
        (K.KEY_MINUS, ")", "\u00b0", "]"),
        (K.KEY_EQUAL, "=", "+", "}"),
        *_letters(_ROW_AD, "azertyuiop"),
        (K.KEY_E, "e", "E", "\u20ac"),
        (K.KEY_LEFTBRACE, CIRCUMFLEX, DIAERESIS, None),
        (K.KEY_RIGHTBRACE, "$", "\u00a3", "\u00a4"),
        *_letters(_ROW_AC, "qsdfghjkl"),
        (K.KEY_SEMICOLON, "m", "M", None),
        (K.KEY_APOSTROPHE, "\u00f9", "%", None),
        (K.KEY_BACKSLASH, "*", "\u00b5", None),
        *_letters(_ROW_AB, "wxcvbn"),
        (K.KEY_M, ",", "?", None),
        (K.KEY_COMMA, ";", ".", None),
        (K.KEY_DOT, ":", "/", None),
        (K.KEY_SLASH, "!", "\u00a7", None),
        (K.KEY_SPACE, " ", " ", None),
        (K.KEY_102ND, "<", ">", "|"),
    ]
    return Layout("fr", _table(rows), _KEYPAD, right_alt_is_altgr=True)


def layout(name: LayoutName) -> Layout:
    """The layout called ``name`` (built on each call: a few hundred objects, once per
    connect)."""
    builders = {"us": _us, "uk": _uk, "de": _de, "fr": _fr}
    try:
        return builders[name]()
    except KeyError:
        raise ValueError(f"unknown layout {name!r}: one of {', '.join(LAYOUT_NAMES)}") from None
