"""``[devices.NAME]`` of kind ``barcode_serial``: a scanner on a serial or USB-CDC port."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from drivers.base import DeviceConfigBase

__all__ = ["LINE_ENDS", "STANDARD_BAUDRATES", "SerialScannerConfig"]

STANDARD_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)

# Suffixes that mean "end of line": with any of them, CR, LF and CRLF all end a code,
# because scanners set to CR are often found sending CRLF and the other way round.
LINE_ENDS = ("\r", "\n", "\r\n")


class SerialScannerConfig(DeviceConfigBase):
    """A barcode scanner that sends each code as prefix + data + suffix on a serial line."""

    kind: Literal["barcode_serial"]
    port: str = Field(
        description=(
            "The serial device, best by its stable udev name "
            "(/dev/serial/by-id/usb-…); re-plugging gives the same name"
        ),
    )
    baudrate: int = Field(default=9600, description="Line speed; ignored by USB-CDC scanners")
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits")
    parity: Literal["N", "E", "O"] = Field(default="N", description="N(one), E(ven) or O(dd)")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits")
    prefix: str = Field(
        default="",
        max_length=16,
        description='Sent before each code (e.g. "\\u0002", STX); "" = none',
    )
    suffix: str = Field(
        default="\r\n",
        min_length=1,
        max_length=16,
        description=(
            'Sent after each code; "\\r", "\\n" and "\\r\\n" all accept CR, LF or CRLF; '
            'anything else (e.g. "\\u0003", ETX) must match exactly'
        ),
    )
    aim_ids: bool = Field(
        default=False,
        description=(
            "The scanner puts an AIM symbology identifier (]C1, ]d2, ]E0 …) before each code"
        ),
    )
    gs_substitute: str = Field(
        default="",
        max_length=8,
        description=(
            "What the scanner sends for the GS1 group separator (FNC1) if not GS itself, "
            'e.g. "<GS>"; "" = GS'
        ),
    )
    partial_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Bytes with no suffix after this long are a partial code and are dropped",
    )
    max_length: int = Field(
        default=2048,
        ge=1,
        le=65536,
        description="Longest code accepted, in bytes; longer ones are dropped whole",
    )

    @field_validator("port")
    @classmethod
    def _absolute_port(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/"):
            raise ValueError(f"the port must be an absolute path to a device, got {value!r}")
        return value

    @field_validator("baudrate")
    @classmethod
    def _standard_baudrate(cls, value: int) -> int:
        if value not in STANDARD_BAUDRATES:
            allowed = ", ".join(map(str, STANDARD_BAUDRATES))
            raise ValueError(f"baudrate {value} is not one of {allowed}")
        return value

    @model_validator(mode="after")
    def _framing_unambiguous(self) -> Self:
        for field, value in (("prefix", self.prefix), ("gs_substitute", self.gs_substitute)):
            if not value:
                continue
            ends = ("\r", "\n") if self.line_end else (self.suffix,)
            if any(end in value for end in ends):
                raise ValueError(
                    f"{field} {value!r} contains the suffix: codes could not be framed"
                )
        if self.prefix and self.prefix in self.suffix:
            raise ValueError(f"prefix {self.prefix!r} is part of the suffix {self.suffix!r}")
        return self

    @property
    def line_end(self) -> bool:
        """The suffix is CR, LF or CRLF (any of them then ends a code)."""
        return self.suffix in LINE_ENDS
