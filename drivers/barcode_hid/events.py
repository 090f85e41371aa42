"""Raw Linux ``struct input_event`` records: what a read() of /dev/input/eventN returns.

On 64-bit Linux a record is a ``struct timeval`` (seconds and microseconds, two
``long``) then ``__u16 type``, ``__u16 code`` and ``__s32 value``: 24 bytes in native
byte order. Both the evdev device and the simulator's socket deliver this stream, so one
parser serves both.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["EVENT_SIZE", "EventStreamParser", "InputEvent", "pack_events"]

_EVENT = struct.Struct("@llHHi")
EVENT_SIZE = _EVENT.size


class InputEvent(NamedTuple):
    """One input event; ``type``/``code``/``value`` as in linux/input-event-codes.h."""

    sec: int
    usec: int
    type: int
    code: int
    value: int


def pack_events(events: Iterable[InputEvent]) -> bytes:
    """The bytes a device read would return for ``events``."""
    return b"".join(_EVENT.pack(*event) for event in events)


class EventStreamParser:
    """Cuts a byte stream into events; a record split across reads is kept until whole."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[InputEvent]:
        data = self._rest + data
        whole = len(data) - len(data) % EVENT_SIZE
        self._rest = data[whole:]
        return [InputEvent(*fields) for fields in _EVENT.iter_unpack(data[:whole])]
