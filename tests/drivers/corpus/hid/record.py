"""Writes the HID corpus (``<layout>.jsonl``) from xkb's key positions.

Run ``python -m tests.drivers.corpus.hid.record`` to rewrite the files. Each entry is a
stream of raw events as a USB keyboard-wedge scanner produces them through the kernel's
HID driver: per HID report an ``EV_MSC MSC_SCAN`` (the key's HID usage) before each
``EV_KEY``, then ``EV_SYN SYN_REPORT``, with Shift/AltGr/Ctrl in the same report as the
key or in one of their own, autorepeats where a key is held. The keys come from
:mod:`tests.drivers.corpus.hid.xkb` (the layouts as xkeyboard-config defines them), not
from the driver's key maps or the simulator, and each entry's expected codes are written
out by hand below, so decoding the corpus checks the driver against both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.drivers.corpus.hid.xkb import XkbLayout, evdev_codes

HERE = Path(__file__).parent
LAYOUTS = ("us", "uk", "de", "fr")
EV_SYN, EV_KEY, EV_MSC = 0, 1, 4
MSC_SCAN = 4
_START_SEC = 1_764_000_000

# USB HID keyboard usages (page 7) by xkb key name: what MSC_SCAN reports.
_USAGE = {
    "TLDE": 0x35, "AE01": 0x1E, "AE02": 0x1F, "AE03": 0x20, "AE04": 0x21, "AE05": 0x22,
    "AE06": 0x23, "AE07": 0x24, "AE08": 0x25, "AE09": 0x26, "AE10": 0x27, "AE11": 0x2D,
    "AE12": 0x2E, "AD01": 0x14, "AD02": 0x1A, "AD03": 0x08, "AD04": 0x15, "AD05": 0x17,
    "AD06": 0x1C, "AD07": 0x18, "AD08": 0x0C, "AD09": 0x12, "AD10": 0x13, "AD11": 0x2F,
    "AD12": 0x30, "AC01": 0x04, "AC02": 0x16, "AC03": 0x07, "AC04": 0x09, "AC05": 0x0A,
    "AC06": 0x0B, "AC07": 0x0D, "AC08": 0x0E, "AC09": 0x0F, "AC10": 0x33, "AC11": 0x34,
    "BKSL": 0x32, "AB01": 0x1D, "AB02": 0x1B, "AB03": 0x06, "AB04": 0x19, "AB05": 0x05,
    "AB06": 0x11, "AB07": 0x10, "AB08": 0x36, "AB09": 0x37, "AB10": 0x38, "SPCE": 0x2C,
    "LSGT": 0x64, "RTRN": 0x28, "TAB": 0x2B, "KPEN": 0x58, "KP1": 0x59, "KP2": 0x5A,
    "KP3": 0x5B, "KP4": 0x5C, "KP5": 0x5D, "KP6": 0x5E, "KP7": 0x5F, "KP8": 0x60,
    "KP9": 0x61, "KP0": 0x62, "KPDL": 0x63, "LCTL": 0xE0, "LFSH": 0xE1, "LALT": 0xE2,
    "RALT": 0xE6,
}  # fmt: skip
# The modifier keys that select each xkb level.
_LEVEL_KEYS = {1: (), 2: ("LFSH",), 3: ("RALT",)}
_DEAD_FOR = {"^": "dead_circumflex", "`": "dead_grave"}

ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
GS1_128 = "01095011015300031726013110ABC123"
GS1_DM = "010400638133393110LOT7"


@dataclass
class Recorder:
    """Builds one event stream, one HID report at a time."""

    xkb: XkbLayout
    combined: bool  # modifiers share the key's report (else each gets its own)
    events: list[list[int]] = field(default_factory=list)
    _usec: int = 0

    def report(self, changes: list[tuple[str, int]]) -> None:
        sec, usec = _START_SEC + self._usec // 1_000_000, self._usec % 1_000_000
        for key, value in changes:
            if value != 2:  # the kernel makes autorepeats itself: no report, no MSC_SCAN
                self.events.append([sec, usec, EV_MSC, MSC_SCAN, 0x70000 | self._usage(key)])
            self.events.append([sec, usec, EV_KEY, evdev_codes()[key], value])
        self.events.append([sec, usec, EV_SYN, 0, 0])
        self._usec += 1000

    def _usage(self, key: str) -> int:
        # The key left of Enter is "\\ and |" (0x31) on ANSI boards, "Non-US #" on ISO ones.
        return 0x31 if key == "BKSL" and self.xkb.name == "us" else _USAGE[key]

    def stroke(self, key: str, modifiers: tuple[str, ...] = (), repeats: int = 0) -> None:
        if self.combined:
            self.report([*((m, 1) for m in modifiers), (key, 1)])
        else:
            for m in modifiers:
                self.report([(m, 1)])
            self.report([(key, 1)])
        for _ in range(repeats):
            self.report([(key, 2)])
        if self.combined:
            self.report([(key, 0), *((m, 0) for m in reversed(modifiers))])
        else:
            self.report([(key, 0)])
            for m in reversed(modifiers):
                self.report([(m, 0)])

    def char(self, ch: str, *, ctrl: bool = False, repeats: int = 0) -> None:
        found = self.xkb.find(ch)
        if found is None and ch in _DEAD_FOR:
            dead = next(
                (key, level)
                for level in (1, 2, 3)
                for key in self.xkb.keys
                if self.xkb.char(key, level) == _DEAD_FOR[ch]
            )
            self.stroke(dead[0], _LEVEL_KEYS[dead[1]])
            self.stroke("SPCE")
            return
        if found is None:
            raise ValueError(f"{ch!r} has no key on the {self.xkb.name} layout")
        key, level = found
        modifiers = ("LCTL",) * ctrl + _LEVEL_KEYS[level]
        self.stroke(key, modifiers, repeats)

    def text(self, text: str) -> None:
        for ch in text:
            self.char(ch)

    def keypad(self, digits: str) -> None:
        for digit in digits:
            self.stroke(f"KP{digit}")

    def alt_code(self, digits: str) -> None:
        self.report([("LALT", 1)])
        self.keypad(digits)
        self.report([("LALT", 0)])


@dataclass(frozen=True)
class Entry:
    name: str
    codes: list[str]
    actions: list[tuple[str, ...]]
    layouts: tuple[str, ...] = LAYOUTS


ENTRIES = [
    Entry("traveller serial", ["LG-000123"], [("text", "LG-000123"), ("key", "RTRN")]),
    Entry("badge", ["OP-1001"], [("text", "OP-1001"), ("key", "RTRN")]),
    Entry(
        "GS1-128 with ]C1, GS as Ctrl+]",
        ["]C1" + GS1_128 + "\x1d" + "21SN0042"],
        [("text", "]C1" + GS1_128), ("ctrl", "]"), ("text", "21SN0042"), ("key", "RTRN")],
    ),
    Entry(
        "GS1 DataMatrix with ]d2, GS as Alt+0029",
        ["]d2" + GS1_DM + "\x1d" + "21X9Y8"],
        [("text", "]d2" + GS1_DM), ("alt", "0029"), ("text", "21X9Y8"), ("key", "RTRN")],
    ),
    Entry(
        "EAN-13 with ]E0, digits and Enter on the keypad",
        ["]E04006381333931"],
        [("text", "]E0"), ("keypad", "4006381333931"), ("key", "KPEN")],
    ),
    Entry(
        "autorepeat while a key is held",
        ["ABCD"],
        [("text", "AB"), ("repeat", "C"), ("text", "D"), ("key", "RTRN")],
    ),
    Entry(
        "Code 39 with ]A0",
        ["]A0ABC-12.5 $/+%"],
        [("text", "]A0ABC-12.5 $/+%"), ("key", "RTRN")],
    ),
    Entry(
        "QR Code with ]Q1",
        ["]Q1https://ex.am/p?id=42&k=v#x_y~z"],
        [("text", "]Q1https://ex.am/p?id=42&k=v#x_y~z"), ("key", "RTRN")],
    ),
    Entry(
        "ISO 15434 envelope: RS, GS and EOT as Alt codes",
        ["[)>\x1e06\x1dP12345\x1e\x04"],
        [
            ("text", "[)>"),
            ("alt", "0030"),
            ("text", "06"),
            ("alt", "0029"),
            ("text", "P12345"),
            ("alt", "0030"),
            ("alt", "0004"),
            ("key", "RTRN"),
        ],
    ),
    Entry(
        "two codes in one stream",
        ["A1", "B2"],
        [("text", "A1"), ("key", "RTRN"), ("text", "B2"), ("key", "RTRN")],
    ),
    Entry("every printable ASCII character", [ASCII], [("text", ASCII), ("key", "RTRN")]),
    Entry("UK pound and hash", ['£5 "@" #~'], [("text", '£5 "@" #~'), ("key", "RTRN")], ("uk",)),
    Entry("German letters", ["Größe ÄÖÜ"], [("text", "Größe ÄÖÜ"), ("key", "RTRN")], ("de",)),
    Entry("French letters", ["été à ç ù"], [("text", "été à ç ù"), ("key", "RTRN")], ("fr",)),
    Entry(
        "GS as Ctrl + the key in the US ] position",
        ["]C1" + GS1_128 + "\x1d" + "10X"],
        [("text", "]C1" + GS1_128), ("ctrl_key", "AD12"), ("text", "10X"), ("key", "RTRN")],
        ("de", "fr"),
    ),
]


def record(entry: Entry, xkb: XkbLayout, combined: bool) -> list[list[int]]:
    rec = Recorder(xkb, combined)
    for action, *args in entry.actions:
        if action == "text":
            rec.text(args[0])
        elif action == "key":
            rec.stroke(args[0])
        elif action == "keypad":
            rec.keypad(args[0])
        elif action == "alt":
            rec.alt_code(args[0])
        elif action == "ctrl":
            rec.char(args[0], ctrl=True)
        elif action == "ctrl_key":
            rec.stroke(args[0], ("LCTL",))
        elif action == "repeat":
            rec.char(args[0], repeats=3)
        else:
            raise ValueError(f"unknown action {action!r}")
    return rec.events


def main() -> None:
    for name in LAYOUTS:
        xkb = XkbLayout.load(name)
        lines = []
        for i, entry in enumerate(e for e in ENTRIES if name in e.layouts):
            combined = i % 2 == 1
            doc = {
                "name": entry.name,
                "layout": name,
                "terminator": "enter",
                "reports": "combined" if combined else "separate",
                "codes": entry.codes,
                "events": record(entry, xkb, combined),
            }
            lines.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
