"""What an OPC UA machine tells the gateway: its status on every change, and finished jobs."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.opcua_machine.packml import FAULT_STATES

__all__ = ["JobFinished", "MachineEvent", "MachineStatus"]


@dataclass(frozen=True, slots=True)
class MachineStatus:
    """The machine as last read: sent on every change of state, counters, fault or job.

    ``state`` is a PackML state name, or "UNKNOWN" for a code the config does not map;
    ``previous`` is the state in the status sent before this one (None for the first; equal
    to ``state`` when only counters, fault or job changed). ``good`` and ``bad`` are the
    machine's own cumulative counters, ``fault`` its stop/fault reason, ``job_id`` the job
    it runs or last ran.
    """

    state: str
    previous: str | None
    good: int
    bad: int
    fault: str | None
    job_id: str | None

    @property
    def faulted(self) -> bool:
        """Held or aborted: the task on this machine is held and an alarm is due."""
        return self.state in FAULT_STATES

    def same_reading(self, other: MachineStatus) -> bool:
        """Whether both say the same about the machine (``previous`` aside)."""
        return (self.state, self.good, self.bad, self.fault, self.job_id) == (
            other.state,
            other.good,
            other.bad,
            other.fault,
            other.job_id,
        )


@dataclass(frozen=True, slots=True)
class JobFinished:
    """The machine completed a job this driver downloaded; ``good``/``bad`` are the parts it
    counted for that job (counter increase since the download)."""

    job_id: str
    good: int
    bad: int


MachineEvent = MachineStatus | JobFinished
