"""ZPL II framing and reading: a print job with its job id, and what a printer makes of a stream.

Pure: no I/O. The driver uses ``frame_job``; the simulator (and the tests) read the byte
stream a printer receives with ``ZplReader`` and turn each format into a ``PrintedLabel``
with ``read_label``, the way a printer's parser sees them:

* a command is a prefix (``^`` format, ``~`` control) and a two-character name; its
  parameters run up to the next prefix byte. That is why customer text must never carry a
  raw ``^`` or ``~``, and why ``render.field_data`` escapes them.
* ``~`` commands act as soon as they arrive, even in the middle of a format; ``^XA`` …
  ``^XZ`` (or the ETX control character) bracket a label format.
* CR and LF are ignored anywhere in the command stream.
* ``^FH`` turns on hex escapes in the next field's data (``_5E`` is one byte), and
  ``^CI28`` makes field data UTF-8; without it the printer reads single-byte code page 850.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "JOB_COMMENT_PREFIX",
    "Barcode",
    "Command",
    "PrintedLabel",
    "TextField",
    "ZplFormat",
    "ZplReader",
    "decode_code128",
    "frame_job",
    "job_id_of",
    "read_label",
]

# The comment that carries the job id: `^FXjob=<id>^FS` right after `^XA`.
JOB_COMMENT_PREFIX = "job="
# Job ids go into a ^FX comment, which has no escapes and ends at the next ^ or ~.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#/+=-]{0,63}")
# The templates are laid out for 8 dots/mm (203 dpi), which ^MU calls 200.
_TEMPLATE_DPI = 203

_ETX = 0x03  # ends a format, as ^XZ does
_STOPS = frozenset(b"^~\x03")  # where a command's parameters end
_STOP_PATTERN = re.compile(rb"[\^~\x03]")
# Bytes kept while waiting for a command to begin; beyond this they are noise.
_MAX_STRAY = 65536
_IGNORED = b"\r\n"
# Commands without parameters: known complete as soon as their name has arrived, which
# matters for the ~ commands a host sends on their own (nothing follows ~HS until the
# reply has come back).
_NO_PARAMETERS = frozenset(
    {"^XA", "^XZ", "^FS", "~HS", "~HI", "~HM", "~HD", "~JA", "~PS", "~PP", "~JR"}
)
_UTF8 = "28"  # ^CI28: Unicode UTF-8


def frame_job(zpl: str, job_id: str, *, dpi: int = _TEMPLATE_DPI) -> bytes:
    """Return the bytes to send for one label format, with the job id in a ^FX comment.

    The comment shows in the printer's received-format log (and the simulator's record),
    so a label in the hand can be traced to its job. A format for a 300 or 600 dpi head
    gets ``^MUd,200,<dpi>`` so the printer scales the 203-dpi layout. Raises ValueError on a
    job id a comment cannot carry, on anything but one ``^XA`` … ``^XZ`` format, on control
    (``~``) commands, which would act at once and could put an unasked-for reply on the
    line, and on non-ASCII text without ``^CI28``.
    """
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"job id {job_id!r} must match {_JOB_ID.pattern}")
    body = zpl.strip()
    upper = body.upper()
    if not (upper.startswith("^XA") and upper.endswith("^XZ")) or upper.count("^XA") != 1:
        raise ValueError("a print job must be one label format, ^XA … ^XZ")
    if "~" in body or "\x03" in body:
        raise ValueError("a print job must not contain control commands (~) or ETX")
    if not body.isascii() and "^CI28" not in upper:
        raise ValueError("non-ASCII text prints as UTF-8 only after ^CI28")
    head = f"^XA^FX{JOB_COMMENT_PREFIX}{job_id}^FS"
    if dpi != _TEMPLATE_DPI:
        head += f"^MUd,200,{dpi}"
    return (head + body[3:] + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Command:
    """One command as received: ``prefix + name`` (upper case) and its raw parameters."""

    code: str  # "^FO", "~HS", "^A@" …
    params: bytes  # with CR and LF removed


@dataclass(frozen=True, slots=True)
class ZplFormat:
    """The commands between ``^XA`` and ``^XZ``, both included, and the bytes they came in."""

    commands: tuple[Command, ...]
    raw: bytes


@dataclass(eq=False)
class ZplReader:
    """Reads a printer's input stream incrementally: feed bytes, get complete items.

    ``feed`` returns, in arrival order, each control (``~``) command as a ``Command`` and
    each complete format as a ``ZplFormat``. Format commands outside ``^XA`` … ``^XZ`` and
    bytes outside any command are dropped and counted, as a printer ignores them.
    """

    ignored_bytes: int = 0
    ignored_commands: int = 0
    _pending: bytearray = field(default_factory=bytearray)
    _format: list[Command] | None = None
    _raw: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Command | ZplFormat]:
        self._pending += data
        out: list[Command | ZplFormat] = []
        while (taken := self._take_command()) is not None:
            command, raw = taken
            item = self._accept(command, raw)
            if item is not None:
                out.append(item)
        return out

    @property
    def in_format(self) -> bool:
        """Whether a format has begun and not ended (the ~HS "partial format" flag)."""
        return self._format is not None

    def _take_command(self) -> tuple[Command, bytes] | None:
        """The next complete command and its raw bytes, stray bytes before it included."""
        pending = self._pending
        search_from = 0
        while True:
            start = _next_prefix(pending, search_from)
            if start is None:
                if len(pending) > _MAX_STRAY:
                    self.ignored_bytes += sum(1 for b in pending if b not in _IGNORED)
                    pending.clear()
                return None
            if pending[start] == _ETX:
                code, params_start = "^XZ", start + 1
                break
            # The name: the two characters after the prefix, CR and LF skipped.
            name = bytearray()
            params_start = start + 1
            while (
                len(name) < 2
                and params_start < len(pending)
                and pending[params_start] not in _STOPS
            ):
                if pending[params_start] not in _IGNORED:
                    name.append(pending[params_start])
                params_start += 1
            if len(name) == 2:
                code = chr(pending[start]) + name.decode("latin-1").upper()
                break
            if params_start >= len(pending):
                return None  # the name may end in the next chunk
            search_from = start + 1  # a prefix cut short by another: a stray byte
        if code in _NO_PARAMETERS or pending[start] == _ETX:
            end: int | None = params_start
        else:
            end = _next_prefix(pending, params_start)
            if end is None:
                return None  # its parameters may go on in the next chunk
        self.ignored_bytes += sum(1 for b in pending[:start] if b not in _IGNORED)
        raw = bytes(pending[:end])
        params = bytes(b for b in pending[params_start:end] if b not in _IGNORED)
        del pending[:end]
        return Command(code, params), raw

    def _accept(self, command: Command, raw: bytes) -> Command | ZplFormat | None:
        if command.code.startswith("~"):
            return command
        if command.code == "^XA" and self._format is None:
            self._format, self._raw = [], bytearray()
            raw = raw[raw.rfind(b"^") :]  # what came before the format is not part of it
        if self._format is None:
            self.ignored_commands += 1
            return None
        self._format.append(command)
        self._raw += raw
        if command.code != "^XZ":
            return None
        done = ZplFormat(tuple(self._format), bytes(self._raw))
        self._format = None
        return done


@dataclass(frozen=True, slots=True)
class TextField:
    """A text field as printed: origin, font (``^A`` parameters) and the decoded text."""

    x: int
    y: int
    font: str
    text: str


@dataclass(frozen=True, slots=True)
class Barcode:
    """A barcode field: its command (``^BC`` …), parameters and data as sent."""

    x: int
    y: int
    code: str
    params: str
    data: str


@dataclass(frozen=True, slots=True)
class PrintedLabel:
    """A format as the printer understood it."""

    job_id: str | None
    fields: tuple[TextField, ...]
    barcodes: tuple[Barcode, ...]
    commands: tuple[str, ...]  # every command code in order, ^XA and ^XZ included
    comments: tuple[str, ...]
    quantity: int
    utf8: bool  # whether ^CI28 was in force for the field data
    raw: bytes

    @property
    def texts(self) -> list[str]:
        return [f.text for f in self.fields]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the simulator's control API lists labels with it)."""
        return {
            "job_id": self.job_id,
            "fields": [dataclasses.asdict(f) for f in self.fields],
            "barcodes": [dataclasses.asdict(b) for b in self.barcodes],
            "commands": list(self.commands),
            "comments": list(self.comments),
            "quantity": self.quantity,
            "utf8": self.utf8,
            "zpl": self.raw.decode("utf-8" if self.utf8 else "cp850", errors="replace"),
        }


@dataclass
class _Field:
    x: int = 0
    y: int = 0
    font: str = ""
    hex_indicator: int | None = None
    barcode: Command | None = None
    data: bytes | None = None


def read_label(fmt: ZplFormat, *, utf8: bool = False) -> tuple[PrintedLabel, bool]:
    """Interpret one format; utf8 is the printer's ^CI state before it, which persists.

    Returns the label and the ^CI state after it.
    """
    texts: list[TextField] = []
    barcodes: list[Barcode] = []
    comments: list[str] = []
    quantity = 1
    default_font = "0"
    current = _Field()
    for command in fmt.commands:
        code, params = command.code, command.params
        font = current.font or default_font
        if code == "^CI":
            utf8 = params.split(b",")[0].strip() == _UTF8.encode()
        elif code in ("^FO", "^FT"):
            x, y, *_ = [*params.split(b","), b"", b""]
            current.x, current.y = _number(x), _number(y)
        elif code.startswith("^A"):
            current.font = code[2] + params.decode("latin-1")
        elif code == "^CF":
            default_font = params.decode("latin-1")
        elif code == "^FH":
            current.hex_indicator = params[0] if params else ord("_")
        elif code.startswith("^B") and code != "^BY":
            current.barcode = command
        elif code in ("^FD", "^FV"):
            current.data = params
        elif code == "^FX":
            comments.append(params.decode("utf-8", errors="replace"))
        elif code == "^PQ":
            quantity = max(1, _number(params.split(b",")[0]) or 1)
        elif code == "^FS":
            if current.data is not None:
                text = _decode(current.data, current.hex_indicator, utf8)
                if current.barcode is not None:
                    barcode = current.barcode
                    params_text = barcode.params.decode("latin-1")
                    barcodes.append(Barcode(current.x, current.y, barcode.code, params_text, text))
                else:
                    texts.append(TextField(current.x, current.y, font, text))
            current = _Field()
    label = PrintedLabel(
        job_id=job_id_of(comments),
        fields=tuple(texts),
        barcodes=tuple(barcodes),
        commands=tuple(c.code for c in fmt.commands),
        comments=tuple(comments),
        quantity=quantity,
        utf8=utf8,
        raw=fmt.raw,
    )
    return label, utf8


def job_id_of(comments: tuple[str, ...] | list[str]) -> str | None:
    """The job id of the first ``^FXjob=…`` comment, if any."""
    for comment in comments:
        if comment.startswith(JOB_COMMENT_PREFIX):
            return comment[len(JOB_COMMENT_PREFIX) :].strip()
    return None


# ^BC invocation codes that stand for a character (ZPL II ^BC, mode N), and the start codes.
_CODE128_CHARACTERS = {">0": ">", "><": "^", ">=": "~"}
_CODE128_STARTS = (">9", ">:", ">;")


def decode_code128(data: str) -> str:
    """What a ^BC (mode N) barcode with this field data encodes: start and invocation codes
    undone. Other invocation codes (function characters, subset shifts) are kept as sent."""
    if data[:2] in _CODE128_STARTS:
        data = data[2:]
    out: list[str] = []
    i = 0
    while i < len(data):
        pair = data[i : i + 2]
        if pair in _CODE128_CHARACTERS:
            out.append(_CODE128_CHARACTERS[pair])
            i += 2
        else:
            out.append(data[i])
            i += 1
    return "".join(out)


def _next_prefix(data: bytearray, start: int) -> int | None:
    found = _STOP_PATTERN.search(data, start)
    return None if found is None else found.start()


def _number(raw: bytes) -> int:
    try:
        return int(raw.strip() or b"0")
    except ValueError:
        return 0


def _decode(data: bytes, hex_indicator: int | None, utf8: bool) -> str:
    """Field data as printed: ^FH escapes to bytes, then the ^CI encoding."""
    if hex_indicator is not None:
        out = bytearray()
        i = 0
        while i < len(data):
            pair = data[i + 1 : i + 3]
            if data[i] == hex_indicator and len(pair) == 2 and _is_hex(pair):
                out.append(int(pair, 16))
                i += 3
            else:
                out.append(data[i])
                i += 1
        data = bytes(out)
    return data.decode("utf-8" if utf8 else "cp850", errors="replace")


def _is_hex(pair: bytes) -> bool:
    return all(b in b"0123456789abcdefABCDEF" for b in pair)
