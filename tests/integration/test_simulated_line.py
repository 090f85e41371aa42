"""SimulatedLine, the simulators of a whole line: a secure machine, a failed start."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from drivers.label_printer import LabelPrinterConfig
from drivers.opcua_machine import MachineEvent, OpcUaMachineConfig
from drivers.opcua_machine.driver import OpcUaMachine
from simulators.line import DeviceSpec, SimulatedLine
from simulators.opcua_machine import write_test_certificate
from simulators.relocate import free_port, relocate_line

MACHINE: dict[str, Any] = {
    "kind": "opcua_machine",
    "namespace_uri": "urn:linegate:test:secure",
    "timeout_s": 2.0,
    "nodes": {
        "state": "M/State",
        "good_count": "M/Good",
        "bad_count": "M/Bad",
        "job_id": "M/Job",
    },
    "job": {"mode": "method", "method": "M/Start"},
}


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_a_secure_machine_is_simulated_with_its_own_certificate(
    tmp_path: Path, mode: str
) -> None:
    cert, key = tmp_path / "gateway.der", tmp_path / "gateway.pem"
    write_test_certificate(cert, key, "urn:linegate:test:gateway")
    config = OpcUaMachineConfig.model_validate(
        MACHINE
        | {
            "url": f"opc.tcp://127.0.0.1:{free_port()}/secure",
            "security_mode": mode,
            "certificate": str(cert),
            "private_key": str(key),
        }
    )
    line = SimulatedLine([DeviceSpec("laser-1", "machine", config)])
    await line.start()
    events: list[MachineEvent] = []
    driver = OpcUaMachine("laser-1/machine", config, events.append)
    try:
        await driver.connect()
        assert driver.diagnostics()["security"] == f"Basic256Sha256/{mode}"
        assert driver.status is not None and driver.status.state == "IDLE"
    finally:
        await driver.close()
        await line.stop()


async def test_a_device_that_cannot_start_stops_the_others() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = free_port()
        specs = [
            DeviceSpec(
                "kit-1",
                "printer",
                LabelPrinterConfig(kind="label_printer", url=f"tcp://127.0.0.1:{free}"),
            ),
            DeviceSpec(
                "kit-2",
                "printer",
                LabelPrinterConfig(kind="label_printer", url=f"tcp://127.0.0.1:{port}"),
            ),
        ]
        line = SimulatedLine(specs)
        with pytest.raises(OSError):
            await line.start()
    # The printer that did start was stopped again: its port is free.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", free))


def test_a_relocated_line_never_gives_two_devices_one_port(tmp_path: Path) -> None:
    """Ports are checked free, not held: a picker that keeps offering the same free port
    must still end with every device on a port of its own."""
    offers = iter([30001, 30001, 30001, *range(30002, 30100)])
    root = Path(__file__).resolve().parents[2] / "station_configs" / "reference-line"
    mapping = relocate_line(root, tmp_path / "line", tmp_path / "sim", port=lambda: next(offers))
    assert len(set(mapping.values())) == len(mapping)
