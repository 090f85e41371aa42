"""HID (keyboard-wedge) barcode scanner: evdev key events decoded per keyboard layout."""

from drivers.barcode_hid.config import HidScannerConfig
from drivers.barcode_hid.driver import HidScanner

__all__ = ["HidScanner", "HidScannerConfig"]
