"""OPC UA machine: the pure codecs by tables, then the real driver against the real
simulator (an asyncua server on a loopback port)."""

from __future__ import annotations

import asyncio
import socket
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes
from pydantic import ValidationError

from drivers.base import DeviceRejected, DeviceUnavailable, Driver, DriverError, ProtocolError
from drivers.opcua_machine import (
    UNKNOWN_STATE,
    JobFinished,
    MachineEvent,
    MachineStatus,
    OpcUaMachine,
    OpcUaMachineConfig,
    PackMLState,
)
from drivers.opcua_machine.codec import (
    decode_return_status,
    error_for_status,
    value_to_variant,
    variant_type_of,
)
from drivers.opcua_machine.nodes import BrowsePath, ExplicitNodeId, parse_node_ref
from drivers.opcua_machine.packml import (
    TR88_STATE_CODES,
    decode_count,
    decode_state,
    decode_text,
    state_lookup,
)
from drivers.opcua_machine.tracker import MachineTracker
from simulators.faults import SimulatedDevice
from simulators.opcua_machine import LOCAL_MODE_REFUSAL, SimulatedMachine, write_test_certificate

NAMESPACE = "urn:linegate:test:engraver"
TR88 = state_lookup((state.value, code) for state, code in TR88_STATE_CODES.items())

# A machine with every tag, a method job with two parameters and a reset method; the
# driver runs without security unless a test says otherwise (the security tests do).
BASE: dict[str, Any] = {
    "kind": "opcua_machine",
    "url": "opc.tcp://127.0.0.1:0/engraver",
    "namespace_uri": NAMESPACE,
    "security_policy": "None",
    "allow_insecure": True,
    "timeout_s": 0.5,
    "subscription_interval_ms": 50,
    "keepalive_s": 1.0,
    "nodes": {
        "state": "Machine/Status/StateCurrent",
        "good_count": "Machine/Admin/ProdProcessedCount",
        "bad_count": "Machine/Admin/ProdDefectiveCount",
        "stop_reason": "Machine/Admin/StopReason",
        "job_id": "Machine/Job/Id",
    },
    "job": {"mode": "method", "method": "Machine/StartJob", "arguments": ["text", "font"]},
    "reset": {"method": "Machine/Reset"},
}
WRITES_JOB: dict[str, Any] = {
    "mode": "writes",
    "job_id": "Machine/Job/Id",
    "parameters": {"text": "Machine/Job/Text", "font": "Machine/Job/Font"},
    # PackML style: a command code written to a command tag.
    "start": {"node": "Machine/Command", "value": 2},
}


def make_config(**changes: Any) -> OpcUaMachineConfig:
    return OpcUaMachineConfig.model_validate(BASE | changes)


# -- codecs and config (no I/O) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Machine/State", BrowsePath(("Machine", "State"))),
        ("State", BrowsePath(("State",))),
        ("Line 3/Machine.1/Status", BrowsePath(("Line 3", "Machine.1", "Status"))),
        ("ns=2;s=Machine.State", ExplicitNodeId("s=Machine.State", namespace_index=2)),
        ("ns=4;i=6021", ExplicitNodeId("i=6021", namespace_index=4)),
        ("i=2258", ExplicitNodeId("i=2258")),
        ("nsu=urn:x:y;s=A/B", ExplicitNodeId("s=A/B", namespace_uri="urn:x:y")),
        (
            "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            ExplicitNodeId("g=09087e75-8e5e-499b-954f-f2a9603db28a", namespace_index=1),
        ),
        ("ns=1;b=AAEC", ExplicitNodeId("b=AAEC", namespace_index=1)),
    ],
)
def test_node_refs_parse(text: str, expected: object) -> None:
    parsed = parse_node_ref(text)
    assert parsed == expected
    assert str(parsed) == text


@pytest.mark.parametrize(
    "text", ["", " Machine/State", "Machine//State", "Machine/", "ns=x;s=A", "i=abc", "nsu=;s=A"]
)
def test_bad_node_refs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_node_ref(text)


@pytest.mark.parametrize(
    ("raw", "codes", "expected"),
    [
        (4, TR88, "IDLE"),
        (6, TR88, "EXECUTE"),
        (11, TR88, "HELD"),
        (17, TR88, "COMPLETE"),
        (0, TR88, UNKNOWN_STATE),  # TR88 "Undefined"
        (99, TR88, UNKNOWN_STATE),
        ("4", TR88, UNKNOWN_STATE),  # no conversion between types
        (True, TR88, UNKNOWN_STATE),  # bool is not a code
        (4.0, TR88, UNKNOWN_STATE),
        (None, TR88, UNKNOWN_STATE),
        # OPC 30060 (TMC) numbers the states differently.
        (2, state_lookup([("IDLE", 2), ("EXECUTE", 4)]), "IDLE"),
        ("Running", state_lookup([("IDLE", "Ready"), ("EXECUTE", "Running")]), "EXECUTE"),
    ],
)
def test_states_decode_by_the_machines_map(
    raw: object, codes: dict[int | str, str], expected: str
) -> None:
    assert decode_state(raw, codes) == expected


@pytest.mark.parametrize(("raw", "expected"), [(0, 0), (12, 12), (2**40, 2**40)])
def test_counters_decode(raw: object, expected: int) -> None:
    assert decode_count(raw) == expected


@pytest.mark.parametrize("raw", [-1, True, 1.5, "3", None])
def test_bad_counter_values_are_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        decode_count(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), ("  ", None), (0, None), (" J-1 ", "J-1"), (17, "17")],
)
def test_texts_decode(raw: object, expected: str | None) -> None:
    assert decode_text(raw) == expected


@pytest.mark.parametrize("raw", [True, 1.5, b"x", [1]])
def test_bad_text_values_are_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        decode_text(raw)


@pytest.mark.parametrize(
    ("value", "variant_type", "expected"),
    [
        ("hello 生日快乐", ua.VariantType.String, "hello 生日快乐"),
        (2, ua.VariantType.String, "2"),
        (True, ua.VariantType.String, "true"),
        (2, ua.VariantType.Int32, 2),
        ("42", ua.VariantType.UInt16, 42),
        (True, ua.VariantType.Int16, 1),
        (True, ua.VariantType.Boolean, True),
        ("false", ua.VariantType.Boolean, False),
        (1, ua.VariantType.Boolean, True),
        ("2.5", ua.VariantType.Double, 2.5),
        (3, ua.VariantType.Float, 3.0),
    ],
)
def test_values_convert_to_the_tags_type(
    value: bool | int | str, variant_type: ua.VariantType, expected: object
) -> None:
    variant = value_to_variant(value, variant_type)
    assert variant.VariantType == variant_type
    assert variant.Value == expected


@pytest.mark.parametrize(
    ("value", "variant_type"),
    [
        ("abc", ua.VariantType.Int32),
        ("300", ua.VariantType.Byte),
        (-1, ua.VariantType.UInt32),
        ("maybe", ua.VariantType.Boolean),
        (2, ua.VariantType.Boolean),
        ("x", ua.VariantType.Double),
        ("x", ua.VariantType.DateTime),
    ],
)
def test_values_that_do_not_fit_are_refused(
    value: bool | int | str, variant_type: ua.VariantType
) -> None:
    with pytest.raises(ValueError):
        value_to_variant(value, variant_type)


@pytest.mark.parametrize(
    ("data_type", "current", "expected"),
    [
        (ua.NodeId(ua.Int32(6)), None, ua.VariantType.Int32),
        (ua.NodeId(ua.Int32(12)), None, ua.VariantType.String),
        (ua.NodeId(ua.Int32(1)), None, ua.VariantType.Boolean),
        (ua.NodeId(ua.Int32(29)), None, ua.VariantType.Int32),  # Enumeration
        (ua.NodeId(ua.Int32(3003), ua.Int16(2)), ua.VariantType.Int32, ua.VariantType.Int32),
    ],
)
def test_write_types_follow_the_data_type(
    data_type: ua.NodeId, current: ua.VariantType | None, expected: ua.VariantType
) -> None:
    assert variant_type_of(data_type, current) == expected


def test_structures_are_not_written() -> None:
    with pytest.raises(ValueError):
        variant_type_of(ua.NodeId(ua.Int32(22)), ua.VariantType.ExtensionObject)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (StatusCodes.BadTimeout, DeviceUnavailable),
        (StatusCodes.BadSessionIdInvalid, DeviceUnavailable),
        (StatusCodes.BadServerHalted, DeviceUnavailable),
        (StatusCodes.BadDecodingError, ProtocolError),
        (StatusCodes.BadInvalidState, DeviceRejected),
        (StatusCodes.BadUserAccessDenied, DeviceRejected),
        (StatusCodes.BadTypeMismatch, DeviceRejected),
    ],
)
def test_status_codes_map_to_driver_errors(code: int, error: type[DriverError]) -> None:
    found = error_for_status(code, "job J-1")
    assert type(found) is error
    assert str(found).startswith("job J-1: Bad")


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (None, None),
        ([], None),
        ([ua.Variant(0, ua.VariantType.Int32)], 0),
        ([ua.Variant(2, ua.VariantType.UInt32)], 2),
    ],
)
def test_method_return_status(outputs: list[ua.Variant] | None, expected: int | None) -> None:
    assert decode_return_status(outputs, "job") == expected


@pytest.mark.parametrize(
    "output",
    [ua.Variant("OK", ua.VariantType.String), ua.Variant(True, ua.VariantType.Boolean)],
)
def test_garbled_method_reply_is_a_protocol_error(output: ua.Variant) -> None:
    with pytest.raises(ProtocolError):
        decode_return_status([output], "job")


def _statuses(events: list[MachineEvent]) -> list[str]:
    return [e.state for e in events if isinstance(e, MachineStatus)]


def test_tracker_reports_changes_and_the_finished_job() -> None:
    tracker = MachineTracker(TR88)
    first = tracker.update(
        {"state": 4, "good_count": 10, "bad_count": 1, "job_id": "", "stop_reason": ""}
    )
    assert first == [MachineStatus("IDLE", None, 10, 1, None, None)]
    assert tracker.update({"state": 4}) == []  # no change, no event
    tracker.job_started("J-1")
    assert _statuses(tracker.update({"job_id": "J-1", "state": 3})) == ["STARTING"]
    assert _statuses(tracker.update({"state": 6})) == ["EXECUTE"]
    assert tracker.update({"good_count": 11}) == [
        MachineStatus("EXECUTE", "EXECUTE", 11, 1, None, "J-1")
    ]
    done = tracker.update({"state": 17})
    assert done[-1] == JobFinished("J-1", good=1, bad=0)
    assert tracker.active_job is None
    assert not any(isinstance(e, JobFinished) for e in tracker.update({"state": 17}))


def test_tracker_sees_completion_by_completed_job_id_after_an_outage() -> None:
    tracker = MachineTracker(TR88)
    tracker.update({"state": 4, "good_count": 5, "bad_count": 0, "job_id": None})
    tracker.job_started("J-2")
    # Reconnected after the machine went COMPLETE and back to IDLE.
    events = tracker.update(
        {"state": 4, "good_count": 5, "bad_count": 1, "job_id": "J-2", "completed_job_id": "J-2"}
    )
    assert events[-1] == JobFinished("J-2", good=0, bad=1)


def test_tracker_sees_completion_when_complete_was_too_short_to_be_seen() -> None:
    tracker = MachineTracker(TR88)
    tracker.update({"state": 4, "good_count": 5, "bad_count": 0, "job_id": "J-0"})
    tracker.job_started("J-4")
    tracker.update({"state": 6, "job_id": "J-4"})
    # Back to IDLE without the job's part counted: not finished (aborted and reset).
    assert not any(isinstance(e, JobFinished) for e in tracker.update({"state": 4}))
    tracker.update({"state": 6})
    # COMPLETE fell between two publishes: IDLE with the part counted.
    events = tracker.update({"state": 4, "good_count": 6})
    assert events[-1] == JobFinished("J-4", good=1, bad=0)


def test_tracker_counts_from_zero_after_a_counter_reset() -> None:
    tracker = MachineTracker(TR88)
    tracker.update({"state": 4, "good_count": 500, "bad_count": 7, "job_id": None})
    tracker.job_started("J-3")
    events = tracker.update({"state": 17, "good_count": 2, "bad_count": 0, "job_id": "J-3"})
    assert events[-1] == JobFinished("J-3", good=2, bad=0)


def test_tracker_keeps_the_last_good_value_and_counts_bad_ones() -> None:
    tracker = MachineTracker(TR88)
    tracker.update({"state": 4, "good_count": 3, "bad_count": 0, "job_id": "J"})
    assert tracker.update({"good_count": "garbage", "job_id": 4.5}) == []
    assert tracker.bad_values == 2
    assert tracker.status is not None and tracker.status.good == 3
    unknown = tracker.update({"state": 42})
    assert _statuses(unknown) == [UNKNOWN_STATE]
    assert tracker.unknown_states == 1 and tracker.last_unknown_code == 42


def test_fault_states_hold_the_task() -> None:
    assert MachineStatus("HELD", "EXECUTE", 0, 0, "jam", "J").faulted
    assert MachineStatus("ABORTED", "ABORTING", 0, 0, None, None).faulted
    assert not MachineStatus("SUSPENDED", "EXECUTE", 0, 0, None, "J").faulted
    assert not MachineStatus("IDLE", None, 0, 0, None, None).faulted


def test_config_defaults() -> None:
    config = OpcUaMachineConfig.model_validate(
        {
            "kind": "opcua_machine",
            "url": "opc.tcp://10.0.0.5:4840/",
            "namespace_uri": NAMESPACE,
            "certificate": "pki/gateway.der",
            "private_key": "pki/gateway.pem",
            "nodes": BASE["nodes"],
            "job": {"mode": "method", "method": "Machine/StartJob"},
        }
    )
    assert config.security_policy == "Basic256Sha256"
    assert config.security_mode == "SignAndEncrypt"
    assert config.states["IDLE"] == 4 and config.states["COMPLETE"] == 17
    assert config.queue_size == 1
    assert config.job.ready_states == ["IDLE"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"allow_insecure": False}, "allow_insecure = true"),
        ({"security_policy": "Basic256Sha256"}, "needs certificate and private_key"),
        ({"url": "http://host:4840/"}, "opc.tcp://host:port/path"),
        ({"url": "opc.tcp://host/path"}, "give the port"),
        ({"url": "opc.tcp://user:pw@host:4840/"}, "no user or password in the URL"),
        ({"states": {"IDLE": 4, "EXECUTE": 4, "COMPLETE": 17}}, "same code"),
        ({"states": {"IDLE": 4, "EXECUTE": "run", "COMPLETE": 17}}, "all integers or all"),
        ({"states": {"IDLE": 4, "COMPLETE": 17}}, "EXECUTE must be mapped"),
        ({"states": {"IDLE": 4, "EXECUTE": 6}}, "job completion cannot be seen"),
        ({"states": {"RUNNING": 6}}, "states.RUNNING"),
        ({"job": {"mode": "method", "method": "ns=2;i=7"}}, "object is required"),
        ({"job": {"mode": "method", "method": "StartJob"}}, "has no parent"),
        ({"job": {"mode": "shout"}}, "mode"),
        (
            {
                "job": {
                    "mode": "writes",
                    "job_id": "M/Id",
                    "start": {"node": "M/C", "method": "M/S"},
                }
            },
            "either method",
        ),
        (
            {"job": {"mode": "method", "method": "M/S", "ready_states": ["STOPPED"], "x": 1}},
            "Extra inputs",
        ),
        (
            {
                "states": {"IDLE": 4, "EXECUTE": 6, "COMPLETE": 17},
                "job": {"mode": "method", "method": "M/S", "ready_states": ["STOPPED"]},
            },
            "STOPPED not in states",
        ),
        ({"nodes": {**BASE["nodes"], "state": "ns=two;s=X"}}, "not a valid node id"),
        ({"keepalive_s": 0.05}, "two publishing intervals"),
        ({"queue_size": 0}, "greater than or equal to 1"),
        ({"password_file": "/etc/pw"}, "password_file needs username"),
        ({"timeout_s": "2"}, "valid number"),
    ],
)
def test_config_refuses_mistakes_with_a_clear_message(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make_config(**changes)
    assert message in str(caught.value)


def test_policy_none_needs_allow_insecure() -> None:
    settings = dict(BASE)
    del settings["allow_insecure"]
    with pytest.raises(ValidationError, match='security_policy = "None"'):
        OpcUaMachineConfig.model_validate(settings)


def test_writes_job_config() -> None:
    config = make_config(
        job=WRITES_JOB, states={"IDLE": "Ready", "EXECUTE": "Busy", "COMPLETE": "Done"}
    )
    assert config.job.mode == "writes"
    # No COMPLETE code: completion comes from completed_job_id, which is then required.
    with pytest.raises(ValidationError, match="completed_job_id"):
        make_config(states={"IDLE": 1, "EXECUTE": 2})
    make_config(
        states={"IDLE": 1, "EXECUTE": 2},
        nodes={**BASE["nodes"], "completed_job_id": "Machine/Job/LastCompleted"},
    )


def test_example_station_file_is_a_valid_machine() -> None:
    example = Path(__file__).parents[2] / "station_configs" / "examples" / "opcua-machine.toml"
    with example.open("rb") as file:
        station = tomllib.load(file)
    (device,) = station["devices"].values()
    config = OpcUaMachineConfig.model_validate(device)
    assert config.security_policy == "Basic256Sha256"


# -- the driver against the simulator ----------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    host = socket.gethostname()
    paths = Pki(*(folder / name for name in ("s.der", "s.pem", "c.der", "c.pem", "x.der")))
    write_test_certificate(paths.server_cert, paths.server_key, "urn:linegate:test:sim", host)
    write_test_certificate(paths.client_cert, paths.client_key, "urn:linegate:test:gw", host)
    write_test_certificate(paths.stranger_cert, folder / "x.pem", "urn:linegate:test:x", host)
    return paths


class Recorder:
    """Collects the driver's events and waits for the one a test expects."""

    def __init__(self) -> None:
        self.events: list[MachineEvent] = []
        self._arrived = asyncio.Event()

    def __call__(self, event: MachineEvent) -> None:
        self.events.append(event)
        self._arrived.set()

    async def wait_for(
        self, predicate: Callable[[MachineEvent], bool], timeout_s: float = 5.0
    ) -> MachineEvent:
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    async def status(self, state: str, timeout_s: float = 5.0) -> MachineStatus:
        found = await self.wait_for(
            lambda e: isinstance(e, MachineStatus) and e.state == state, timeout_s
        )
        assert isinstance(found, MachineStatus)
        return found

    async def finished(self, job_id: str) -> JobFinished:
        found = await self.wait_for(lambda e: isinstance(e, JobFinished) and e.job_id == job_id)
        assert isinstance(found, JobFinished)
        return found


@dataclass
class Rig:
    sim: SimulatedMachine
    driver: OpcUaMachine
    events: Recorder
    runs: list[asyncio.Task[None]]

    def run(self) -> asyncio.Task[None]:
        task = asyncio.create_task(self.driver.run())
        self.runs.append(task)
        return task


class Bench:
    """Builds simulator + driver pairs and tears every one down."""

    def __init__(self) -> None:
        self._rigs: list[Rig] = []

    async def rig(
        self,
        config: OpcUaMachineConfig | None = None,
        *,
        driver_config: dict[str, Any] | None = None,
        connect: bool = True,
        **sim_options: Any,
    ) -> Rig:
        config = config or make_config()
        sim_options.setdefault("cycle_s", 0.1)
        sim_options.setdefault("complete_hold_s", 0.2)
        sim = SimulatedMachine("test/machine", config, **sim_options)
        await sim.start()
        updates = {"url": sim.url} | (driver_config or {})
        events = Recorder()
        driven = OpcUaMachineConfig.model_validate(config.model_dump() | updates)
        driver = OpcUaMachine("test/machine", driven, events)
        rig = Rig(sim, driver, events, [])
        self._rigs.append(rig)
        if connect:
            await driver.connect()
        return rig

    async def aclose(self) -> None:
        for rig in self._rigs:
            for task in rig.runs:
                task.cancel()
            if rig.runs:
                await asyncio.wait(rig.runs)
            for task in rig.runs:
                if not task.cancelled():
                    task.exception()  # retrieved: a run that ended with the link is expected
            await rig.driver.close()
            await rig.sim.close()


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    bench = Bench()
    yield bench
    await bench.aclose()


async def raises_unavailable(task: asyncio.Task[None], timeout_s: float = 5.0) -> str:
    with pytest.raises(DeviceUnavailable) as caught:
        async with asyncio.timeout(timeout_s):
            await task
    return str(caught.value)


async def test_driver_and_simulator_fit_the_interfaces(bench: Bench) -> None:
    rig = await bench.rig(connect=False)
    driver: Driver = rig.driver  # mypy checks the protocol
    # The protocol's promise: close is safe before any connect, and twice.
    await driver.close()
    await driver.close()
    device: SimulatedDevice = rig.sim
    assert device.status()["state"] == "IDLE"
    assert rig.driver.kind == "opcua_machine"


async def test_happy_path_job_runs_to_completion(bench: Bench) -> None:
    rig = await bench.rig()
    assert rig.driver.status == MachineStatus("IDLE", None, 0, 0, None, None)
    rig.run()
    await rig.driver.start_job("J-1", {"text": "Anna 生日快乐", "font": "serif", "colour": "red"})
    assert rig.sim.jobs == [("J-1", {"text": "Anna 生日快乐", "font": "serif"})]
    executing = await rig.events.status("EXECUTE")
    assert executing.job_id == "J-1"
    assert await rig.events.finished("J-1") == JobFinished("J-1", good=1, bad=0)
    diagnostics = rig.driver.diagnostics()
    assert diagnostics["jobs_started"] == 1 and diagnostics["jobs_finished"] == 1
    assert diagnostics["notifications"] > 0 and diagnostics["connected"] is True
    assert rig.driver.active_job is None

    # A second job, with a part the machine counts as bad.
    await rig.events.wait_for(lambda e: isinstance(e, MachineStatus) and e.previous == "RESETTING")
    rig.sim.mark_next_part_bad()
    await rig.driver.start_job("J-2", {})
    assert rig.sim.jobs[-1] == ("J-2", {"text": "", "font": ""})
    assert await rig.events.finished("J-2") == JobFinished("J-2", good=0, bad=1)


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
@pytest.mark.parametrize("pinned", [False, True])
async def test_basic256sha256_with_certificates(
    bench: Bench, pki: Pki, mode: str, pinned: bool
) -> None:
    config = make_config(
        security_policy="Basic256Sha256",
        security_mode=mode,
        allow_insecure=False,
        certificate=str(pki.client_cert),
        private_key=str(pki.client_key),
        server_certificate=str(pki.server_cert) if pinned else None,
    )
    rig = await bench.rig(
        config, certificate=pki.server_cert, private_key=pki.server_key, cycle_s=0.05
    )
    assert rig.driver.diagnostics()["security"] == f"Basic256Sha256/{mode}"
    rig.run()
    await rig.driver.start_job("J-S", {"text": "secret"})
    assert (await rig.events.finished("J-S")).good == 1


async def test_a_machine_with_another_certificate_is_refused(bench: Bench, pki: Pki) -> None:
    config = make_config(
        security_policy="Basic256Sha256",
        allow_insecure=False,
        certificate=str(pki.client_cert),
        private_key=str(pki.client_key),
        server_certificate=str(pki.stranger_cert),
    )
    rig = await bench.rig(
        config, certificate=pki.server_cert, private_key=pki.server_key, connect=False
    )
    with pytest.raises(DeviceRejected, match="not the pinned server_certificate"):
        await rig.driver.connect()
    assert rig.driver.diagnostics()["connected"] is False


async def test_missing_client_certificate_file_is_reported(bench: Bench, pki: Pki) -> None:
    config = make_config(
        security_policy="Basic256Sha256",
        allow_insecure=False,
        certificate=str(pki.client_cert.with_name("missing.der")),
        private_key=str(pki.client_key),
    )
    rig = await bench.rig(
        config, certificate=pki.server_cert, private_key=pki.server_key, connect=False
    )
    with pytest.raises(DriverError, match=r"missing\.der"):
        await rig.driver.connect()


async def test_dropped_job_reply_times_out_and_the_dead_link_is_seen(bench: Bench) -> None:
    rig = await bench.rig()
    run = rig.run()
    rig.sim.faults.set(drop=1.0)
    with pytest.raises(DeviceUnavailable, match=r"no answer within 0\.5 s"):
        await rig.driver.start_job("J-T", {})
    # The request may have reached the machine: its completion would still be reported.
    assert rig.driver.active_job == "J-T"
    # The machine's request loop is stuck on the call: no publish, no keep-alive.
    await raises_unavailable(run)
    rig.sim.faults.set(drop=0.0)
    await rig.sim.disconnect()  # releases the stuck call
    await rig.driver.close()
    await rig.driver.connect()
    await rig.driver.start_job("J-T2", {})
    rig.run()
    assert (await rig.events.finished("J-T2")).good == 1


async def test_slow_reply_within_the_timeout_is_fine(bench: Bench) -> None:
    rig = await bench.rig()
    rig.sim.faults.set(delay_s=0.1)
    await rig.driver.start_job("J-D", {})
    assert rig.sim.jobs[-1][0] == "J-D"


async def test_garbled_reply_is_a_protocol_error(bench: Bench) -> None:
    rig = await bench.rig()
    rig.sim.faults.set(garble=1.0)
    with pytest.raises(ProtocolError, match="expected an integer return status"):
        await rig.driver.start_job("J-G", {})
    assert "J-G" in str(rig.driver.diagnostics()["last_error"])


async def test_machine_refuses_jobs(bench: Bench) -> None:
    rig = await bench.rig()
    # Local mode: the machine answers with a non-zero return status.
    rig.sim.local_mode = True
    with pytest.raises(DeviceRejected, match=f"return status {LOCAL_MODE_REFUSAL}"):
        await rig.driver.start_job("J-L", {})
    rig.sim.local_mode = False
    # Busy: run() is not consuming, so the driver still believes IDLE and asks the machine,
    # which answers BadInvalidState.
    await rig.driver.start_job("J-1", {})
    with pytest.raises(DeviceRejected, match="BadInvalidState"):
        await rig.driver.start_job("J-2", {})
    assert rig.driver.diagnostics()["jobs_refused"] == 2
    assert [job for job, _ in rig.sim.jobs] == ["J-1"]


async def test_fault_holds_the_job_and_reset_resumes_it(bench: Bench) -> None:
    rig = await bench.rig(cycle_s=0.3)
    rig.run()
    await rig.driver.start_job("J-F", {})
    await rig.events.status("EXECUTE")
    await rig.sim.fault("film jam at the feeder")
    held = await rig.events.status("HELD")
    assert held.faulted and held.fault == "film jam at the feeder" and held.job_id == "J-F"
    # A held machine takes no job: refused without asking it.
    with pytest.raises(DeviceRejected, match="machine is HELD"):
        await rig.driver.start_job("J-X", {})
    await rig.driver.reset()
    finished = await rig.events.finished("J-F")
    assert finished.good == 1
    resumed = [e for e in rig.events.events if isinstance(e, MachineStatus)]
    assert any(e.previous == "HELD" and not e.faulted for e in resumed)
    assert resumed[-1].fault is None


async def test_reset_ends_complete(bench: Bench) -> None:
    rig = await bench.rig(complete_hold_s=30.0)  # a machine that waits for its Reset
    rig.run()
    await rig.driver.start_job("J-C", {})
    await rig.events.finished("J-C")
    assert rig.sim.state == PackMLState.COMPLETE
    with pytest.raises(DeviceRejected, match="machine is COMPLETE"):
        await rig.driver.start_job("J-C2", {})
    await rig.driver.reset()
    await rig.events.wait_for(lambda e: isinstance(e, MachineStatus) and e.previous == "RESETTING")
    await rig.driver.start_job("J-C2", {})


async def test_reset_without_a_command_is_refused(bench: Bench) -> None:
    rig = await bench.rig(make_config(reset=None))
    with pytest.raises(DeviceRejected, match="no reset command"):
        await rig.driver.reset()


async def test_server_restarted_mid_job_and_the_subscription_restored(bench: Bench) -> None:
    config = make_config(nodes={**BASE["nodes"], "completed_job_id": "Machine/Job/LastCompleted"})
    rig = await bench.rig(config, cycle_s=0.4, complete_hold_s=0.05)
    run = rig.run()
    await rig.driver.start_job("J-R", {"text": "x"})
    await rig.events.status("EXECUTE")
    port = rig.sim.port
    await rig.sim.stop()
    await raises_unavailable(run)
    await rig.driver.close()
    with pytest.raises(DeviceUnavailable):
        await rig.driver.connect()  # nothing listens now
    # The machine finishes the job while its server is down, and is back in IDLE.
    async with asyncio.timeout(5):
        await rig.sim.wait_for_state(PackMLState.IDLE)
    await rig.sim.start()
    assert rig.sim.port == port
    await rig.driver.connect()
    # The values read at connect show the completed job.
    assert await rig.events.finished("J-R") == JobFinished("J-R", good=1, bad=0)
    assert rig.driver.status is not None and rig.driver.status.good == 1
    # The subscription works again: the next job is followed live.
    rig.run()
    await rig.driver.start_job("J-R2", {})
    await rig.events.status("EXECUTE")
    assert (await rig.events.finished("J-R2")).good == 1
    assert rig.driver.diagnostics()["connects"] == 2


async def test_held_job_is_seen_after_a_disconnect(bench: Bench) -> None:
    rig = await bench.rig(cycle_s=0.3)
    run = rig.run()
    await rig.driver.start_job("J-H", {})
    await rig.events.status("EXECUTE")
    await rig.sim.disconnect()
    message = await raises_unavailable(run)
    assert "BadShutdown" in message or "connection lost" in message
    await rig.sim.fault("door open")  # while the gateway is away
    await rig.driver.close()
    await rig.driver.connect()
    held = await rig.events.status("HELD")
    assert held.fault == "door open" and held.job_id == "J-H"
    rig.run()
    await rig.sim.clear_fault()
    assert (await rig.events.finished("J-H")).good == 1


async def test_unknown_state_codes_are_counted_not_fatal(bench: Bench) -> None:
    # The driver's map says IDLE is 40; the machine reports the TR88 code 4.
    driver_states = {"IDLE": 40, "EXECUTE": 6, "COMPLETE": 17}
    rig = await bench.rig(driver_config={"states": driver_states})
    assert rig.driver.status is not None and rig.driver.status.state == UNKNOWN_STATE
    diagnostics = rig.driver.diagnostics()
    assert diagnostics["unknown_states"] == 1
    assert diagnostics["last_unknown_state_code"] == "4"
    # UNKNOWN is not a reason to refuse: the machine decides.
    await rig.driver.start_job("J-U", {})


async def test_writes_job_and_a_start_command(bench: Bench) -> None:
    config = make_config(job=WRITES_JOB, reset={"node": "Machine/Reset", "value": True})
    rig = await bench.rig(config)
    rig.run()
    await rig.driver.start_job("J-W", {"text": "Ünïcødé", "font": "mono", "unused": "1"})
    assert rig.sim.jobs == [("J-W", {"text": "Ünïcødé", "font": "mono"})]
    assert (await rig.events.finished("J-W")).good == 1
    # Parameters left out are cleared, not carried over from the last job.
    await rig.events.status("IDLE")
    await rig.events.wait_for(lambda e: isinstance(e, MachineStatus) and e.previous == "RESETTING")
    await rig.driver.start_job("J-W2", {"text": "B"})
    assert rig.sim.jobs[-1] == ("J-W2", {"text": "B", "font": ""})
    # A refused start write comes back as a Bad status.
    rig.sim.local_mode = True
    await rig.events.finished("J-W2")
    await rig.events.wait_for(
        lambda e: isinstance(e, MachineStatus) and e.previous == "RESETTING" and e.job_id == "J-W2"
    )
    with pytest.raises(DeviceRejected, match="BadUserAccessDenied"):
        await rig.driver.start_job("J-W3", {})
    rig.sim.local_mode = False
    rig.sim.faults.set(garble=1.0)
    with pytest.raises(ProtocolError, match="BadDecodingError"):
        await rig.driver.start_job("J-W4", {})


async def test_explicit_node_ids(bench: Bench) -> None:
    config = make_config(
        nodes={
            **BASE["nodes"],
            "state": f"nsu={NAMESPACE};s=Engraver.StateCurrent",
            "good_count": "ns=2;s=Engraver.Good",
        },
        job={"mode": "method", "method": "ns=2;s=Engraver.StartJob", "object": "Machine"},
    )
    rig = await bench.rig(config)
    assert rig.driver.status == MachineStatus("IDLE", None, 0, 0, None, None)
    rig.run()
    await rig.driver.start_job("J-E", {})
    assert (await rig.events.finished("J-E")).good == 1


async def test_node_map_mismatch_is_refused(bench: Bench) -> None:
    rig = await bench.rig(
        connect=False, driver_config={"nodes": {**BASE["nodes"], "job_id": "Machine/Job/Nope"}}
    )
    with pytest.raises(DeviceRejected, match="'Machine/Job/Nope' is not on the machine"):
        await rig.driver.connect()
    rig = await bench.rig(connect=False, driver_config={"namespace_uri": "urn:other"})
    with pytest.raises(DeviceRejected, match="namespace 'urn:other' is not on the machine"):
        await rig.driver.connect()


async def test_connect_to_nothing_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = OpcUaMachine(
        "test/none", make_config(url=f"opc.tcp://127.0.0.1:{port}/"), lambda event: None
    )
    with pytest.raises(DeviceUnavailable):
        await driver.connect()
    await driver.close()


async def test_close_is_idempotent_and_commands_need_a_link(bench: Bench) -> None:
    rig = await bench.rig(connect=False)
    await rig.driver.close()  # never connected
    with pytest.raises(DeviceUnavailable, match="not connected"):
        await rig.driver.start_job("J", {})
    with pytest.raises(DeviceUnavailable, match="not connected"):
        await rig.driver.run()
    await rig.driver.connect()
    await rig.driver.close()
    await rig.driver.close()
    assert rig.driver.diagnostics()["connected"] is False
    # The status read before is kept for `linegate devices`.
    assert rig.driver.status is not None
    await rig.driver.connect()  # and a closed driver connects again
    assert rig.driver.diagnostics()["connects"] == 2


def test_tracker_adopts_a_job_the_gateway_downloaded_before_it_restarted() -> None:
    tracker = MachineTracker(TR88)
    tracker.adopt("J-7")
    # The first values after the restart: the machine still runs the job.
    assert not any(
        isinstance(e, JobFinished)
        for e in tracker.update({"state": 6, "good_count": 9, "bad_count": 0, "job_id": "J-7"})
    )
    assert tracker.active_job == "J-7"
    events = tracker.update({"state": 17, "good_count": 10})
    assert events[-1] == JobFinished("J-7", good=1, bad=0)


def test_an_adopted_job_found_complete_is_finished_and_found_idle_is_not() -> None:
    complete = MachineTracker(TR88)
    complete.adopt("J-8")
    events = complete.update({"state": 17, "good_count": 3, "bad_count": 0, "job_id": "J-8"})
    assert events[-1] == JobFinished("J-8", good=0, bad=0)
    # Back in IDLE with the job's id: finished, or aborted and reset? Not said.
    idle = MachineTracker(TR88)
    idle.adopt("J-9")
    events = idle.update({"state": 4, "good_count": 3, "bad_count": 0, "job_id": "J-9"})
    assert not any(isinstance(e, JobFinished) for e in events)
    assert idle.active_job == "J-9"
