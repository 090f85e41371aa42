"""Modbus scale (TCP and RTU): config, register codec, shared line and driver.

The config and the register codec import nothing heavy; the line and the driver pull in
pymodbus, so they are loaded on first use (a line without scales does not pay for it).
"""

from typing import TYPE_CHECKING, Any

from drivers.modbus_scale.config import ModbusScaleConfig, ScaleCommand
from drivers.modbus_scale.registers import RegisterMap, WeightReading

if TYPE_CHECKING:
    from drivers.modbus_scale.bus import BusRegistry, LineSettings, ModbusBus, ReplyTimeout
    from drivers.modbus_scale.driver import ModbusScale

__all__ = [
    "BusRegistry",
    "LineSettings",
    "ModbusBus",
    "ModbusScale",
    "ModbusScaleConfig",
    "RegisterMap",
    "ReplyTimeout",
    "ScaleCommand",
    "WeightReading",
]

_FROM_BUS = {"BusRegistry", "LineSettings", "ModbusBus", "ReplyTimeout"}


def __getattr__(name: str) -> Any:
    if name in _FROM_BUS:
        from drivers.modbus_scale import bus

        return getattr(bus, name)
    if name == "ModbusScale":
        from drivers.modbus_scale import driver

        return driver.ModbusScale
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
