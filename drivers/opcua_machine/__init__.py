"""OPC UA machine (asyncua client): PackML state by name, counters, fault reason, job
download by method call or by writes plus a start command."""

from drivers.opcua_machine.config import Command, MethodJob, NodeMap, OpcUaMachineConfig, WritesJob
from drivers.opcua_machine.driver import EventSink, OpcUaMachine
from drivers.opcua_machine.events import JobFinished, MachineEvent, MachineStatus
from drivers.opcua_machine.packml import UNKNOWN_STATE, PackMLState

__all__ = [
    "UNKNOWN_STATE",
    "Command",
    "EventSink",
    "JobFinished",
    "MachineEvent",
    "MachineStatus",
    "MethodJob",
    "NodeMap",
    "OpcUaMachine",
    "OpcUaMachineConfig",
    "PackMLState",
    "WritesJob",
]
