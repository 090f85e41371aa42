"""OPC UA machine (asyncua client): PackML state by name, counters, fault reason, job
download by method call or by writes plus a start command.

The config, events and PackML names import nothing heavy; the driver pulls in asyncua
(~40 MiB), so it is loaded on first use: checking a config, or running a line without
OPC UA machines, does not pay for it.
"""

from typing import TYPE_CHECKING, Any

from drivers.opcua_machine.config import Command, MethodJob, NodeMap, OpcUaMachineConfig, WritesJob
from drivers.opcua_machine.events import JobFinished, MachineEvent, MachineStatus
from drivers.opcua_machine.packml import UNKNOWN_STATE, PackMLState

if TYPE_CHECKING:
    from drivers.opcua_machine.driver import EventSink, OpcUaMachine

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

_LAZY = {"EventSink", "OpcUaMachine"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from drivers.opcua_machine import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
