"""Serial barcode scanner: framing tables, config, and the driver against its pty simulator."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.aim import GS
from drivers.barcode_serial import SerialScanner, SerialScannerConfig
from drivers.barcode_serial.framing import FrameDecoder
from drivers.base import (
    DeviceRejected,
    DeviceUnavailable,
    Driver,
    DriverError,
    ScannedCode,
)
from simulators.barcode_serial import SimulatedSerialScanner
from simulators.faults import Faults, SimulatedDevice
from tests.conftest import missing

NAME = "pack-1/scanner"
GS1_128 = "01095011015300031726013110ABC123"


# --- framing (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class FramingCase:
    chunks: list[bytes]
    codes: list[bytes]
    prefix: bytes = b""
    suffix: bytes = b"\r\n"
    line_end: bool = True
    max_length: int = 64
    noise_bytes: int = 0
    overlong: int = 0
    pending: bool = False


FRAMING_CASES = {
    "one code": FramingCase([b"LG-000123\r\n"], [b"LG-000123"]),
    "several codes in one read": FramingCase([b"A1\r\nB2\r\nC3\r\n"], [b"A1", b"B2", b"C3"]),
    "split anywhere": FramingCase(
        [b"LG-0", b"001", b"23\r", b"\nOP-1", b"001\r\n"], [b"LG-000123", b"OP-1001"]
    ),
    "CR only": FramingCase([b"A1\rB2\r"], [b"A1", b"B2"], suffix=b"\r"),
    "LF only": FramingCase([b"A1\nB2\n"], [b"A1", b"B2"], suffix=b"\n"),
    "CR config, CRLF sent": FramingCase([b"A1\r\nB2\r\n"], [b"A1", b"B2"], suffix=b"\r"),
    "LF config, CR sent": FramingCase([b"A1\rB2\r"], [b"A1", b"B2"], suffix=b"\n"),
    "mixed line ends": FramingCase([b"A1\rB2\nC3\r\nD4\n\r"], [b"A1", b"B2", b"C3", b"D4"]),
    "empty lines skipped": FramingCase([b"\r\n\r\nA1\r\n\n\n"], [b"A1"]),
    "no terminator yet": FramingCase([b"A1\r\nB2"], [b"A1"], pending=True),
    "ETX suffix": FramingCase(
        [b"A1\x03B\r2\x03"], [b"A1", b"B\r2"], suffix=b"\x03", line_end=False
    ),
    "two-byte suffix split": FramingCase(
        [b"A1#", b"#B2#", b"#"], [b"A1", b"B2"], suffix=b"##", line_end=False
    ),
    "STX prefix": FramingCase([b"\x02A1\r\n\x02B2\r\n"], [b"A1", b"B2"], prefix=b"\x02"),
    "noise before the prefix": FramingCase(
        [b"\xff\xfeZ\x02A1\r\n"], [b"A1"], prefix=b"\x02", noise_bytes=3
    ),
    "frame without the prefix": FramingCase(
        [b"junk\r\n\x02A1\r\n"], [b"A1"], prefix=b"\x02", noise_bytes=4
    ),
    "NUL line noise": FramingCase([b"\x00\x00A\x001\r\n"], [b"A1"], noise_bytes=3),
    "GS kept": FramingCase(
        [b"]C1" + GS1_128.encode() + b"\x1d21X\r\n"], [b"]C1" + GS1_128.encode() + b"\x1d21X"]
    ),
    "over-length dropped whole": FramingCase(
        [b"0123456789", b"0123456789", b"\r\nOK\r\n"], [b"OK"], max_length=8, overlong=1
    ),
    "over-length in one read": FramingCase(
        [b"0123456789\r\nOK\r\n"], [b"OK"], max_length=8, overlong=1
    ),
    "exactly max_length": FramingCase([b"01234567\r\n"], [b"01234567"], max_length=8),
    "over-length with ETX suffix split": FramingCase(
        [b"0123456789#", b"#OK##"], [b"OK"], suffix=b"##", line_end=False, max_length=4, overlong=1
    ),
}


@pytest.mark.parametrize("case", FRAMING_CASES.values(), ids=FRAMING_CASES.keys())
def test_framing(case: FramingCase) -> None:
    decoder = FrameDecoder(
        prefix=case.prefix, suffix=case.suffix, line_end=case.line_end, max_length=case.max_length
    )
    codes = [code for chunk in case.chunks for code in decoder.feed(chunk)]
    assert codes == case.codes
    assert decoder.counters.noise_bytes == case.noise_bytes
    assert decoder.counters.overlong == case.overlong
    assert decoder.pending is case.pending


def test_framing_drop_partial() -> None:
    decoder = FrameDecoder(prefix=b"", suffix=b"\r\n", line_end=True, max_length=64)
    assert decoder.feed(b"LG-00") == []
    assert decoder.drop_partial() == 5
    assert decoder.counters.partial == 1
    assert not decoder.pending
    assert decoder.drop_partial() == 0
    assert decoder.counters.partial == 1
    assert decoder.feed(b"0123\r\n") == [b"0123"]


def test_framing_partial_timeout_ends_an_overlong_code() -> None:
    decoder = FrameDecoder(prefix=b"", suffix=b"\r\n", line_end=True, max_length=4)
    assert decoder.feed(b"0123456789") == []
    assert decoder.pending
    decoder.drop_partial()
    # The overlong code was already counted; the timeout is not a second loss.
    assert (decoder.counters.overlong, decoder.counters.partial) == (1, 0)
    assert decoder.feed(b"OK\r\n") == [b"OK"]


def test_framing_refuses_an_empty_suffix() -> None:
    with pytest.raises(ValueError, match="suffix"):
        FrameDecoder(prefix=b"", suffix=b"", line_end=False, max_length=8)


# --- config ----------------------------------------------------------------------------


def config(port: str, **values: Any) -> SerialScannerConfig:
    return SerialScannerConfig.model_validate(
        {"kind": "barcode_serial", "port": port, "partial_timeout_s": 0.2, **values}
    )


def test_config_defaults() -> None:
    cfg = SerialScannerConfig.model_validate(
        {"kind": "barcode_serial", "port": "/dev/serial/by-id/usb-Honeywell_1902g-if00"}
    )
    assert (cfg.baudrate, cfg.bytesize, cfg.parity, cfg.stopbits) == (9600, 8, "N", 1)
    assert (cfg.prefix, cfg.suffix, cfg.line_end) == ("", "\r\n", True)
    assert (cfg.aim_ids, cfg.gs_substitute, cfg.partial_timeout_s, cfg.max_length) == (
        False,
        "",
        1.0,
        2048,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"port": "ttyUSB0"}, "absolute path"),
        ({"baudrate": 9601}, "baudrate 9601 is not one of"),
        ({"baudrate": "9600"}, "valid integer"),
        ({"parity": "X"}, "Input should be"),
        ({"suffix": ""}, "at least 1 character"),
        ({"prefix": "\r"}, "prefix '\\r' contains the suffix"),
        ({"gs_substitute": "<\n>"}, "gs_substitute"),
        ({"suffix": "\x03", "prefix": "\x03\x02"}, "contains the suffix"),
        ({"suffix": "##", "prefix": "#"}, "part of the suffix"),
        ({"partial_timeout_s": 0}, "greater than 0"),
        ({"max_length": 0}, "greater than or equal to 1"),
        ({"speed": 9600}, "Extra inputs are not permitted"),
    ],
)
def test_config_refuses(values: dict[str, Any], message: str) -> None:
    raw = {"kind": "barcode_serial", "port": "/dev/serial/by-id/x", **values}
    with pytest.raises(ValidationError, match=re.escape(message)):
        SerialScannerConfig.model_validate(raw)


@pytest.mark.parametrize("suffix", ["\r", "\n", "\r\n"])
def test_config_line_end_suffixes(suffix: str) -> None:
    assert config("/dev/x", suffix=suffix).line_end


def test_config_other_suffix_is_exact() -> None:
    assert not config("/dev/x", suffix="\x03").line_end


# --- driver against the simulator ------------------------------------------------------


@dataclass
class Rig:
    sim: SimulatedSerialScanner
    driver: SerialScanner
    received: asyncio.Queue[ScannedCode]
    run: asyncio.Task[None] | None = None

    async def start_run(self) -> None:
        self.run = asyncio.create_task(self.driver.run())

    async def stop_run(self) -> None:
        task, self.run = self.run, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, DriverError):
                await task

    async def next_code(self, timeout_s: float = 2.0) -> ScannedCode:
        async with asyncio.timeout(timeout_s):
            return await self.received.get()


async def eventually(check: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Wait until ``check()`` holds (polling; the driver has no hook for each counter)."""
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 (a counter, not an event, is awaited)
            await asyncio.sleep(0.01)


def link_target(path: str) -> str | None:
    link = Path(path)
    return str(link.readlink()) if link.is_symlink() else None


def is_char_device(path: str) -> bool:
    return Path(path).is_char_device()


@pytest.fixture
def port(tmp_path: Path) -> str:
    return str(tmp_path / "serial" / "by-id" / "usb-Honeywell_Xenon_1902g_00000001-if00")


@contextlib.asynccontextmanager
async def rig(cfg: SerialScannerConfig, faults: Faults | None = None) -> AsyncIterator[Rig]:
    sim = SimulatedSerialScanner(NAME, cfg, faults)
    await sim.start()
    received: asyncio.Queue[ScannedCode] = asyncio.Queue()
    driver = SerialScanner(NAME, cfg, received.put_nowait)
    setup = Rig(sim, driver, received)
    try:
        await driver.connect()
        await setup.start_run()
        yield setup
    finally:
        await setup.stop_run()
        await driver.close()
        await sim.stop()


async def test_driver_and_simulator_fit_the_protocols(port: str) -> None:
    cfg = config(port)
    driver: Driver = SerialScanner(NAME, cfg, lambda code: None)  # mypy checks the protocol
    # The protocol's promise: close is safe before any connect, and twice.
    await driver.close()
    await driver.close()
    assert driver.kind == cfg.kind == "barcode_serial"
    assert driver.name == NAME
    sim: SimulatedDevice = SimulatedSerialScanner(NAME, cfg)
    assert sim.name == NAME


async def test_happy_path_aim_ids_and_gs(port: str) -> None:
    cfg = config(port, aim_ids=True, gs_substitute="<GS>")
    scans = [
        (GS1_128 + GS + "21SN0042", "]C1"),
        ("0104006381333931" + GS + "10LOT7" + GS + "21X9", "]d2"),
        ("4006381333931", "]E0"),
        ("OP-1001", "]A0"),
        ("LG-000123", None),  # the simulator sends ]C0 by default
        ("https://ex.am/p?id=42", "]Q1"),
    ]
    async with rig(cfg) as r:
        for text, symbology in scans:
            assert await r.sim.scan(text, symbology)
        got = [await r.next_code() for _ in scans]
        diagnostics = r.driver.diagnostics()
    assert got == [ScannedCode(text, symbology or "]C0") for text, symbology in scans]
    assert diagnostics["codes"] == len(scans)
    assert diagnostics["connected"] and diagnostics["reading"]
    assert diagnostics["device"].startswith("/dev/pts/")
    # Diagnostics show the start of each code only: badges are among them.
    assert diagnostics["last_codes"][-1] == "']Q1htt'…(24 chars)"


async def test_plain_scanner_without_identifiers(port: str) -> None:
    async with rig(config(port)) as r:
        await r.sim.scan("LG-000123", "]C0")  # not sent: aim_ids is off
        await r.sim.scan(GS + GS1_128)
        assert await r.next_code() == ScannedCode("LG-000123")
        assert await r.next_code() == ScannedCode(GS + GS1_128)


async def test_cr_scanner_sending_crlf_split_across_reads(port: str) -> None:
    async with rig(config(port, suffix="\r")) as r:
        await r.sim.send_raw(b"A1\r\nB2\rC3\nD4\r")
        await asyncio.sleep(0.02)
        await r.sim.send_raw(b"\nE5\r")
        await r.sim.send_raw(b"\n")
        got = [(await r.next_code()).text for _ in range(5)]
        await r.sim.scan("F6")
        assert (await r.next_code()).text == "F6"
    assert got == ["A1", "B2", "C3", "D4", "E5"]


async def test_prefix_suffix_framing_with_noise(port: str) -> None:
    async with rig(config(port, prefix="\x02", suffix="\x03")) as r:
        await r.sim.send_raw(b"\x00\xff\x02A1\x03\x02B")
        await asyncio.sleep(0.02)
        await r.sim.send_raw(b"2\x03")
        await r.sim.scan("C3")
        assert [(await r.next_code()).text for _ in range(3)] == ["A1", "B2", "C3"]
        assert r.driver.diagnostics()["noise_bytes"] == 2


async def test_partial_code_dropped_after_timeout(port: str) -> None:
    async with rig(config(port, partial_timeout_s=0.1)) as r:
        await r.sim.scan_partial("LG-000999")
        await eventually(lambda: r.driver.diagnostics()["partial"] == 1)
        await r.sim.scan("LG-000123")
        assert await r.next_code() == ScannedCode("LG-000123")
        assert r.received.empty()
        assert r.driver.diagnostics()["codes"] == 1


async def test_overlong_code_dropped(port: str) -> None:
    async with rig(config(port, max_length=8)) as r:
        await r.sim.scan("0123456789ABCDEF")
        await r.sim.scan("SHORT")
        assert await r.next_code() == ScannedCode("SHORT")
        assert r.driver.diagnostics()["overlong"] == 1


async def test_invalid_utf8_is_replaced_and_counted(port: str) -> None:
    async with rig(config(port)) as r:
        await r.sim.send_raw(b"AB\xff\xfeCD\r\n")
        await r.sim.scan("Größe")
        assert await r.next_code() == ScannedCode("AB\ufffd\ufffdCD")
        assert await r.next_code() == ScannedCode("Größe")
        assert r.driver.diagnostics()["decode_errors"] == 1


async def test_garbled_scan_never_delivered_as_sent(port: str) -> None:
    faults = Faults(garble=1.0, rng=random.Random(7))
    async with rig(config(port), faults) as r:
        assert await r.sim.scan("LG-000123")
        faults.set(garble=0)
        await r.sim.scan("CLEAN-1")
        got: list[str] = []
        while not got or got[-1] != "CLEAN-1":
            got.append((await r.next_code()).text)
    assert "LG-000123" not in got
    assert r.sim.status()["garbled"] == 1


async def test_dropped_and_delayed_scans(port: str) -> None:
    faults = Faults(drop=1.0)
    async with rig(config(port), faults) as r:
        assert not await r.sim.scan("LOST")
        faults.set(drop=0, delay_s=0.05)
        assert await r.sim.scan("LATE")
        assert await r.next_code() == ScannedCode("LATE")
        assert r.sim.status()["dropped"] == 1


async def test_unplug_fails_run_and_replug_reconnects(port: str) -> None:
    async with rig(config(port)) as r:
        await r.sim.scan("BEFORE")
        assert (await r.next_code()).text == "BEFORE"
        assert r.run is not None
        await r.sim.stop()
        assert link_target(port) is None
        assert not await r.sim.scan("WHILE-UNPLUGGED")  # lost, as with a real scanner
        assert r.sim.status()["lost"] == 1
        with pytest.raises(DeviceUnavailable):
            async with asyncio.timeout(2):
                await r.run
        r.run = None
        diagnostics = r.driver.diagnostics()
        # The dead fd is no longer watched, so it cannot spin the loop.
        assert not diagnostics["reading"] and not diagnostics["connected"]
        assert diagnostics["last_error"]
        await r.driver.close()
        with pytest.raises(DeviceUnavailable, match="absent"):
            await r.driver.connect()
        await r.sim.start()  # a new pty behind the same by-id path
        await r.driver.connect()
        await r.start_run()
        await r.sim.scan("AFTER")
        assert (await r.next_code()).text == "AFTER"
        assert r.driver.diagnostics()["connects"] == 2
        assert r.sim.status()["plugs"] == 2


async def test_disconnect_blip_then_reconnect(port: str) -> None:
    async with rig(config(port)) as r:
        assert r.run is not None
        await r.sim.disconnect()
        with pytest.raises(DeviceUnavailable):
            async with asyncio.timeout(2):
                await r.run
        r.run = None
        await r.driver.connect()  # closes the dead port first
        await r.start_run()
        await r.sim.scan("AGAIN")
        assert (await r.next_code()).text == "AGAIN"


async def test_connect_while_absent(port: str) -> None:
    driver = SerialScanner(NAME, config(port), lambda code: None)
    with pytest.raises(DeviceUnavailable, match="absent"):
        await driver.connect()
    with pytest.raises(DeviceUnavailable, match="not connected"):
        await driver.run()
    await driver.close()


async def test_regular_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "not-a-scanner"
    path.write_text("hello\r\n")
    driver = SerialScanner(NAME, config(str(path)), lambda code: None)
    with pytest.raises(DeviceRejected, match="not a serial device"):
        await driver.connect()


async def test_character_device_that_is_not_a_tty_is_rejected() -> None:
    if not is_char_device("/dev/null"):
        missing("no /dev/null character device here")
    driver = SerialScanner(NAME, config("/dev/null"), lambda code: None)
    with pytest.raises(DeviceRejected, match="not a serial port"):
        await driver.connect()
    await driver.close()


async def test_second_reader_of_the_same_port_is_refused(port: str) -> None:
    async with rig(config(port)) as r:
        other = SerialScanner("pack-1/other", config(port), lambda code: None)
        with pytest.raises(DeviceUnavailable, match="lock"):
            await other.connect()
        await other.close()
        await r.sim.scan("STILL-OURS")
        assert (await r.next_code()).text == "STILL-OURS"


async def test_cancelled_run_propagates_and_close_is_idempotent(port: str) -> None:
    cfg = config(port)
    sim = SimulatedSerialScanner(NAME, cfg)
    driver = SerialScanner(NAME, cfg, lambda code: None)
    await driver.close()  # before connect
    await sim.start()
    try:
        await driver.connect()
        task = asyncio.create_task(driver.run())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await driver.close()
        await driver.close()
        assert not driver.diagnostics()["reading"]
    finally:
        await sim.stop()
        await sim.stop()


async def test_simulator_symlink_replaced_on_replug(port: str) -> None:
    sim = SimulatedSerialScanner(NAME, config(port))
    await sim.start()
    try:
        assert link_target(port) == sim.status()["tty"]
        await sim.disconnect()
        assert link_target(port) == sim.status()["tty"]
    finally:
        await sim.stop()
    assert link_target(port) is None
