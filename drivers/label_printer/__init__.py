"""Thermal label printer: ZPL II travellers and shipping labels, sent over TCP 9100 or serial.

``render`` lays the labels out (pure), ``zpl`` frames a job and reads a ZPL stream (pure),
``status`` parses host status (pure), ``driver`` talks to the printer.
"""

from drivers.label_printer.config import LabelPrinterConfig
from drivers.label_printer.driver import LabelPrinter, PrintResult, StatusListener
from drivers.label_printer.render import (
    ShippingLabel,
    TravellerLabel,
    field_data,
    render_shipping,
    render_traveller,
)
from drivers.label_printer.status import HostStatus

__all__ = [
    "HostStatus",
    "LabelPrinter",
    "LabelPrinterConfig",
    "PrintResult",
    "ShippingLabel",
    "StatusListener",
    "TravellerLabel",
    "field_data",
    "render_shipping",
    "render_traveller",
]
