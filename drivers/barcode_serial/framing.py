"""Pure framing of a serial scanner's byte stream: bytes in, complete codes out.

A code on the wire is ``prefix + data + suffix``. Reads split codes anywhere and may
hold several; line noise (NUL bytes from a break while the cable is plugged, bytes
before the prefix) is counted and dropped; a code longer than ``max_length`` is dropped
whole, up to its suffix, rather than delivered in pieces. What to do with bytes that
never see a suffix is the caller's decision (it knows the time): :meth:`drop_partial`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FrameDecoder", "FramingCounters"]

_CR, _LF = 0x0D, 0x0A


@dataclass
class FramingCounters:
    """What the decoder threw away, for the driver's diagnostics."""

    noise_bytes: int = 0  # NULs, bytes before the prefix, frames without it
    overlong: int = 0  # codes longer than max_length, dropped whole
    partial: int = 0  # unfinished codes dropped by drop_partial()


class FrameDecoder:
    """Incremental prefix/suffix framing.

    With ``line_end`` set, CR, LF and CRLF each end a code (a CRLF split across two
    reads too: the empty "code" between CR and LF is skipped); otherwise ``suffix`` must
    match byte for byte.
    """

    def __init__(self, *, prefix: bytes, suffix: bytes, line_end: bool, max_length: int) -> None:
        if not suffix:
            raise ValueError("the suffix must not be empty")
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self._prefix = prefix
        self._suffix = suffix
        self._line_end = line_end
        self._max_length = max_length
        # What may sit in the buffer before a code is overlong: noise is counted, not kept,
        # so prefix + data + a partial suffix is the most a good code needs.
        self._max_pending = len(prefix) + max_length + len(suffix)
        self._buffer = bytearray()
        self._discarding = False  # inside an overlong code: skip up to its suffix
        self.counters = FramingCounters()

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished code are held (what a partial timeout would drop)."""
        return bool(self._buffer) or self._discarding

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the data of every code they complete, in order."""
        if b"\x00" in data:
            self.counters.noise_bytes += data.count(b"\x00")
            data = data.replace(b"\x00", b"")
        self._buffer += data
        codes: list[bytes] = []
        while (end := self._find_end()) is not None:
            start, after = end
            frame = bytes(self._buffer[:start])
            del self._buffer[:after]
            if self._discarding:
                self._discarding = False
                continue
            code = self._unwrap(frame)
            if code is not None:
                codes.append(code)
        if len(self._buffer) > self._max_pending or (self._discarding and self._buffer):
            if not self._discarding:
                self.counters.overlong += 1
                self._discarding = True
            # Keep what could be the start of a suffix split across reads.
            keep = len(self._suffix) - 1
            del self._buffer[: len(self._buffer) - keep]
        return codes

    def drop_partial(self) -> int:
        """Forget an unfinished code; return how many bytes were dropped (0: none held)."""
        dropped = len(self._buffer)
        if self._buffer and not self._discarding:
            self.counters.partial += 1
        self._buffer.clear()
        self._discarding = False
        return dropped

    def _find_end(self) -> tuple[int, int] | None:
        """(where the next suffix starts, where it ends) or None."""
        if self._line_end:
            for i, byte in enumerate(self._buffer):
                if byte in (_CR, _LF):
                    return i, i + 1
            return None
        i = self._buffer.find(self._suffix)
        return None if i < 0 else (i, i + len(self._suffix))

    def _unwrap(self, frame: bytes) -> bytes | None:
        """The code inside one frame, or None when the frame is empty, noise or too long."""
        if not frame:
            return None
        if self._prefix:
            at = frame.find(self._prefix)
            if at < 0:
                self.counters.noise_bytes += len(frame)
                return None
            self.counters.noise_bytes += at
            frame = frame[at + len(self._prefix) :]
            if not frame:
                return None
        if len(frame) > self._max_length:
            self.counters.overlong += 1
            return None
        return frame
