"""Serial barcode scanner (pyserial): prefix/suffix framing, AIM identifiers, re-plug."""

from drivers.barcode_serial.config import SerialScannerConfig
from drivers.barcode_serial.driver import SerialScanner

__all__ = ["SerialScanner", "SerialScannerConfig"]
