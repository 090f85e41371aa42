"""Host status (``~HS``): the three-string reply of a ZPL printer, parsed and produced.

Pure: no I/O. The field order is the one of the ZPL II Programming Guide, ``~HS``:

    string 1  <STX>aaa,b,c,dddd,eee,f,g,h,iii,j,k,l<ETX><CR><LF>
              communication settings, paper out, pause, label length (dots), formats in
              the receive buffer, buffer full, comm. diagnostics mode, partial format,
              unused, corrupt RAM, under temperature, over temperature
    string 2  <STX>mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www<ETX><CR><LF>
              function settings, unused, head up, ribbon out, thermal transfer mode,
              print mode, print width mode, label waiting, labels remaining in batch,
              format while printing, graphic images stored
    string 3  <STX>xxxx,y<ETX><CR><LF>
              password, static RAM installed

String 2 has an unused field before the head-up flag: parsers that skip it read the
ribbon flag as "head open".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HOST_STATUS_REQUEST",
    "HostStatus",
    "HostStatusError",
    "format_host_status",
    "host_status_reply_length",
    "parse_host_status",
]

HOST_STATUS_REQUEST = b"~HS"

_STX = 0x02
_END = b"\x03\r\n"  # ETX CR LF closes each string
_STRINGS = 3
_FIELDS = (12, 11, 2)
# The longest string a printer sends is ~40 bytes; anything much longer is not a reply.
_MAX_STRING = 64


class HostStatusError(ValueError):
    """Bytes that are not a ~HS reply (line noise, another protocol, a cut reply)."""


@dataclass(frozen=True, slots=True)
class HostStatus:
    """What the printer says about itself. Flags are True when the condition holds."""

    paper_out: bool = False
    paused: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    buffer_full: bool = False
    partial_format: bool = False
    corrupt_ram: bool = False
    under_temperature: bool = False
    over_temperature: bool = False
    thermal_transfer: bool = False
    label_waiting: bool = False
    formats_in_buffer: int = 0
    labels_remaining: int = 0
    label_length_dots: int = 0
    print_mode: int = 0
    communication_settings: int = 0
    function_settings: int = 0
    graphics_stored: int = 0

    @property
    def problem(self) -> str | None:
        """What stops the printer, in the words an operator understands; None when ready.

        A cold head prints lighter but prints, and a full buffer drains by itself, so
        neither is a problem; a ribbon only matters in thermal transfer mode.
        """
        if self.head_open:
            return "print head open"
        if self.paper_out:
            return "paper out"
        if self.ribbon_out and self.thermal_transfer:
            return "ribbon out"
        if self.over_temperature:
            return "print head too hot"
        if self.paused:
            return "printer paused"
        return None

    @property
    def busy(self) -> bool:
        """Whether a label is still being received, waiting or printing."""
        return self.formats_in_buffer > 0 or self.labels_remaining > 0 or self.partial_format


def host_status_reply_length(buffer: bytes | bytearray) -> int | None:
    """The length of the complete ~HS reply at the start of buffer; None if more is needed.

    Raises HostStatusError as soon as the bytes cannot become a reply, so line noise is
    reported without waiting for a timeout.
    """
    start = 0
    for _ in range(_STRINGS):
        if len(buffer) <= start:
            return None
        if buffer[start] != _STX:
            raise HostStatusError(f"~HS string does not start with STX: {bytes(buffer[:80])!r}")
        end = buffer.find(_END, start)
        limit = start + _MAX_STRING
        if end < 0 or end > limit:
            if len(buffer) > limit:
                raise HostStatusError(f"~HS string has no end: {bytes(buffer[:80])!r}")
            return None
        start = end + len(_END)
    return start


def parse_host_status(reply: bytes) -> HostStatus:
    """Parse a whole ~HS reply (three strings); raise HostStatusError if it is not one."""
    if host_status_reply_length(reply) != len(reply):
        raise HostStatusError(f"not one complete ~HS reply: {reply[:200]!r}")
    strings = [chunk[1:] for chunk in reply.split(_END)[:_STRINGS]]
    fields: list[list[int]] = []
    for number, (raw, expected) in enumerate(zip(strings, _FIELDS, strict=True), start=1):
        values = raw.split(b",")
        if len(values) != expected:
            raise HostStatusError(
                f"~HS string {number} has {len(values)} fields, not {expected}: {raw!r}"
            )
        # Every field is a decimal number (bytes.isdigit is ASCII only): a flipped bit shows.
        if not all(value.isdigit() for value in values):
            raise HostStatusError(f"~HS string {number} has a non-numeric field: {raw!r}")
        fields.append([int(value) for value in values])
    one, two, _three = fields
    flags = [*one[1:3], *one[5:8], *one[9:12], *two[2:5], two[7]]
    if any(flag not in (0, 1) for flag in flags):
        raise HostStatusError(f"~HS flag that is neither 0 nor 1: {reply[:200]!r}")
    return HostStatus(
        communication_settings=one[0],
        paper_out=one[1] == 1,
        paused=one[2] == 1,
        label_length_dots=one[3],
        formats_in_buffer=one[4],
        buffer_full=one[5] == 1,
        partial_format=one[7] == 1,
        corrupt_ram=one[9] == 1,
        under_temperature=one[10] == 1,
        over_temperature=one[11] == 1,
        function_settings=two[0],
        head_open=two[2] == 1,
        ribbon_out=two[3] == 1,
        thermal_transfer=two[4] == 1,
        print_mode=two[5],
        label_waiting=two[7] == 1,
        labels_remaining=two[8],
        graphics_stored=two[10],
    )


def format_host_status(status: HostStatus) -> bytes:
    """The ~HS reply a printer in this state sends (the simulator's side)."""

    def flag(value: bool) -> str:
        return "1" if value else "0"

    one = ",".join(
        [
            f"{status.communication_settings:03d}",
            flag(status.paper_out),
            flag(status.paused),
            f"{status.label_length_dots:04d}",
            f"{status.formats_in_buffer:03d}",
            flag(status.buffer_full),
            "0",  # communications diagnostics mode
            flag(status.partial_format),
            "000",  # unused
            flag(status.corrupt_ram),
            flag(status.under_temperature),
            flag(status.over_temperature),
        ]
    )
    two = ",".join(
        [
            f"{status.function_settings:03d}",
            "0",  # unused
            flag(status.head_open),
            flag(status.ribbon_out),
            flag(status.thermal_transfer),
            str(status.print_mode),
            "6",  # print width mode
            flag(status.label_waiting),
            f"{status.labels_remaining:08d}",
            "1",  # format while printing: always 1
            f"{status.graphics_stored:03d}",
        ]
    )
    three = "1234,0"  # the factory password, no static RAM
    return b"".join(b"\x02" + s.encode("ascii") + _END for s in (one, two, three))
