"""Machines in the flow of work: a task's start downloads its job, the machine's completion
completes the task, and a machine fault holds the task and raises an alarm.

A machine's reported PackML state replaces the state the gateway otherwise synthesises
from the station's tasks; every change is a ``machine.state`` event. When the machine is
offline the station keeps working by hand: the job is run from the machine's own panel and
the operator completes the task on the screen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from drivers.base import DeviceRejected, DriverError
from drivers.opcua_machine import JobFinished, MachineEvent, MachineStatus
from gateway.desk.replies import Refused
from gateway.desk.screen import MACHINE_FAULT
from gateway.desk.service import StationService
from gateway.floor.devices import Devices
from gateway.i18n import Text, t
from gateway.orderbook import station_state, tasks
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.store.rows import Severity, TaskRow, TaskStatus

if TYPE_CHECKING:
    from drivers.opcua_machine.driver import OpcUaMachine

__all__ = ["FAULT_STATES", "Machines", "job_id_of"]

logger = logging.getLogger(__name__)

# PackML states in which a machine has stopped working on its job (a task running there
# is held; HELD, HOLDING, ABORTED and ABORTING are faults even with no task).
FAULT_STATES = frozenset({"HELD", "HOLDING", "ABORTED", "ABORTING", "STOPPED", "STOPPING"})
# Telemetry while the hub is away: once the events waiting for it pass this share of the
# outbox budget, a machine's state changes are reported at most once a minute (a fault
# always is); the next event says how many changes it stands for ("downsampled"). Order
# and traceability events are never thinned.
TELEMETRY_SHARE = 0.5
TELEMETRY_MIN_INTERVAL_S = 60.0
# States a PackML machine leaves only on a Reset command.
_NEEDS_RESET = frozenset({"COMPLETE", "STOPPED"})
# How long a machine may take to be ready for the next job before it is asked anyway.
_READY_WAIT_S = 10.0
# Prefix of the pause reason the gateway writes, so it knows which pauses it may lift (the
# station screen says it in the operator's language).
_FAULT_PAUSE = MACHINE_FAULT


def job_id_of(task: TaskRow) -> str:
    """The job id sent to the machine: the task and its attempt, so a rework is a new job."""
    return f"T{task.task_id}-{task.attempt}"


def _fault_alarm(machine: str) -> str:
    return f"machine:{machine}:fault"


class Machines:
    """Connects the station service and the machine drivers."""

    def __init__(self, core: LineContext, stations: StationService, devices: Devices) -> None:
        self.core = core
        self.stations = stations
        self.devices = devices
        self._jobs: set[asyncio.Task[None]] = set()
        # A status waiting for the rest of its batch of tag changes, by station.
        self._pending: dict[str, MachineStatus] = {}
        self._reported: dict[str, float] = {}  # station → when its last machine.state went
        self._skipped: dict[str, int] = {}  # station → state changes not reported since
        core.subscribe("task.started", self._task_started)
        core.subscribe("task.resumed", self._task_started)

    def adopt_jobs(self) -> None:
        """Before the machines connect: the jobs they were given before a restart of the
        gateway, so that their completion still completes the task."""
        for station in self.devices.stations:
            machine = self.machine(station)
            current = self.stations.current(station) if machine is not None else None
            if machine is None or current is None:
                continue
            progress = current.progress()
            if progress.machine_job == job_id_of(current) and not progress.machine_done:
                machine.adopt_job(progress.machine_job)
                logger.info("station %s: waiting for job %s again", station, progress.machine_job)

    def machine(self, station: str) -> OpcUaMachine | None:
        devs = self.devices.stations.get(station)
        return devs.machine if devs is not None else None

    # -- job download -------------------------------------------------------------------

    def _task_started(self, data: dict[str, Any]) -> None:
        station = data.get("station")
        if not isinstance(station, str) or self.machine(station) is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no devices run outside the gateway's loop (a test of the service alone)
        job = loop.create_task(self._download(station, int(data["task_id"])))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _download(self, station: str, task_id: int) -> None:
        machine = self.machine(station)
        assert machine is not None
        task = tasks.get(self.core, task_id)
        job_id = job_id_of(task)
        if task.progress().machine_job == job_id or task.status is not TaskStatus.RUNNING:
            return  # resumed after a fault: the machine still holds the job
        if not self.devices.ready(machine):
            logger.info(
                "station %s: machine offline, %s runs from the machine's panel", station, job_id
            )
            return
        params = self._params(task)
        try:
            await self._until_ready(machine)
            await machine.start_job(job_id, params)
        except DeviceRejected as exc:
            why = t("the machine refused job {job_id}: {error}", job_id=job_id, error=str(exc))
            self._hold(station, task_id, why)
            return
        except (DriverError, TimeoutError, OSError) as exc:
            logger.warning("station %s: job %s not downloaded: %s", station, job_id, exc)
            return
        with self.core.store.transaction():
            progress = tasks.get(self.core, task_id).progress()
            progress.machine_job = job_id
            tasks.save_progress(self.core, task_id, progress)

    async def _until_ready(self, machine: OpcUaMachine) -> None:
        """Give a machine that just finished a job the time to get ready for the next.

        After COMPLETE (or STOPPED) a PackML machine needs a Reset before it takes a job;
        one with a reset command configured gets it, others return to IDLE themselves.
        A machine that is still not ready after _READY_WAIT_S is asked anyway, and its
        refusal holds the task.
        """
        ready = set(machine.config.job.ready_states)
        reset_sent = False
        deadline = asyncio.get_running_loop().time() + _READY_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            state = machine.status.state if machine.status is not None else None
            if state in ready:
                return
            if state in _NEEDS_RESET and not reset_sent and machine.config.reset is not None:
                reset_sent = True
                try:
                    await machine.reset()
                except DeviceRejected as exc:
                    # It may be resetting itself already; the wait below tells.
                    logger.debug("%s: reset refused: %s", machine.name, exc)
            await asyncio.sleep(0.05)

    def _params(self, task: TaskRow) -> dict[str, str]:
        """The operation's personalisation parameters, by the names the routing gives."""
        wo = tasks.work_order(self.core, task.wo_id) if task.wo_id is not None else None
        values = wo.personalization() if wo is not None else {}
        names = tasks.operation(self.core, task).params
        params = {name: str(values[name]) for name in names if name in values}
        params["serial"] = task.serial or ""
        params["order_id"] = task.order_id
        return params

    # -- what the machine reports ----------------------------------------------------------

    def on_event(self, station: str, event: MachineEvent) -> None:
        """Driver callback (on the loop, must not block or raise)."""
        try:
            if isinstance(event, MachineStatus):
                self._hold_status(station, event)
            elif isinstance(event, JobFinished):
                self._flush_status(station)
                self._finished(station, event)
        except Exception:
            logger.exception("station %s: machine event %r not handled", station, event)

    def _hold_status(self, station: str, status: MachineStatus) -> None:
        """Act on a status once the tag changes that came with it are in.

        The driver reports each tag change as it arrives, so a fault's state may come a
        notification before its stop reason: a status is held until the loop's next turn,
        replaced meanwhile by later statuses of the same state (a new state flushes it).
        """
        pending = self._pending.get(station)
        self._pending[station] = status
        if pending is not None:
            # Its flush is due already; a state of its own is acted on now, not dropped.
            if pending.state != status.state:
                self._status(station, pending)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_status(station)
            return
        loop.call_soon(self._flush_status_safely, station)

    def _flush_status(self, station: str) -> None:
        status = self._pending.pop(station, None)
        if status is not None:
            self._status(station, status)

    def _flush_status_safely(self, station: str) -> None:
        try:
            self._flush_status(station)
        except Exception:
            logger.exception("station %s: machine status not handled", station)

    def _thinned(self, station: str, state: str) -> bool:
        """Whether this state change goes unreported (see TELEMETRY_SHARE)."""
        if state in FAULT_STATES:
            return False
        budget = self.core.config.policies.outbox_budget_mib * 1024 * 1024
        if self.core.outbox.size_bytes < TELEMETRY_SHARE * budget:
            return False
        last = self._reported.get(station)
        return last is not None and time.monotonic() - last < TELEMETRY_MIN_INTERVAL_S

    def _status(self, station: str, status: MachineStatus) -> None:
        core = self.core
        cfg = core.config.stations[station]
        machine_id = cfg.machine_id or station
        previous = station_state.state_of(core, station)
        current = self.stations.current(station)
        with core.store.transaction():
            if previous != status.state:
                station_state.record(core, station, status.state, status.fault, synthesised=False)
                if self._thinned(station, status.state):
                    self._skipped[station] = self._skipped.get(station, 0) + 1
                else:
                    data: dict[str, Any] = {
                        "machine": machine_id,
                        "station": station,
                        "state": status.state,
                        "previous": previous,
                        "reason": status.fault,
                        "good": status.good,
                        "bad": status.bad,
                        "job_id": status.job_id,
                        "synthesised": False,
                    }
                    if skipped := self._skipped.pop(station, 0):
                        data["downsampled"] = skipped
                    core.emit("machine.state", data)
                    self._reported[station] = time.monotonic()
            running = current is not None and current.status is TaskStatus.RUNNING
            if status.state in FAULT_STATES:
                # A machine sitting STOPPED between jobs is normal (many power up so); a
                # fault, or a stop in the middle of a job, is not.
                if not (status.faulted or running):
                    return
                why = status.fault or status.state.lower()
                raise_alarm(
                    core,
                    _fault_alarm(machine_id),
                    "machine_fault",
                    machine_id,
                    Severity.MAJOR,
                    t(
                        "{machine} is {state}: {why}",
                        machine=machine_id,
                        state=status.state,
                        why=why,
                    ),
                )
                if running:
                    assert current is not None
                    self.stations.pause_task(current, _FAULT_PAUSE + why)
            else:
                cleared = clear_alarm(
                    core, _fault_alarm(machine_id), f"{machine_id} is {status.state} again"
                )
                if (
                    cleared
                    and current is not None
                    and current.status is TaskStatus.PAUSED
                    and (current.progress().pause_reason or "").startswith(_FAULT_PAUSE)
                ):
                    self.stations.resume_task(current, "machine fault cleared")

    def _finished(self, station: str, done: JobFinished) -> None:
        current = self.stations.current(station)
        if current is None or job_id_of(current) != done.job_id:
            logger.warning(
                "station %s: machine finished job %s, which is not the task in work",
                station,
                done.job_id,
            )
            return
        progress = current.progress()
        progress.machine_done = True
        with self.core.store.transaction():
            tasks.save_progress(self.core, current.task_id, progress)
        if current.status is not TaskStatus.RUNNING:
            return
        try:
            self.stations.complete(station)
        except Refused as exc:
            # A checklist or weight check is still open: the operator completes it.
            logger.debug("station %s: job %s done; %s", station, done.job_id, exc.message)

    def _hold(self, station: str, task_id: int, why: Text) -> None:
        core = self.core
        cfg = core.config.stations[station]
        machine_id = cfg.machine_id or station
        with core.store.transaction():
            task = tasks.get(core, task_id)
            raise_alarm(
                core, _fault_alarm(machine_id), "machine_fault", machine_id, Severity.MAJOR, why
            )
            if task.status is TaskStatus.RUNNING:
                self.stations.pause_task(task, _FAULT_PAUSE + str(why))

    async def close(self) -> None:
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
