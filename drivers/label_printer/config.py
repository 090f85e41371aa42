"""``[devices.NAME]`` of kind ``label_printer``: a ZPL printer on TCP port 9100 or a serial line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from drivers.base import DeviceConfigBase

__all__ = ["DEFAULT_PORT", "LabelPrinterConfig", "PrinterAddress", "parse_printer_url"]

# The raw ("JetDirect") port every ZPL printer listens on.
DEFAULT_PORT = 9100

_URL_FORMS = "tcp://host[:port] or serial:///dev/serial/by-id/NAME"


@dataclass(frozen=True, slots=True)
class PrinterAddress:
    """Where the printer is: a TCP host and port, or the path of a serial device."""

    transport: Literal["tcp", "serial"]
    host: str = ""
    port: int = 0
    path: str = ""


def parse_printer_url(url: str) -> PrinterAddress:
    """Split a printer url; raise ValueError saying what is wrong with it.

    Port 0 is accepted: a simulator binds it to get a free port, while a driver that is
    given it simply fails to connect.
    """

    def bad(why: str) -> ValueError:
        return ValueError(f"{why}: expected {_URL_FORMS}, got {url!r}")

    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise bad(f"bad port ({exc})") from None
    # Credentials, queries and fragments mean nothing to a printer: refuse them rather than
    # drop them silently.
    if parts.username is not None or parts.query or parts.fragment:
        raise bad("extra parts")
    if parts.scheme == "tcp":
        if not parts.hostname:
            raise bad("no host")
        if parts.path not in ("", "/"):
            raise bad("a tcp url has no path")
        return PrinterAddress(
            "tcp", host=parts.hostname, port=DEFAULT_PORT if port is None else port
        )
    if parts.scheme == "serial":
        if parts.netloc:
            raise bad("a serial url has no host (three slashes: serial:///dev/...)")
        if not parts.path.startswith("/") or parts.path.endswith("/"):
            raise bad("the serial device must be an absolute path to a file")
        return PrinterAddress("serial", path=parts.path)
    raise bad(f"unknown scheme {parts.scheme!r}")


class LabelPrinterConfig(DeviceConfigBase):
    """A ZPL II thermal label printer (Zebra or compatible)."""

    kind: Literal["label_printer"]
    url: str = Field(
        description=(
            "tcp://host[:port] (port 9100 when left out) for a networked printer, or "
            "serial:///dev/serial/by-id/NAME for one on a serial or USB-serial line"
        ),
    )
    baudrate: int = Field(
        default=9600,
        description="Serial line speed; must match the printer's setting (serial:// only)",
    )
    dpi: Literal[203, 300, 600] = Field(
        default=203,
        description=(
            "The print head's resolution. The templates are laid out at 203 dpi; on a 300 or "
            "600 dpi printer each job asks the printer to scale them (^MU), so labels keep "
            "their size"
        ),
    )
    check_status: bool = Field(
        default=True,
        description=(
            "Read host status (~HS) before each job (refuse it on paper out, head open, "
            "pause) and after it (wait until the label is done)"
        ),
    )
    status_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often the printer's status is read while idle (paper out clears …)",
    )
    after_print_wait_s: float = Field(
        default=0.5,
        ge=0,
        le=30,
        description=(
            "After sending a job, how long an idle printer is given to show the label in "
            "its buffer before the label counts as done"
        ),
    )
    job_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description=(
            "How long a label may take to print; after that it is cancelled (~JA) and the "
            "job is refused"
        ),
    )

    @field_validator("url")
    @classmethod
    def _printer_url(cls, value: str) -> str:
        parse_printer_url(value)
        return value

    @field_validator("baudrate")
    @classmethod
    def _standard_baudrate(cls, value: int) -> int:
        # The rates Zebra printers offer on their serial port (^SC).
        allowed = (110, 300, 600, 1200, 2400, 4800, 9600, 14400, 19200, 28800, 38400, 57600, 115200)
        if value not in allowed:
            raise ValueError(f"baudrate {value} is not one of {', '.join(map(str, allowed))}")
        return value

    @model_validator(mode="after")
    def _baudrate_only_for_serial(self) -> Self:
        if "baudrate" in self.model_fields_set and self.address.transport != "serial":
            raise ValueError("baudrate applies to a serial:// printer only")
        return self

    @property
    def address(self) -> PrinterAddress:
        return parse_printer_url(self.url)
