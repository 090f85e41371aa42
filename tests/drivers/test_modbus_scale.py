"""The Modbus scale: register codec tables, config checks, and the real driver against
the pymodbus simulator over loopback TCP and a pty RS-485 line."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import DeviceRejected, DeviceUnavailable, Driver, ProtocolError
from drivers.modbus_scale import (
    BusRegistry,
    ModbusScale,
    ModbusScaleConfig,
    RegisterMap,
    ReplyTimeout,
    WeightReading,
)
from drivers.modbus_scale.registers import (
    RegisterDecodeError,
    StabilityWindow,
    decode_reading,
    encode_reading,
    mbap_frames,
    rtu_min_gap_s,
)
from simulators.faults import SimulatedDevice
from simulators.modbus_scale import SimulatedBus, SimulatedBuses, SimulatedScale
from simulators.pty_link import Direction, PtyLink

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "station_configs" / "examples" / "modbus-scale.toml"

# --- codec: registers captured from typical indicators ----------------------------------

FLOAT_KG = RegisterMap(weight_address=0)
STATUS: dict[str, Any] = {
    "status_address": 2,
    "stable_bit": 0,
    "over_range_bit": 1,
    "under_range_bit": 2,
}
WITH_STATUS = RegisterMap(
    weight_address=0, status_address=2, stable_bit=0, over_range_bit=1, under_range_bit=2
)


@pytest.mark.parametrize(
    ("rmap", "registers", "grams", "unit", "flags"),
    [
        # float32 kg, high word first (most indicators): 12.5 kg = 0x41480000
        (FLOAT_KG, [0x4148, 0x0000], 12500.0, "kg", (False, False, False)),
        # the same scale with word swap ("CDAB", some Mettler-Toledo and Siemens maps)
        (
            RegisterMap(weight_address=0, word_order="little"),
            [0x0000, 0x4148],
            12500.0,
            "kg",
            (False, False, False),
        ),
        # int32 with 2 decimals: 123456 = 0x0001E240 → 1234.56 kg
        (
            RegisterMap(weight_address=0, weight_type="int32", weight_decimals=2),
            [0x0001, 0xE240],
            1234560.0,
            "kg",
            (False, False, False),
        ),
        # int32 low word first, 1 decimal, pounds: 105 → 10.5 lb
        (
            RegisterMap(
                weight_address=0,
                weight_type="int32",
                word_order="little",
                weight_decimals=1,
                unit="lb",
            ),
            [0x0069, 0x0000],
            10.5 * 453.59237,
            "lb",
            (False, False, False),
        ),
        # int16 tenths of a gram, below zero: 0xFF6A = -150 → -15.0 g
        (
            RegisterMap(weight_address=0, weight_type="int16", weight_decimals=1, unit="g"),
            [0xFF6A],
            -15.0,
            "g",
            (False, False, False),
        ),
        # uint16 whole grams: 2500 g
        (
            RegisterMap(weight_address=0, weight_type="uint16", unit="g"),
            [0x09C4],
            2500.0,
            "g",
            (False, False, False),
        ),
        # status word after the weight: bit 0 stable, bit 2 under range
        (
            WITH_STATUS,
            [0x4148, 0x0000, 0b101],
            12500.0,
            "kg",
            (True, False, True),
        ),
        (
            WITH_STATUS,
            [0x4148, 0x0000, 0b011],
            12500.0,
            "kg",
            (True, True, False),
        ),
        # status word *before* the weight, and the unit read from a register (2 = lb)
        (
            RegisterMap(
                weight_address=10,
                status_address=9,
                stable_bit=15,
                unit=None,
                unit_address=12,
                unit_codes={0: "g", 1: "kg", 2: "lb"},
            ),
            [0x8000, 0x4148, 0x0000, 0x0002],
            12.5 * 453.59237,
            "lb",
            (True, False, False),
        ),
    ],
)
def test_decode_captured_registers(
    rmap: RegisterMap,
    registers: list[int],
    grams: float,
    unit: str,
    flags: tuple[bool, bool, bool],
) -> None:
    reading = decode_reading(rmap, registers, at=5.0)
    assert reading.grams == pytest.approx(grams)
    assert reading.unit == unit
    assert (reading.stable, reading.over_range, reading.under_range) == flags
    assert reading.raw == tuple(registers)
    assert reading.at == 5.0


@pytest.mark.parametrize(
    "rmap",
    [
        dataclasses.replace(WITH_STATUS, weight_address=4, status_address=6),
        RegisterMap(weight_address=0, word_order="little", status_address=2, stable_bit=3),
        RegisterMap(weight_address=0, weight_type="int32", weight_decimals=3, unit="g"),
        RegisterMap(weight_address=0, weight_type="uint32", weight_decimals=1, unit="g"),
        RegisterMap(weight_address=1, weight_type="int16", weight_decimals=1, unit="lb"),
        RegisterMap(
            weight_address=0,
            unit=None,
            unit_address=2,
            unit_codes={5: "kg", 7: "oz"},
            status_address=3,
            stable_bit=0,
        ),
    ],
)
@pytest.mark.parametrize(("value", "stable"), [(1.5, True), (0.0, False), (321.4, True)])
def test_encode_then_decode(rmap: RegisterMap, value: float, stable: bool) -> None:
    unit = rmap.unit or "oz"
    words = encode_reading(rmap, value=value, unit=unit, stable=stable)
    first, count = rmap.span
    block = [words.get(first + i, 0) for i in range(count)]
    reading = decode_reading(rmap, block, at=0.0)
    assert reading.value == pytest.approx(value, abs=0.01)
    assert reading.unit == unit
    assert reading.stable is (stable and rmap.stable_bit is not None)


def test_integer_weights_saturate_like_a_display() -> None:
    rmap = RegisterMap(weight_address=0, weight_type="int16", unit="g")
    assert encode_reading(rmap, value=40000, unit="g", stable=True) == {0: 0x7FFF}
    assert encode_reading(rmap, value=-40000, unit="g", stable=True) == {0: 0x8000}


@pytest.mark.parametrize(
    ("rmap", "registers", "message"),
    [
        (FLOAT_KG, [0x4148], "expected 2 registers from 0, got 1"),
        (FLOAT_KG, [0x7FC0, 0x0000], "not a number"),
        (
            RegisterMap(weight_address=0, unit=None, unit_address=2, unit_codes={0: "g"}),
            [0, 0, 9],
            "unit code 9 is not one of 0=g",
        ),
    ],
)
def test_decode_refuses_what_makes_no_reading(
    rmap: RegisterMap, registers: list[int], message: str
) -> None:
    with pytest.raises(RegisterDecodeError, match=message):
        decode_reading(rmap, registers, at=0.0)


def test_without_an_over_range_bit_capacity_decides() -> None:
    rmap = RegisterMap(weight_address=0, weight_type="uint16", unit="g", capacity_g=6000.0)
    assert not decode_reading(rmap, [6000], at=0.0).over_range
    assert decode_reading(rmap, [6001], at=0.0).over_range


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        # (time, grams) fed in order → stable after each, window 1.0 s, tolerance 2 g
        ([(0.0, 500.0), (0.5, 501.0), (1.0, 500.5)], [False, False, True]),
        ([(0.0, 500.0), (0.5, 503.0), (1.0, 503.5), (1.5, 503.0)], [False, False, False, True]),
        (
            [(0.0, 0.0), (0.4, 0.0), (0.8, 0.0), (1.2, 0.0), (1.3, 250.0)],
            [False, False, False, True, False],
        ),
        # a gap longer than the window: one old reading covers it
        ([(0.0, 10.0), (5.0, 10.0)], [False, True]),
    ],
)
def test_stability_window(readings: list[tuple[float, float]], expected: list[bool]) -> None:
    window = StabilityWindow(window_s=1.0, tolerance_g=2.0)
    assert [window.add(grams, at) for at, grams in readings] == expected


@pytest.mark.parametrize(
    ("baudrate", "parity", "stopbits", "gap_s"),
    [
        (9600, "N", 1, 3.5 * 10 / 9600),
        (9600, "E", 1, 3.5 * 11 / 9600),
        (19200, "N", 2, 3.5 * 11 / 19200),
        (38400, "N", 1, 0.00175),
        (115200, "E", 1, 0.00175),
    ],
)
def test_rtu_gap_is_three_and_a_half_characters(
    baudrate: int, parity: str, stopbits: int, gap_s: float
) -> None:
    assert rtu_min_gap_s(baudrate, 8, parity, stopbits) == pytest.approx(gap_s)


def test_mbap_frames_walks_complete_frames_only() -> None:
    one = bytes.fromhex("0007 0000 0009 01 03 06 3f9e 0419 0001")
    two = bytes.fromhex("0008 0000 0006 02 05 0000 ff00")
    assert mbap_frames(one + two) == [(7, 1), (8, 2)]
    assert mbap_frames(one + two[:5]) == [(7, 1)]
    assert mbap_frames(b"") == []


# --- config ----------------------------------------------------------------------------

TCP = {"kind": "modbus_scale", "transport": "tcp", "host": "10.0.0.5"}
RTU = {"kind": "modbus_scale", "transport": "rtu", "port": "/dev/serial/by-id/usb-RS485"}


def test_config_defaults() -> None:
    tcp = ModbusScaleConfig.model_validate(TCP)
    assert (tcp.endpoint, tcp.frame_gap_s, tcp.guard_s) == ("10.0.0.5:502", 0.0, 0.0)
    rtu = ModbusScaleConfig.model_validate({**RTU, "timeout_s": 1.5})
    assert rtu.endpoint == "/dev/serial/by-id/usb-RS485"
    assert rtu.frame_gap_s == pytest.approx(3.5 * 10 / 9600)
    assert rtu.guard_s == 1.5
    assert rtu.register_map() == RegisterMap(weight_address=0)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({**TCP, "host": None}, 'transport = "tcp" needs a host'),
        ({**TCP, "port": "/dev/ttyUSB0"}, "port must be a TCP port number"),
        ({**TCP, "port": 70000}, "port must be a TCP port number"),
        ({**TCP, "baudrate": 19200}, 'baudrate applies to transport = "rtu" only'),
        ({**RTU, "port": 502}, 'transport = "rtu" needs port = the serial device'),
        ({**RTU, "port": "ttyUSB0"}, 'transport = "rtu" needs port = the serial device'),
        ({**RTU, "host": "10.0.0.5"}, 'host applies to transport = "tcp" only'),
        ({**RTU, "inter_frame_gap_s": 0.001}, "shorter than 3.5 characters at 9600 baud"),
        ({**TCP, "stable_bit": 0}, "stable_bit need a status_address"),
        (
            {**TCP, "status_address": 2, "stable_bit": 1, "over_range_bit": 1},
            "status bits must differ",
        ),
        (
            {**TCP, "status_address": 2, "stable_bit": 0, "stable_window_s": 2.0},
            "stable_window_s applies only to a scale without a stable_bit",
        ),
        ({**TCP, "unit": "register"}, 'unit = "register" needs a unit_address'),
        ({**TCP, "unit_address": 4}, 'unit_address and unit_codes apply to unit = "register" only'),
        (
            {**TCP, "unit": "register", "unit_address": 4, "unit_codes": {"kg": "kg"}},
            "unit code 'kg'",
        ),
        ({**TCP, "status_address": 1}, "status_address 1 overlaps the weight register"),
        ({**TCP, "status_address": 200}, "span 201 registers from 0"),
        ({**TCP, "weight_decimals": 2}, "weight_decimals applies to integer weight types only"),
        ({**TCP, "tare": {"write": "coil", "address": 1, "value": 3}}, "value applies to write"),
        (
            {**TCP, "status_address": 3, "tare": {"write": "register", "address": 2}},
            "tare.address 2 lies in the registers read for the weight",
        ),
        (
            {
                **TCP,
                "tare": {"write": "coil", "address": 1},
                "zero": {"write": "coil", "address": 1},
            },
            "tare and zero are the same command",
        ),
        ({**TCP, "device_id": 248}, "less than or equal to 247"),
        ({**TCP, "baud": 9600}, "Extra inputs are not permitted"),
        ({**TCP, "port": "502"}, "port must be a TCP port number"),
    ],
)
def test_config_mistakes_are_named(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModbusScaleConfig.model_validate({k: v for k, v in table.items() if v is not None})


def test_example_station_file_loads() -> None:
    doc = tomllib.loads(EXAMPLE.read_text())
    (table,) = doc["devices"].values()
    config = ModbusScaleConfig.model_validate(table)
    assert config.kind == "modbus_scale"


def test_registry_gives_one_bus_per_line() -> None:
    registry = BusRegistry()
    one = ModbusScaleConfig.model_validate({**RTU, "device_id": 1})
    two = ModbusScaleConfig.model_validate({**RTU, "device_id": 2, "inter_frame_gap_s": 0.01})
    assert registry.bus_for(one) is registry.bus_for(two)
    assert registry.bus_for(one).settings.frame_gap_s == 0.01  # the longer gap wins
    other_port = ModbusScaleConfig.model_validate({**RTU, "port": "/dev/ttyUSB1"})
    assert registry.bus_for(other_port) is not registry.bus_for(one)
    with pytest.raises(ValueError, match="disagree on the line settings"):
        registry.bus_for(ModbusScaleConfig.model_validate({**RTU, "baudrate": 19200}))
    tcp_a = ModbusScaleConfig.model_validate(TCP)
    tcp_b = ModbusScaleConfig.model_validate({**TCP, "device_id": 3})
    tcp_c = ModbusScaleConfig.model_validate({**TCP, "port": 5020})
    assert registry.bus_for(tcp_a) is registry.bus_for(tcp_b)
    assert registry.bus_for(tcp_c) is not registry.bus_for(tcp_a)


# --- the driver against the simulator --------------------------------------------------

CAPACITY_G = 10_000.0


def scale_config(transport: str, tmp_path: Path, **overrides: Any) -> ModbusScaleConfig:
    """TCP: float32 kg in holding registers, coil tare, register zero. RTU: int32 grams
    with a decimal, word-swapped, in input registers, unit from a register."""
    table: dict[str, Any] = {"kind": "modbus_scale", "timeout_s": 0.3, "poll_interval_s": 0.02}
    table["capacity_g"] = CAPACITY_G
    if transport == "tcp":
        table |= {"transport": "tcp", "host": "127.0.0.1", "port": 0, **STATUS}
        table |= {
            "tare": {"write": "coil", "address": 8},
            "zero": {"write": "register", "address": 20, "value": 2},
        }
    else:
        table |= {
            "transport": "rtu",
            "port": str(tmp_path / "serial" / "by-id" / "usb-scale-if00"),
            "register_type": "input",
            "weight_address": 100,
            "weight_type": "int32",
            "word_order": "little",
            "weight_decimals": 1,
            "unit": "register",
            "unit_address": 102,
            "status_address": 103,
            "stable_bit": 4,
            "over_range_bit": 5,
            "tare": {"write": "register", "address": 40, "value": 1},
            "zero": {"write": "register", "address": 40, "value": 2},
        }
    table |= overrides
    return ModbusScaleConfig.model_validate({k: v for k, v in table.items() if v is not None})


def for_driver(config: ModbusScaleConfig, sim: SimulatedScale) -> ModbusScaleConfig:
    """The driver's config: the simulator's, with the TCP port it actually got."""
    if config.transport == "rtu":
        return config
    return ModbusScaleConfig.model_validate(
        {**config.model_dump(exclude_unset=True), "port": sim.port}
    )


@dataclass
class Rig:
    sim: SimulatedScale
    scale: ModbusScale


@asynccontextmanager
async def rig(
    config: ModbusScaleConfig,
    *,
    settle_s: float = 0.15,
    bus: SimulatedBus | None = None,
    registry: BusRegistry | None = None,
) -> AsyncIterator[Rig]:
    sim = SimulatedScale("test/scale", config, seed=7, settle_s=settle_s, bus=bus)
    await sim.start()
    try:
        cfg = for_driver(config, sim)
        scale = ModbusScale(
            f"test/scale-{cfg.device_id}", cfg, (registry or BusRegistry()).bus_for(cfg)
        )
        try:
            yield Rig(sim, scale)
        finally:
            await scale.close()
    finally:
        await sim.stop()


@asynccontextmanager
async def polling(scale: ModbusScale) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(scale.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def settled(scale: ModbusScale, grams: float) -> WeightReading:
    async with asyncio.timeout(3):
        return await scale.wait_stable(min_grams=grams - 1, after=time.monotonic())


TRANSPORTS = pytest.mark.parametrize("transport", ["tcp", "rtu"])


@TRANSPORTS
async def test_happy_path(transport: str, tmp_path: Path) -> None:
    async with rig(scale_config(transport, tmp_path)) as r:
        driver: Driver = r.scale  # mypy checks the protocol
        # The protocol's promise: close is safe before any connect (and the rig closes
        # it again at the end).
        await driver.close()
        await r.scale.connect()
        assert r.scale.latest is not None and r.scale.latest.grams == 0.0
        r.sim.place(1500.0)
        async with polling(r.scale):
            reading = await settled(r.scale, 1500.0)
        assert reading.grams == pytest.approx(1500.0)
        assert reading.stable and reading.in_range
        assert reading.unit == ("kg" if transport == "tcp" else "g")
        diag = r.scale.diagnostics()
        assert diag["transport"] == transport and diag["stability"] == "flag"
        assert diag["counters"]["errors"] == 0 and diag["counters"]["reads"] > 2
        assert diag["bus"]["connected"] and diag["bus"]["last_frames"]


async def test_unit_read_from_its_register(tmp_path: Path) -> None:
    async with rig(scale_config("rtu", tmp_path), settle_s=0) as r:
        await r.scale.connect()
        r.sim.set_unit("lb")
        r.sim.place(1000.0)
        reading = await r.scale.read()
        assert reading.unit == "lb"
        assert reading.value == pytest.approx(2.2)  # one decimal
        assert reading.grams == pytest.approx(2.2 * 453.59237)


async def test_stability_window_when_the_scale_has_no_stable_flag(tmp_path: Path) -> None:
    config = scale_config(
        "tcp",
        tmp_path,
        status_address=None,
        stable_bit=None,
        over_range_bit=None,
        under_range_bit=None,
        stable_window_s=0.2,
        stable_tolerance_g=1.0,
    )
    async with rig(config, settle_s=0.2) as r:
        await r.scale.connect()
        async with polling(r.scale):
            placed = time.monotonic()
            r.sim.place(800.0)
            reading = await settled(r.scale, 800.0)
        assert reading.grams == pytest.approx(800.0)
        assert r.scale.diagnostics()["stability"] == "window"
        # Stable only once the readings had agreed for the whole window.
        window = [h for h in r.scale.recent if reading.at - 0.2 <= h.at <= reading.at]
        assert all(abs(h.grams - 800.0) <= 1.0 for h in window)
        assert any(not h.stable for h in r.scale.recent if h.at > placed)


@TRANSPORTS
async def test_tare_and_zero(transport: str, tmp_path: Path) -> None:
    async with rig(scale_config(transport, tmp_path), settle_s=0) as r:
        await r.scale.connect()
        r.sim.place(500.0)
        await r.scale.tare()
        assert (await r.scale.read()).grams == pytest.approx(0.0, abs=0.1)
        r.sim.place(1700.0)
        assert (await r.scale.read()).grams == pytest.approx(1200.0, abs=0.1)
        r.sim.remove()
        assert (await r.scale.read()).grams == pytest.approx(-500.0, abs=0.1)
        await r.scale.zero()  # empty pan: zero clears the tare
        assert (await r.scale.read()).grams == pytest.approx(0.0, abs=0.1)
        assert r.sim.status()["tare_g"] == 0.0


@TRANSPORTS
async def test_the_scale_refuses_zero(transport: str, tmp_path: Path) -> None:
    async with rig(scale_config(transport, tmp_path), settle_s=0) as r:
        await r.scale.connect()
        r.sim.unstable(True)
        with pytest.raises(DeviceRejected, match=r"exception 6 \(device_busy\)"):
            await r.scale.zero()
        r.sim.unstable(False)
        r.sim.place(1000.0)  # beyond 2 % of capacity: not a zero error but a load
        with pytest.raises(DeviceRejected, match=r"exception 3 \(illegal_value\)"):
            await r.scale.zero()
        assert r.scale.diagnostics()["counters"]["rejected"] == 2
        assert r.sim.refused == 2
        # Refusals are answers: the line is fine.
        assert (await r.scale.read()).grams == pytest.approx(1000.0, abs=0.1)


async def test_a_command_that_is_not_configured_is_refused(tmp_path: Path) -> None:
    async with rig(scale_config("tcp", tmp_path, tare=None)) as r:
        await r.scale.connect()
        with pytest.raises(DeviceRejected, match="no tare command"):
            await r.scale.tare()


@TRANSPORTS
async def test_over_range_is_never_taken(transport: str, tmp_path: Path) -> None:
    async with rig(scale_config(transport, tmp_path), settle_s=0) as r:
        await r.scale.connect()
        r.sim.place(CAPACITY_G + 500.0)
        reading = await r.scale.read()
        assert reading.over_range and not reading.in_range
        async with polling(r.scale):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await r.scale.wait_stable(min_grams=20.0, after=time.monotonic())


@TRANSPORTS
async def test_timeout_when_the_reply_is_dropped(transport: str, tmp_path: Path) -> None:
    async with rig(scale_config(transport, tmp_path), settle_s=0) as r:
        await r.scale.connect()
        r.sim.faults.drop = 1.0
        with pytest.raises(ReplyTimeout, match="no reply from device 1"):
            await r.scale.read()
        assert isinstance(ReplyTimeout("x"), DeviceUnavailable)
        r.sim.faults.drop = 0.0
        r.sim.place(250.0)
        assert (await r.scale.read()).grams == pytest.approx(250.0)
        counters = r.scale.diagnostics()["counters"]
        assert (counters["timeouts"], counters["errors"]) == (1, 1)


@TRANSPORTS
async def test_a_late_reply_is_never_taken_for_the_next_request(
    transport: str, tmp_path: Path
) -> None:
    """The first read's reply comes 0.45 s late, while the second read (0.3 s timeout,
    its own reply 0.25 s late) would be waiting for its answer: without the transaction
    id (TCP) or the guard (RTU) the second read would return the first read's 1000 g."""
    async with rig(scale_config(transport, tmp_path), settle_s=0) as r:
        await r.scale.connect()
        r.sim.place(1000.0)
        r.sim.faults.delay_s = 0.45
        with pytest.raises(ReplyTimeout):
            await r.scale.read()
        r.sim.faults.delay_s = 0.25
        r.sim.place(2000.0)
        reading = await r.scale.read()
        assert reading.grams == pytest.approx(2000.0)
        assert r.scale.diagnostics()["counters"]["late_replies_discarded"] == 1
        r.sim.faults.delay_s = 0.0
        assert (await r.scale.read()).grams == pytest.approx(2000.0)


async def test_without_the_guard_rtu_would_take_the_late_reply(tmp_path: Path) -> None:
    """The hazard the guard exists for (pymodbus#1509, PR#2636): RTU frames carry no
    transaction id, so the same scenario with the guard off returns the stale weight."""
    async with rig(scale_config("rtu", tmp_path, late_reply_guard_s=0.0), settle_s=0) as r:
        await r.scale.connect()
        r.sim.place(1000.0)
        r.sim.faults.delay_s = 0.45
        with pytest.raises(ReplyTimeout):
            await r.scale.read()
        r.sim.faults.delay_s = 0.25
        r.sim.place(2000.0)
        assert (await r.scale.read()).grams == pytest.approx(1000.0)


async def test_garbled_rtu_reply_is_a_protocol_error(tmp_path: Path) -> None:
    async with rig(scale_config("rtu", tmp_path), settle_s=0) as r:
        await r.scale.connect()
        r.sim.faults.garble = 1.0
        with pytest.raises(ProtocolError, match="garbled reply from device 1"):
            await r.scale.read()
        assert r.sim.garbled == 1
        r.sim.faults.garble = 0.0
        r.sim.place(300.0)
        assert (await r.scale.read()).grams == pytest.approx(300.0)
        counters = r.scale.diagnostics()["counters"]
        assert (counters["garbled"], counters["errors"]) == (1, 1)


async def test_garbled_tcp_reply_is_a_protocol_error(tmp_path: Path) -> None:
    async with rig(scale_config("tcp", tmp_path), settle_s=0) as r:
        await r.scale.connect()
        r.sim.faults.garble = 1.0
        with pytest.raises(
            ProtocolError, match="answered the read of 3 holding registers at 0 with 2"
        ):
            await r.scale.read()
        with pytest.raises(ProtocolError, match="echoed another write of coil 8"):
            await r.scale.tare()
        r.sim.faults.garble = 0.0
        await r.scale.read()
        assert r.scale.diagnostics()["counters"]["garbled"] == 2


@TRANSPORTS
async def test_disconnect_and_reconnect(transport: str, tmp_path: Path) -> None:
    async with rig(scale_config(transport, tmp_path), settle_s=0) as r:
        await r.scale.connect()
        async with polling(r.scale) as task:
            await r.sim.disconnect()
            async with asyncio.timeout(3):
                with pytest.raises(DeviceUnavailable):
                    await task
        assert not r.scale.bus.connected
        # What the supervisor does: close, back off, connect again.
        await r.scale.close()
        await r.scale.connect()
        r.sim.place(700.0)
        assert (await r.scale.read()).grams == pytest.approx(700.0)

        # Powered off: the address is gone until the scale comes back on it.
        await r.sim.stop()
        await r.scale.close()
        with pytest.raises(DeviceUnavailable, match="cannot connect"):
            await r.scale.connect()
        await r.sim.start()
        await r.scale.connect()
        assert (await r.scale.read()).grams == pytest.approx(700.0)
        assert r.scale.bus.connects == 3


async def test_run_gives_up_after_failed_polls(tmp_path: Path) -> None:
    async with rig(scale_config("tcp", tmp_path, timeout_s=0.1, max_failed_polls=2)) as r:
        await r.scale.connect()
        r.sim.faults.drop = 1.0
        async with polling(r.scale) as task, asyncio.timeout(3):
            with pytest.raises(DeviceUnavailable, match="2 reads failed in a row"):
                await task


async def test_wait_stable_takes_the_first_stable_reading_after_placement(
    tmp_path: Path,
) -> None:
    async with rig(scale_config("tcp", tmp_path), settle_s=0.2) as r:
        await r.scale.connect()
        r.sim.place(1000.0)
        async with polling(r.scale):
            first = await settled(r.scale, 1000.0)
            assert first.grams == pytest.approx(1000.0)
            # The old parcel's stable readings are in the history; a new one goes on.
            after = time.monotonic()
            r.sim.place(1500.0)
            async with asyncio.timeout(3):
                reading = await r.scale.wait_stable(min_grams=20.0, after=after)
        assert reading.grams == pytest.approx(1500.0)
        assert reading.at > after
        before_it = [h for h in r.scale.recent if after < h.at < reading.at]
        assert before_it and not any(h.stable for h in before_it)


async def test_two_scales_on_one_rs485_line_take_turns(tmp_path: Path) -> None:
    wire: list[tuple[float, Direction, bytes]] = []
    one = scale_config("rtu", tmp_path, device_id=1)
    two = scale_config("rtu", tmp_path, device_id=2)
    line = SimulatedBus(
        one, tap=lambda direction, data: wire.append((time.monotonic(), direction, data))
    )
    registry = BusRegistry()
    async with (
        rig(one, settle_s=0, bus=line, registry=registry) as a,
        rig(two, settle_s=0, bus=line, registry=registry) as b,
    ):
        assert a.scale.bus is b.scale.bus
        await asyncio.gather(a.scale.connect(), b.scale.connect())
        a.sim.place(1000.0)
        b.sim.place(2000.0)
        async with polling(a.scale), polling(b.scale):
            readings = await asyncio.gather(*(s.read() for s in (a.scale, b.scale) * 10))
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.1)  # a poll cancelled mid-exchange still gets its reply
        assert [r.grams for r in readings] == pytest.approx([1000.0, 2000.0] * 10)
        exchanges = a.scale.bus.exchanges
        gap = a.scale.bus.settings.frame_gap_s

    # Join the chunks into frames: the line must show request, reply, request, reply …
    frames: list[tuple[float, float, Direction, bytes]] = []
    for at, direction, data in wire:
        if frames and frames[-1][2] == direction:
            start, _, _, joined = frames[-1]
            frames[-1] = (start, at, direction, joined + data)
        else:
            frames.append((at, at, direction, data))
    directions = [f[2] for f in frames]
    assert directions == ["to_device", "to_host"] * exchanges
    for request, reply in zip(frames[::2], frames[1::2], strict=True):
        assert request[3][0] == reply[3][0]  # answered by the device it asked
    for reply, request in zip(frames[1::2], frames[2::2], strict=False):
        assert request[0] - reply[1] >= gap


async def test_two_scales_behind_one_tcp_gateway(tmp_path: Path) -> None:
    buses = SimulatedBuses()
    one = scale_config("tcp", tmp_path, device_id=1)
    two = scale_config("tcp", tmp_path, device_id=2)
    assert buses.bus_for(one) is buses.bus_for(two)
    registry = BusRegistry()
    async with (
        rig(one, settle_s=0, bus=buses.bus_for(one), registry=registry) as a,
        rig(two, settle_s=0, bus=buses.bus_for(two), registry=registry) as b,
    ):
        assert a.scale.bus is b.scale.bus
        await asyncio.gather(a.scale.connect(), b.scale.connect())
        a.sim.place(1000.0)
        b.sim.place(2000.0)
        readings = await asyncio.gather(*(s.read() for s in (a.scale, b.scale) * 5))
        assert [r.grams for r in readings] == pytest.approx([1000.0, 2000.0] * 5)
        assert a.scale.bus.connects == 1  # one connection carries both
        # One scale powered off behind the gateway: it is silent, the other still answers.
        await a.sim.stop()
        with pytest.raises(ReplyTimeout):
            await a.scale.read()
        assert (await b.scale.read()).grams == pytest.approx(2000.0)
        await a.sim.start()
        assert (await a.scale.read()).grams == pytest.approx(1000.0)


@TRANSPORTS
async def test_close_twice_and_close_without_connect(transport: str, tmp_path: Path) -> None:
    async with rig(scale_config(transport, tmp_path)) as r:
        await r.scale.close()
        await r.scale.connect()
        assert r.scale.bus.connected
        await r.scale.close()
        await r.scale.close()
        assert not r.scale.bus.connected
        assert r.scale.bus.diagnostics()["scales_attached"] == 0


@TRANSPORTS
async def test_simulator_status(transport: str, tmp_path: Path) -> None:
    config = scale_config(transport, tmp_path)
    sim: SimulatedDevice = SimulatedScale("test/scale", config, seed=1)
    await sim.start()
    try:
        await sim.start()  # already running: nothing happens
        status = sim.status()
        assert status["running"] and status["load_g"] == 0.0
        assert status["device_id"] == 1
        if transport == "tcp":
            assert status["address"] != "127.0.0.1:0"
        else:
            assert status["address"] == str(config.port)
            assert await asyncio.to_thread(Path(status["address"]).is_symlink)
    finally:
        await sim.stop()
        await sim.stop()
    assert not sim.status()["running"]


async def _read_some(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if not got.done():
            got.set_result(os.read(fd, 100))

    loop.add_reader(fd, readable)
    try:
        async with asyncio.timeout(2):
            return await got
    finally:
        loop.remove_reader(fd)


async def test_pty_link_is_a_null_modem(tmp_path: Path) -> None:
    seen: list[tuple[Direction, bytes]] = []
    link = PtyLink(tmp_path / "by-id" / "usb-host", tap=lambda d, b: seen.append((d, b)))
    link.open()
    try:
        device_path = link.add_device(tmp_path / "device")
        flags = os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK
        host = os.open(link.host_path, flags)
        device = os.open(device_path, flags)
        try:
            os.write(host, b"\x01\x03\r\n")  # raw: no echo, no CR/LF translation
            assert await _read_some(device) == b"\x01\x03\r\n"
            os.write(device, b"reply")
            assert await _read_some(host) == b"reply"
            assert seen == [("to_device", b"\x01\x03\r\n"), ("to_host", b"reply")]
        finally:
            os.close(host)
            os.close(device)
        link.unplug()
        assert not link.plugged and not await asyncio.to_thread(link.host_path.exists)
        link.plug()
        assert await asyncio.to_thread(link.host_path.is_symlink)
    finally:
        link.close()
        link.close()
    assert not await asyncio.to_thread(link.host_path.exists)
