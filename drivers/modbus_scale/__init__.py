"""Modbus scale (TCP and RTU): config, register codec, shared line and driver."""

from drivers.modbus_scale.bus import BusRegistry, LineSettings, ModbusBus, ReplyTimeout
from drivers.modbus_scale.config import ModbusScaleConfig, ScaleCommand
from drivers.modbus_scale.driver import ModbusScale
from drivers.modbus_scale.registers import RegisterMap, WeightReading

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
