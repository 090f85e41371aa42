"""``[devices.NAME]`` of kind ``barcode_hid``: a scanner that types like a USB keyboard."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from drivers.barcode_hid.decoder import Terminator
from drivers.barcode_hid.keymaps import LayoutName
from drivers.base import DeviceConfigBase

__all__ = ["HidScannerConfig"]


class HidScannerConfig(DeviceConfigBase):
    """A keyboard-wedge barcode scanner read through evdev, without an X server."""

    kind: Literal["barcode_hid"]
    path: str = Field(
        description=(
            "The scanner's event device, best by its stable udev name "
            "(/dev/input/by-id/usb-…-event-kbd); a Unix socket carrying raw input events "
            "is read the same way (the simulator uses one)"
        ),
    )
    layout: LayoutName = Field(
        default="us",
        description='The keyboard country the scanner is set to: "us", "uk", "de" or "fr"',
    )
    grab: bool = Field(
        default=True,
        description="Take the device for ourselves (EVIOCGRAB), so scans are not also typed "
        "into the console or another program",
    )
    terminator: Terminator = Field(
        default="enter",
        description='The key the scanner sends after each code: "enter" (or keypad Enter) or "tab"',
    )
    aim_ids: bool = Field(
        default=False,
        description=(
            "The scanner types an AIM symbology identifier (]C1, ]d2, ]E0 …) before each code"
        ),
    )
    gs_substitute: str = Field(
        default="",
        max_length=8,
        description=(
            "What the scanner types for the GS1 group separator (FNC1) if not GS itself "
            '(Ctrl+] or Alt+0029), e.g. "<GS>"; "" = GS'
        ),
    )
    partial_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Keys with no terminator after this long are a partial code and are dropped",
    )
    max_length: int = Field(
        default=2048,
        ge=1,
        le=65536,
        description="Longest code accepted, in characters; longer ones are dropped whole",
    )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/"):
            raise ValueError(f"the path must be an absolute path to a device, got {value!r}")
        return value
