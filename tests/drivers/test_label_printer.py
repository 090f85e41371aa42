"""The label printer driver against the simulated printer, over loopback TCP and a pty."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.base import DeviceRejected, DeviceUnavailable, Driver, ProtocolError
from drivers.label_printer import (
    HostStatus,
    LabelPrinter,
    LabelPrinterConfig,
    render_shipping,
    render_traveller,
)
from drivers.label_printer.zpl import decode_code128, frame_job
from simulators.faults import Faults, SimulatedDevice
from simulators.label_printer import SimulatedPrinter
from tests.drivers.test_label_render import SHIPPING, TRAVELLER

NAME = "pack-1/printer"
TIMEOUT_S = 0.3


def simulator(url: str = "tcp://127.0.0.1:0", *, print_time_s: float = 0.02) -> SimulatedPrinter:
    config = LabelPrinterConfig(kind="label_printer", url=url)
    faults = Faults(rng=random.Random(3))
    return SimulatedPrinter(NAME, config, faults=faults, print_time_s=print_time_s)


def driver_for(sim: SimulatedPrinter, **settings: Any) -> LabelPrinter:
    values: dict[str, Any] = {"timeout_s": TIMEOUT_S, "after_print_wait_s": 0.05} | settings
    listener = values.pop("on_status_change", None)
    config = LabelPrinterConfig(kind="label_printer", url=sim.url, **values)
    return LabelPrinter(NAME, config, on_status_change=listener)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedPrinter]:
    printer = simulator()
    await printer.start()
    yield printer
    await printer.stop()


@pytest.fixture
async def printer(sim: SimulatedPrinter) -> AsyncIterator[LabelPrinter]:
    driver = driver_for(sim)
    await driver.connect()
    yield driver
    await driver.close()


async def eventually(check: Callable[[], bool], within_s: float = 2.0) -> None:
    """Wait until check() holds: the simulator has no event for every state a test awaits."""
    async with asyncio.timeout(within_s):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_driver_and_simulator_satisfy_the_shared_interfaces() -> None:
    printer = simulator()
    device: SimulatedDevice = printer  # checked by mypy
    assert device.name == NAME
    driver: Driver = driver_for(printer)  # checked by mypy
    # The protocol's promise: close is safe before any connect, and twice.
    await driver.close()
    await driver.close()
    assert driver.name == NAME
    assert LabelPrinter.kind == "label_printer"


# --- happy path -----------------------------------------------------------------------


async def test_prints_a_traveller_and_a_chinese_shipping_label(
    sim: SimulatedPrinter, printer: LabelPrinter
) -> None:
    traveller = await printer.print_label(render_traveller(TRAVELLER), "TRV-LG-000123")
    shipping = await printer.print_label(render_shipping(SHIPPING), "SHP-LINE3-0000045")

    first, second = sim.labels
    assert (first.job_id, second.job_id) == ("TRV-LG-000123", "SHP-LINE3-0000045")
    for label in (first, second):
        assert "^CI28" in label.raw.decode("utf-8")
        assert label.utf8
    # What the printer decoded is what the gateway meant, Chinese included.
    assert "生日快乐 Anna" in first.texts
    assert [decode_code128(b.data) for b in first.barcodes] == [TRAVELLER.serial]
    for text in ("王小明", "浦东新区世纪大道100号", "15楼", "上海", "上海市", "200120", "1.25 kg"):
        assert text in second.texts
    assert [decode_code128(b.data) for b in second.barcodes] == [SHIPPING.label_id]
    name = next(f for f in second.fields if f.text == "王小明")
    assert (name.x, name.y, name.font) == (40, 175, "@N,56,56,E:SIMSUN.TTF")

    assert shipping.job_id == "SHP-LINE3-0000045"
    assert shipping.bytes_sent == len(frame_job(render_shipping(SHIPPING), "SHP-LINE3-0000045"))
    assert (
        traveller.status_before
        == traveller.status_after
        == HostStatus(label_length_dots=1218, communication_settings=30, print_mode=2)
    )
    diagnostics = printer.diagnostics()
    assert diagnostics["jobs_printed"] == 2
    assert diagnostics["bytes_sent"] == traveller.bytes_sent + shipping.bytes_sent
    assert diagnostics["last_job_id"] == "SHP-LINE3-0000045"
    assert diagnostics["connected"]
    assert diagnostics["problem"] is None
    assert diagnostics["url"] == sim.url


async def test_status_is_read_before_and_after_and_the_label_is_done_on_return() -> None:
    sim = simulator(print_time_s=0.3)  # slow enough to be seen printing
    await sim.start()
    printer = driver_for(sim)
    try:
        await printer.connect()
        sim.controls.clear()
        result = await printer.print_label(render_traveller(TRAVELLER), "TRV-1")
        assert [label.job_id for label in sim.labels] == ["TRV-1"]
        assert sim.held == []
        # One ~HS before the job and several while it printed, nothing else.
        assert set(sim.controls) == {"~HS"}
        assert len(sim.controls) >= 3
        assert result.status_before is not None
        assert not result.status_before.busy
        assert result.status_after is not None
        assert not result.status_after.busy
    finally:
        await printer.close()
        await sim.stop()


async def test_without_status_checks_the_job_is_just_sent(sim: SimulatedPrinter) -> None:
    printer = driver_for(sim, check_status=False)
    await printer.connect()
    try:
        sim.controls.clear()
        result = await printer.print_label(render_traveller(TRAVELLER), "TRV-2")
        assert (result.status_before, result.status_after) == (None, None)
        await eventually(lambda: len(sim.labels) == 1)
        assert sim.controls == []
    finally:
        await printer.close()


async def test_a_300_dpi_printer_is_told_to_scale(sim: SimulatedPrinter) -> None:
    printer = driver_for(sim, dpi=300)
    await printer.connect()
    try:
        await printer.print_label(render_traveller(TRAVELLER), "TRV-3")
    finally:
        await printer.close()
    (label,) = sim.labels
    assert label.commands[:4] == ("^XA", "^FX", "^FS", "^MU")
    assert b"^MUd,200,300" in label.raw


# --- ZPL injection, end to end -------------------------------------------------------

HOSTILE = ["^XZ^XA^FDpwned^FS^XZ", "~JA", "~HS", "_5E", "a\r\nb", "\x03", "^" * 3000, "长" * 3000]


@pytest.mark.parametrize("text", HOSTILE)
async def test_customer_text_reaches_the_printer_as_field_data(
    sim: SimulatedPrinter, printer: LabelPrinter, text: str
) -> None:
    await printer.print_label(render_shipping(dataclasses.replace(SHIPPING, name="x")), "PLAIN")
    hostile = dataclasses.replace(SHIPPING, name=text, city=text)
    sim.controls.clear()
    await printer.print_label(render_shipping(hostile), "HOSTILE")

    plain, printed = sim.labels
    assert len(sim.labels) == 2  # one format per job, no more
    assert printed.commands == plain.commands
    assert set(sim.controls) == {"~HS"}  # the driver's own status reads only
    assert sim.status()["formats_cancelled"] == 0
    for shown in (printed.texts[4], printed.texts[8]):  # name, city
        assert shown == text or (shown.endswith("…") and text.startswith(shown[:-1]))


# --- the printer says no ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (SimulatedPrinter.paper_out, "paper out"),
        (SimulatedPrinter.head_open, "print head open"),
        (SimulatedPrinter.pause, "printer paused"),
    ],
)
async def test_a_printer_that_cannot_print_is_sent_nothing(
    sim: SimulatedPrinter,
    printer: LabelPrinter,
    fault: Callable[[SimulatedPrinter, bool], None],
    problem: str,
) -> None:
    fault(sim, True)
    with pytest.raises(DeviceRejected, match=problem):
        await printer.print_label(render_traveller(TRAVELLER), "TRV-4")
    assert sim.labels == []
    assert sim.held == []
    assert printer.status is not None
    assert printer.status.problem == problem
    assert printer.diagnostics()["jobs_refused"] == 1
    assert printer.connected  # refusing is not a link failure

    fault(sim, False)
    await printer.print_label(render_traveller(TRAVELLER), "TRV-4")
    assert [label.job_id for label in sim.labels] == ["TRV-4"]


async def test_paper_out_is_reported_and_cleared_while_idle(sim: SimulatedPrinter) -> None:
    seen: list[str | None] = []
    printer = driver_for(
        sim, status_interval_s=0.02, on_status_change=lambda s: seen.append(s.problem)
    )
    await printer.connect()
    running = asyncio.create_task(printer.run())
    try:
        sim.paper_out(True)
        await eventually(lambda: seen[-1:] == ["paper out"])
        sim.paper_out(False)
        await eventually(lambda: seen[-1:] == [None])
        # Told once per change, not on every poll.
        assert seen == [None, "paper out", None]
        await printer.print_label(render_traveller(TRAVELLER), "TRV-5")
    finally:
        running.cancel()
        await asyncio.wait({running})
        await printer.close()
    assert len(sim.labels) == 1


async def test_paper_running_out_during_the_job_cancels_it() -> None:
    sim = simulator(print_time_s=10.0)  # the label is still printing when the paper runs out
    await sim.start()
    printer = driver_for(sim)
    try:
        await printer.connect()
        job = asyncio.create_task(printer.print_label(render_traveller(TRAVELLER), "TRV-6"))
        await eventually(lambda: len(sim.held) == 1)
        sim.paper_out(True)
        with pytest.raises(DeviceRejected, match="paper out during job TRV-6"):
            await job
        # ~JA cleared the buffer: reloading the paper does not print it behind our back.
        assert "~JA" in sim.controls
        assert sim.held == []
        assert sim.status()["formats_cancelled"] == 1
        sim.paper_out(False)
        await asyncio.sleep(0.05)
        assert sim.labels == []
    finally:
        await printer.close()
        await sim.stop()


async def test_a_label_that_does_not_finish_in_time_is_cancelled() -> None:
    sim = simulator(print_time_s=10.0)
    await sim.start()
    printer = driver_for(sim, job_timeout_s=0.2)
    try:
        await printer.connect()
        with pytest.raises(DeviceRejected, match=r"not printed within 0\.2 s"):
            await printer.print_label(render_traveller(TRAVELLER), "TRV-7")
        assert sim.held == []
        assert sim.labels == []
    finally:
        await printer.close()
        await sim.stop()


# --- link faults ------------------------------------------------------------------------


async def test_no_status_reply_times_out_and_drops_the_link(
    sim: SimulatedPrinter, printer: LabelPrinter
) -> None:
    sim.faults.set(drop=1.0)
    with pytest.raises(DeviceUnavailable, match=r"no host status reply within 0\.3 s"):
        await printer.host_status()
    assert not printer.connected
    with pytest.raises(DeviceUnavailable, match="not connected"):
        await printer.print_label(render_traveller(TRAVELLER), "TRV-8")
    assert sim.labels == []
    assert printer.diagnostics()["errors"] == 1


async def test_a_late_reply_is_never_taken_for_the_next_one(
    sim: SimulatedPrinter, printer: LabelPrinter
) -> None:
    sim.faults.set(delay_s=0.5)  # the ready status arrives after the driver gave up
    with pytest.raises(DeviceUnavailable):
        await printer.host_status()
    sim.faults.set(delay_s=0.0)
    sim.paper_out(True)
    await printer.close()
    await printer.connect()
    await asyncio.sleep(0.6)  # the late reply would have come by now
    status = await printer.host_status()
    assert status.paper_out


async def test_connect_fails_cleanly_when_the_printer_does_not_answer(
    sim: SimulatedPrinter,
) -> None:
    sim.faults.set(drop=1.0)
    printer = driver_for(sim)
    with pytest.raises(DeviceUnavailable):
        await printer.connect()
    assert not printer.connected
    await printer.close()


@pytest.mark.parametrize("seed", range(5))
async def test_a_garbled_status_reply_is_a_protocol_error(sim: SimulatedPrinter, seed: int) -> None:
    sim.faults = Faults(garble=1.0, rng=random.Random(seed))
    printer = driver_for(sim)
    with pytest.raises(ProtocolError):
        await printer.connect()
    assert not printer.connected
    assert printer.diagnostics()["errors"] == 1
    # Once the line is clean again, a reconnect works.
    sim.faults.set(garble=0.0)
    await printer.connect()
    await printer.print_label(render_traveller(TRAVELLER), "TRV-9")
    await printer.close()


async def test_disconnect_and_reconnect(sim: SimulatedPrinter, printer: LabelPrinter) -> None:
    printer = driver_for(sim, status_interval_s=0.02)
    await printer.connect()
    running = asyncio.create_task(printer.run())
    await sim.disconnect()
    with pytest.raises(DeviceUnavailable):
        await running
    # The supervisor's part: close, back off, connect again.
    await printer.close()
    await printer.connect()
    await printer.print_label(render_traveller(TRAVELLER), "TRV-10")
    assert [label.job_id for label in sim.labels] == ["TRV-10"]
    await printer.close()


async def test_printer_off_and_on_again_on_the_same_port(
    sim: SimulatedPrinter, printer: LabelPrinter
) -> None:
    port = sim.port
    await sim.stop()
    with pytest.raises(DeviceUnavailable):
        await printer.host_status()
    await printer.close()
    with pytest.raises(DeviceUnavailable, match="cannot reach"):
        await printer.connect()
    await sim.start()
    assert sim.port == port
    await printer.connect()
    await printer.print_label(render_shipping(SHIPPING), "SHP-11")
    assert [label.job_id for label in sim.labels] == ["SHP-11"]


async def test_close_twice_and_before_connect(sim: SimulatedPrinter) -> None:
    printer = driver_for(sim)
    await printer.close()  # never connected
    await printer.connect()
    await printer.close()
    await printer.close()
    assert not printer.connected
    with pytest.raises(DeviceUnavailable, match="not connected"):
        await printer.host_status()
    with pytest.raises(DeviceUnavailable, match="not connected"):
        await printer.run()


async def test_a_bad_job_is_refused_before_anything_is_sent(
    sim: SimulatedPrinter, printer: LabelPrinter
) -> None:
    sim.controls.clear()
    with pytest.raises(ValueError, match="job id"):
        await printer.print_label(render_traveller(TRAVELLER), "no spaces")
    with pytest.raises(ValueError, match="one label format"):
        await printer.print_label("^FDloose field^FS", "J1")
    assert sim.controls == []
    assert printer.connected


# --- serial -------------------------------------------------------------------------------


async def test_serial_printer_on_a_pty_unplugged_and_plugged_back(tmp_path: Path) -> None:
    by_id = tmp_path / "usb-Zebra_Technologies_ZTC_ZD421-203dpi_ZPL_D4J000000-if00"
    sim = simulator(f"serial://{by_id}")
    await sim.start()
    printer = driver_for(sim, baudrate=115200)
    try:
        await printer.connect()
        await printer.print_label(render_shipping(SHIPPING), "SHP-12")
        assert "王小明" in sim.labels[0].texts

        await sim.stop()  # unplugged: the by-id link disappears
        assert not by_id.exists()
        with pytest.raises(DeviceUnavailable):
            await printer.host_status()
        await printer.close()
        with pytest.raises(DeviceUnavailable, match="cannot reach"):
            await printer.connect()

        await sim.start()  # plugged back: a new tty behind the same name
        await printer.connect()
        await printer.print_label(render_traveller(TRAVELLER), "TRV-12")
        assert [label.job_id for label in sim.labels] == ["SHP-12", "TRV-12"]
    finally:
        await printer.close()
        await sim.stop()


async def test_serial_line_blip(tmp_path: Path) -> None:
    sim = simulator(f"serial://{tmp_path / 'printer'}")
    await sim.start()
    printer = driver_for(sim, status_interval_s=0.02)
    try:
        await printer.connect()
        running = asyncio.create_task(printer.run())
        await sim.disconnect()
        with pytest.raises(DeviceUnavailable):
            await running
        await printer.close()
        await printer.connect()
        assert (await printer.host_status()).problem is None
    finally:
        await printer.close()
        await sim.stop()


def test_simulator_status_is_plain_data() -> None:
    status: dict[str, Any] = simulator().status()
    assert status["running"] is False
    assert status["labels_printed"] == 0
    assert status["faults"] == {"drop": 0.0, "delay_s": 0.0, "garble": 0.0}
