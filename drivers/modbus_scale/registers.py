"""The scale's register map as a pure codec: registers to a weight reading and back.

No I/O here. The driver decodes what it reads with :func:`decode_reading`; the simulator
encodes what its pan holds with :func:`encode_reading` from the same :class:`RegisterMap`,
so a change to the map changes both sides at once. Also here: the RS-485 character
timing that sets the inter-frame gap, the stability window used when a scale has no
stable flag, and a walk over Modbus TCP (MBAP) frames used to spot late replies.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "GRAMS_PER_UNIT",
    "MAX_READ_REGISTERS",
    "RegisterDecodeError",
    "RegisterMap",
    "StabilityWindow",
    "Unit",
    "WeightReading",
    "WeightType",
    "WordOrder",
    "decode_reading",
    "encode_reading",
    "from_grams",
    "mbap_frames",
    "rtu_char_time_s",
    "rtu_min_gap_s",
    "to_grams",
]

Unit = Literal["g", "kg", "lb", "oz"]
WeightType = Literal["float32", "int32", "uint32", "int16", "uint16"]
WordOrder = Literal["big", "little"]
RegisterType = Literal["holding", "input"]

# Exact by definition (international avoirdupois pound, 1959).
GRAMS_PER_UNIT: Mapping[Unit, float] = {
    "g": 1.0,
    "kg": 1000.0,
    "lb": 453.59237,
    "oz": 28.349523125,
}

# The Modbus limit for one read of holding or input registers (FC03/FC04).
MAX_READ_REGISTERS = 125

# struct format (big-endian within each 16-bit word, as Modbus sends it) and word count.
_LAYOUT: Mapping[WeightType, tuple[str, int]] = {
    "float32": (">f", 2),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "int16": (">h", 1),
    "uint16": (">H", 1),
}

_INT_RANGE: Mapping[WeightType, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
}


class RegisterDecodeError(ValueError):
    """The registers read do not make a reading (wrong count, unknown unit code, NaN)."""


def to_grams(value: float, unit: Unit) -> float:
    return value * GRAMS_PER_UNIT[unit]


def from_grams(grams: float, unit: Unit) -> float:
    return grams / GRAMS_PER_UNIT[unit]


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """Where a scale keeps its weight, status and unit, and how they are coded.

    Addresses are protocol (0-based) addresses, as they travel in the frame: a manual's
    "40001" is address 0 of the holding registers.
    """

    weight_address: int
    weight_type: WeightType = "float32"
    word_order: WordOrder = "big"
    weight_decimals: int = 0
    register_type: RegisterType = "holding"
    # A fixed unit, or None when the unit is read from unit_address through unit_codes.
    unit: Unit | None = "kg"
    unit_address: int | None = None
    unit_codes: Mapping[int, Unit] = field(default_factory=dict)
    status_address: int | None = None
    stable_bit: int | None = None
    over_range_bit: int | None = None
    under_range_bit: int | None = None
    # Without an over-range bit, a reading above capacity counts as over range.
    capacity_g: float | None = None

    @property
    def weight_words(self) -> int:
        return _LAYOUT[self.weight_type][1]

    @property
    def span(self) -> tuple[int, int]:
        """First address and count of the one read that gets weight, status and unit
        together (so the stable flag belongs to the weight it is read with)."""
        addresses = [self.weight_address, self.weight_address + self.weight_words - 1]
        addresses += [a for a in (self.status_address, self.unit_address) if a is not None]
        first = min(addresses)
        return first, max(addresses) - first + 1


@dataclass(frozen=True, slots=True)
class WeightReading:
    """One reading of the scale.

    ``grams`` is the net weight converted to grams; ``value`` and ``unit`` are what the
    scale shows. ``at`` is the monotonic time the request was sent: the scale sampled
    no earlier than that. ``raw`` holds the registers read, for diagnostics.
    """

    grams: float
    stable: bool
    over_range: bool
    under_range: bool
    unit: Unit
    value: float
    raw: tuple[int, ...]
    at: float

    @property
    def in_range(self) -> bool:
        return not (self.over_range or self.under_range)

    def as_dict(self) -> dict[str, Any]:
        return {
            "grams": self.grams,
            "stable": self.stable,
            "over_range": self.over_range,
            "under_range": self.under_range,
            "unit": self.unit,
            "value": self.value,
            "raw": list(self.raw),
            "at": self.at,
        }


def _words_to_bytes(words: Sequence[int], order: WordOrder) -> bytes:
    ordered = list(words) if order == "big" else list(reversed(words))
    return b"".join(w.to_bytes(2, "big") for w in ordered)


def _bytes_to_words(data: bytes, order: WordOrder) -> list[int]:
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if order == "big" else list(reversed(words))


def _decode_value(rmap: RegisterMap, words: Sequence[int]) -> float:
    fmt, _ = _LAYOUT[rmap.weight_type]
    number: float = struct.unpack(fmt, _words_to_bytes(words, rmap.word_order))[0]
    if rmap.weight_type == "float32":
        value = float(number)
        if not math.isfinite(value):
            raise RegisterDecodeError(f"weight register holds {value} (not a number)")
        return value
    return float(number) / 10.0**rmap.weight_decimals


def _encode_value(rmap: RegisterMap, value: float) -> list[int]:
    fmt, _ = _LAYOUT[rmap.weight_type]
    if rmap.weight_type == "float32":
        return _bytes_to_words(struct.pack(fmt, value), rmap.word_order)
    low, high = _INT_RANGE[rmap.weight_type]
    # A display that cannot show the value saturates, as indicators do.
    raw = min(high, max(low, round(value * 10.0**rmap.weight_decimals)))
    return _bytes_to_words(struct.pack(fmt, raw), rmap.word_order)


def _bit(status: int | None, bit: int | None) -> bool:
    return status is not None and bit is not None and bool(status >> bit & 1)


def decode_reading(rmap: RegisterMap, registers: Sequence[int], *, at: float) -> WeightReading:
    """The reading in ``registers``, the block read at ``rmap.span``.

    ``stable`` is the scale's stable flag (False when the map has none: the driver's
    stability window decides then).
    """
    first, count = rmap.span
    if len(registers) != count:
        raise RegisterDecodeError(f"expected {count} registers from {first}, got {len(registers)}")

    def word(address: int) -> int:
        return registers[address - first]

    offset = rmap.weight_address - first
    value = _decode_value(rmap, registers[offset : offset + rmap.weight_words])
    unit: Unit
    if rmap.unit is not None:
        unit = rmap.unit
    elif rmap.unit_address is None:
        raise RegisterDecodeError("the map has neither a fixed unit nor a unit register")
    else:
        code = word(rmap.unit_address)
        if code not in rmap.unit_codes:
            known = ", ".join(f"{c}={u}" for c, u in sorted(rmap.unit_codes.items()))
            raise RegisterDecodeError(f"unit code {code} is not one of {known}")
        unit = rmap.unit_codes[code]
    status = word(rmap.status_address) if rmap.status_address is not None else None
    grams = to_grams(value, unit)
    over = _bit(status, rmap.over_range_bit)
    if rmap.over_range_bit is None and rmap.capacity_g is not None:
        over = grams > rmap.capacity_g
    return WeightReading(
        grams=grams,
        stable=_bit(status, rmap.stable_bit),
        over_range=over,
        under_range=_bit(status, rmap.under_range_bit),
        unit=unit,
        value=value,
        raw=tuple(registers),
        at=at,
    )


def encode_reading(
    rmap: RegisterMap,
    *,
    value: float,
    unit: Unit,
    stable: bool,
    over_range: bool = False,
    under_range: bool = False,
) -> dict[int, int]:
    """Register address → value for what a scale shows (``value`` in ``unit``); only the
    registers the map has are set."""
    if rmap.unit is not None and unit != rmap.unit:
        raise ValueError(f"the map has the fixed unit {rmap.unit}, not {unit}")
    out: dict[int, int] = {}
    for i, word in enumerate(_encode_value(rmap, value)):
        out[rmap.weight_address + i] = word
    if rmap.unit_address is not None:
        codes = [code for code, u in sorted(rmap.unit_codes.items()) if u == unit]
        if not codes:
            raise ValueError(f"no unit code for {unit}")
        out[rmap.unit_address] = codes[0]
    if rmap.status_address is not None:
        status = 0
        for flag, bit in (
            (stable, rmap.stable_bit),
            (over_range, rmap.over_range_bit),
            (under_range, rmap.under_range_bit),
        ):
            if flag and bit is not None:
                status |= 1 << bit
        out[rmap.status_address] = status
    return out


class StabilityWindow:
    """Stable means: every reading of the last ``window_s`` lies within ``tolerance_g``
    of the others (for scales without a stable flag). Feed it readings in time order."""

    def __init__(self, window_s: float, tolerance_g: float) -> None:
        self.window_s = window_s
        self.tolerance_g = tolerance_g
        self._recent: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        self._recent.clear()

    def add(self, grams: float, at: float) -> bool:
        """Record a reading; True when the readings up to it make a stable window."""
        self._recent.append((at, grams))
        # Keep one reading older than the window: it proves the window is covered.
        while len(self._recent) > 1 and self._recent[1][0] <= at - self.window_s:
            self._recent.popleft()
        low = high = grams
        for seen_at, seen in reversed(self._recent):
            low, high = min(low, seen), max(high, seen)
            if high - low > self.tolerance_g:
                return False
            if seen_at <= at - self.window_s:
                return True
        return False


def rtu_char_time_s(baudrate: int, bytesize: int, parity: str, stopbits: int) -> float:
    """Time one character takes on the line: start bit, data bits, parity, stop bits."""
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return bits / baudrate


def rtu_min_gap_s(baudrate: int, bytesize: int, parity: str, stopbits: int) -> float:
    """The silent interval that separates RTU frames: 3.5 character times, and a fixed
    1.75 ms above 19200 baud (Modbus over serial line V1.02, §2.5.1.1)."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * rtu_char_time_s(baudrate, bytesize, parity, stopbits)


def mbap_frames(buffer: bytes) -> list[tuple[int, int]]:
    """(transaction id, unit id) of each complete Modbus TCP frame at the start of
    ``buffer``; stops at the first incomplete one."""
    frames: list[tuple[int, int]] = []
    pos = 0
    while len(buffer) - pos >= 7:
        length = int.from_bytes(buffer[pos + 4 : pos + 6], "big")
        end = pos + 6 + length
        if length < 2 or end > len(buffer):
            break
        frames.append((int.from_bytes(buffer[pos : pos + 2], "big"), buffer[pos + 6]))
        pos = end
    return frames
