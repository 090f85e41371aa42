"""``[devices.NAME]`` of kind ``modbus_scale``: a weighing indicator on Modbus TCP or RTU."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from drivers.base import DEVICE_MODEL_CONFIG, DeviceConfigBase
from drivers.modbus_scale.registers import (
    MAX_READ_REGISTERS,
    RegisterMap,
    Unit,
    WeightType,
    WordOrder,
    rtu_min_gap_s,
)

__all__ = ["DEFAULT_TCP_PORT", "ModbusScaleConfig", "ScaleCommand"]

DEFAULT_TCP_PORT = 502

# Keys that describe a serial line; they mean nothing on a TCP connection.
_SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")

_DEFAULT_UNIT_CODES: dict[str, Unit] = {"0": "g", "1": "kg", "2": "lb", "3": "oz"}


class ScaleCommand(BaseModel):
    """How the scale is told to tare or to zero: switch a coil on, or write a value into
    a holding register (many indicators have one command register for both)."""

    model_config = DEVICE_MODEL_CONFIG

    write: Literal["coil", "register"] = Field(
        description='"coil": switch the coil at address on (FC05); "register": write value (FC06)'
    )
    address: int = Field(ge=0, le=65535, description="Coil or holding register address (0-based)")
    value: int = Field(
        default=1, ge=0, le=65535, description="The command value to write (register only)"
    )

    @model_validator(mode="after")
    def _value_for_registers_only(self) -> Self:
        if self.write == "coil" and "value" in self.model_fields_set:
            raise ValueError('value applies to write = "register" only (a coil is switched on)')
        return self


class ModbusScaleConfig(DeviceConfigBase):
    """A scale (weighing indicator) read over Modbus TCP, or Modbus RTU on an RS-485 line.

    Several scales may share one RS-485 line (each with its own device_id) or one TCP
    gateway (same host and port): the driver then sends one request at a time on it.
    """

    kind: Literal["modbus_scale"]
    transport: Literal["tcp", "rtu"] = Field(
        description='"tcp" (Modbus TCP, or a TCP-to-RS-485 gateway) or "rtu" (a serial line)'
    )
    host: str | None = Field(
        default=None, min_length=1, description="Host name or address (tcp only, required there)"
    )
    port: int | str | None = Field(
        default=None,
        description=(
            "tcp: the TCP port (502 when left out; 0 lets a simulator pick a free one). "
            "rtu: the serial device, best a stable path such as /dev/serial/by-id/NAME (required)"
        ),
    )
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = Field(
        default=9600, description="Serial line speed (rtu only)"
    )
    parity: Literal["N", "E", "O"] = Field(default="N", description="N, E or O (rtu only)")
    stopbits: Literal[1, 2] = Field(default=1, description="1 or 2 (rtu only)")
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits, 7 or 8 (rtu only)")
    device_id: int = Field(
        default=1, ge=1, le=247, description="Modbus device (slave/unit) id, 1..247"
    )

    register_type: Literal["holding", "input"] = Field(
        default="holding",
        description="Table that holds weight, status and unit: holding (FC03) or input (FC04)",
    )
    weight_address: int = Field(
        default=0, ge=0, le=65535, description="First register of the weight (0-based address)"
    )
    weight_type: WeightType = Field(
        default="float32", description="float32, int32, uint32, int16 or uint16"
    )
    word_order: WordOrder = Field(
        default="big",
        description='32-bit values: "big" = high word first, "little" = low word first',
    )
    weight_decimals: int = Field(
        default=0,
        ge=0,
        le=6,
        description="Integer weights: decimal places (raw 12345 with 2 decimals is 123.45)",
    )
    unit: Literal["g", "kg", "lb", "oz", "register"] = Field(
        default="kg",
        description='The unit the weight is in, or "register" to read it from unit_address',
    )
    unit_address: int | None = Field(
        default=None, ge=0, le=65535, description='Register holding a unit code (unit = "register")'
    )
    unit_codes: dict[str, Unit] = Field(
        default_factory=lambda: dict(_DEFAULT_UNIT_CODES),
        description='Unit code → unit, e.g. { 0 = "g", 1 = "kg", 2 = "lb", 3 = "oz" }',
    )
    status_address: int | None = Field(
        default=None, ge=0, le=65535, description="Status register holding the bits below"
    )
    stable_bit: int | None = Field(
        default=None, ge=0, le=15, description="Bit of the status register set while stable"
    )
    over_range_bit: int | None = Field(
        default=None, ge=0, le=15, description="Bit set while over range (overload)"
    )
    under_range_bit: int | None = Field(
        default=None, ge=0, le=15, description="Bit set while under range (underload)"
    )
    stable_window_s: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Without a stable_bit: readings must agree for this long to count as stable",
    )
    stable_tolerance_g: float = Field(
        default=2.0,
        ge=0,
        le=10000,
        description="Without a stable_bit: how far apart those readings may be, in grams",
    )
    capacity_g: float | None = Field(
        default=None,
        gt=0,
        description="Scale capacity; without an over_range_bit a reading above it is over range",
    )
    tare: ScaleCommand | None = Field(default=None, description="The tare command, if any")
    zero: ScaleCommand | None = Field(default=None, description="The zero command, if any")

    poll_interval_s: float = Field(
        default=0.15, ge=0.01, le=10, description="Time between two weight reads"
    )
    inter_frame_gap_s: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Silence kept on the line between a reply and the next request; rtu default and "
            "minimum: 3.5 character times at the baud rate (1.75 ms above 19200 baud)"
        ),
    )
    late_reply_guard_s: float | None = Field(
        default=None,
        ge=0,
        le=60,
        description=(
            "After a request times out, the line stays silent this long and whatever arrives "
            "meanwhile is discarded, so a late reply is never taken for the next request "
            "(rtu; default timeout_s)"
        ),
    )
    min_load_g: float = Field(
        default=20.0, ge=0, description="A reading above this means a parcel is on the scale"
    )
    max_failed_polls: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive failed reads after which the scale counts as unavailable",
    )

    @field_validator("unit_codes")
    @classmethod
    def _numeric_codes(cls, value: dict[str, Unit]) -> dict[str, Unit]:
        for code in value:
            if not code.isdigit() or int(code) > 65535:
                raise ValueError(f"unit code {code!r} is not a register value 0..65535")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_transport()
        self._check_status_bits()
        self._check_unit()
        self._check_registers()
        return self

    def _check_transport(self) -> None:
        if self.transport == "tcp":
            if self.host is None:
                raise ValueError('transport = "tcp" needs a host')
            if self.port is not None and not (
                isinstance(self.port, int) and 0 <= self.port <= 65535
            ):
                raise ValueError(f"port must be a TCP port number 0..65535, got {self.port!r}")
            for key in (*_SERIAL_KEYS, "late_reply_guard_s"):
                if key in self.model_fields_set:
                    raise ValueError(f'{key} applies to transport = "rtu" only')
            return
        if self.host is not None:
            raise ValueError('host applies to transport = "tcp" only')
        if not isinstance(self.port, str) or not self.port.startswith("/"):
            raise ValueError(
                'transport = "rtu" needs port = the serial device\'s absolute path '
                f"(e.g. /dev/serial/by-id/NAME), got {self.port!r}"
            )
        floor = rtu_min_gap_s(self.baudrate, self.bytesize, self.parity, self.stopbits)
        if self.inter_frame_gap_s is not None and self.inter_frame_gap_s < floor:
            raise ValueError(
                f"inter_frame_gap_s {self.inter_frame_gap_s} is shorter than 3.5 characters "
                f"at {self.baudrate} baud ({floor:.5f} s)"
            )

    def _check_status_bits(self) -> None:
        bits = {
            name: bit
            for name in ("stable_bit", "over_range_bit", "under_range_bit")
            if (bit := getattr(self, name)) is not None
        }
        if bits and self.status_address is None:
            raise ValueError(f"{', '.join(bits)} need a status_address")
        if len(set(bits.values())) < len(bits):
            raise ValueError(f"status bits must differ: {bits}")
        if self.stable_bit is not None:
            for key in ("stable_window_s", "stable_tolerance_g"):
                if key in self.model_fields_set:
                    raise ValueError(f"{key} applies only to a scale without a stable_bit")

    def _check_unit(self) -> None:
        if self.unit == "register":
            if self.unit_address is None:
                raise ValueError('unit = "register" needs a unit_address')
            if not self.unit_codes:
                raise ValueError('unit = "register" needs unit_codes')
        elif self.unit_address is not None or "unit_codes" in self.model_fields_set:
            raise ValueError('unit_address and unit_codes apply to unit = "register" only')

    def _check_registers(self) -> None:
        if self.weight_type == "float32" and self.weight_decimals:
            raise ValueError("weight_decimals applies to integer weight types only")
        rmap = self.register_map()
        used: dict[int, str] = {}
        for address in range(rmap.weight_address, rmap.weight_address + rmap.weight_words):
            used[address] = "weight"
        for name, optional in (
            ("status_address", self.status_address),
            ("unit_address", self.unit_address),
        ):
            if optional is None:
                continue
            if optional in used:
                raise ValueError(f"{name} {optional} overlaps the {used[optional]} register")
            used[optional] = name
        first, count = rmap.span
        if count > MAX_READ_REGISTERS:
            raise ValueError(
                f"weight, status and unit registers span {count} registers from {first}; "
                f"they must lie within {MAX_READ_REGISTERS} to be read together"
            )
        commands = {name: cmd for name, cmd in (("tare", self.tare), ("zero", self.zero)) if cmd}
        for name, cmd in commands.items():
            if (
                cmd.write == "register"
                and self.register_type == "holding"
                and first <= cmd.address < first + count
            ):
                raise ValueError(
                    f"{name}.address {cmd.address} lies in the registers read for the weight "
                    f"({first}..{first + count - 1})"
                )
        if len(commands) == 2 and self.tare == self.zero:
            raise ValueError("tare and zero are the same command")

    def register_map(self) -> RegisterMap:
        """The map the driver decodes with and the simulator encodes with."""
        return RegisterMap(
            weight_address=self.weight_address,
            weight_type=self.weight_type,
            word_order=self.word_order,
            weight_decimals=self.weight_decimals,
            register_type=self.register_type,
            unit=None if self.unit == "register" else self.unit,
            unit_address=self.unit_address,
            unit_codes={int(code): unit for code, unit in self.unit_codes.items()}
            if self.unit == "register"
            else {},
            status_address=self.status_address,
            stable_bit=self.stable_bit,
            over_range_bit=self.over_range_bit,
            under_range_bit=self.under_range_bit,
            capacity_g=self.capacity_g,
        )

    @property
    def tcp_port(self) -> int:
        """The TCP port to use (tcp only)."""
        return self.port if isinstance(self.port, int) else DEFAULT_TCP_PORT

    @property
    def serial_path(self) -> str:
        """The serial device path (rtu only)."""
        return self.port if isinstance(self.port, str) else ""

    @property
    def endpoint(self) -> str:
        """``host:port`` or the serial path: scales with the same endpoint share a line."""
        if self.transport == "tcp":
            return f"{self.host}:{self.tcp_port}"
        return self.serial_path

    @property
    def frame_gap_s(self) -> float:
        """The silence kept between frames on this line."""
        if self.inter_frame_gap_s is not None:
            return self.inter_frame_gap_s
        if self.transport == "tcp":
            return 0.0
        return rtu_min_gap_s(self.baudrate, self.bytesize, self.parity, self.stopbits)

    @property
    def guard_s(self) -> float:
        """How long the line stays silent after a timeout (see late_reply_guard_s)."""
        if self.transport == "tcp":
            # Modbus TCP replies carry the transaction id; pymodbus drops the ones that
            # do not match the request, so no guard is needed.
            return 0.0
        return self.timeout_s if self.late_reply_guard_s is None else self.late_reply_guard_s
