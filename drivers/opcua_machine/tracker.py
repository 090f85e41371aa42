"""Turn a machine's tag values into status changes and finished jobs (no I/O here).

The driver feeds in values as they arrive (all of them after a connect, one at a time from
the subscription); the tracker decodes them, keeps the last good value of each tag, and
says what changed.

A job counts as finished when the machine shows it finished *that* job:

* its ``completed_job_id`` tag names the job (robust: it survives an outage during which
  the machine went COMPLETE and back to IDLE);
* it is in state COMPLETE with ``job_id`` naming the job, the way PackML machines report
  the end of a production run;
* it is back in RESETTING or IDLE with ``job_id`` naming the job and its counters moved
  since the download: a COMPLETE shorter than the publishing interval is not seen when
  the monitored items keep only the latest value, as PLC servers do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from drivers.opcua_machine.events import JobFinished, MachineEvent, MachineStatus
from drivers.opcua_machine.packml import (
    UNKNOWN_STATE,
    PackMLState,
    decode_count,
    decode_state,
    decode_text,
)

__all__ = ["TAGS", "MachineTracker"]

_BACK_TO_READY = frozenset({PackMLState.RESETTING, PackMLState.IDLE})

# The tags of the node map the driver monitors, by their config key.
TAGS = ("state", "good_count", "bad_count", "stop_reason", "job_id", "completed_job_id")


@dataclass(slots=True)
class _ActiveJob:
    job_id: str
    good_at_start: int
    bad_at_start: int


def _produced(now: int, at_start: int) -> int:
    # A counter below its value at the download was reset on the machine (a new shift, a
    # power cycle without retained counters): everything it counts now is from this job.
    return now - at_start if now >= at_start else now


class MachineTracker:
    """Decoded tag values, the last status, and the job the driver downloaded."""

    def __init__(self, state_by_code: Mapping[int | str, str]) -> None:
        self._state_by_code = dict(state_by_code)
        self._state = UNKNOWN_STATE
        self._good = 0
        self._bad = 0
        self._fault: str | None = None
        self._job_id: str | None = None
        self._completed_job_id: str | None = None
        self._active: _ActiveJob | None = None
        self._adopted: str | None = None  # waiting for the first values to count from
        self.status: MachineStatus | None = None
        # Diagnostics.
        self.unknown_states = 0
        self.last_unknown_code: object = None
        self.bad_values = 0
        self.last_bad_value: str | None = None

    @property
    def active_job(self) -> str | None:
        """The job downloaded by this driver and not yet seen finished."""
        return self._active.job_id if self._active is not None else None

    def job_started(self, job_id: str) -> None:
        """Track a job from its download on; its parts are counted from the counters now."""
        self._active = _ActiveJob(job_id, self._good, self._bad)

    def adopt(self, job_id: str) -> None:
        """Track a job downloaded before this tracker existed (the gateway restarted while
        the machine ran it). Its parts are counted from the first values read, so a job
        seen back in IDLE cannot be told from an aborted one and is not reported: only
        COMPLETE, or ``completed_job_id`` naming it, finishes it."""
        self._adopted = job_id

    def job_abandoned(self, job_id: str) -> None:
        """Stop tracking a job whose download failed."""
        if self._active is not None and self._active.job_id == job_id:
            self._active = None

    def update(self, values: Mapping[str, object]) -> list[MachineEvent]:
        """Apply new raw values (by tag name) and return what the gateway must hear."""
        for tag, raw in values.items():
            self._apply(tag, raw)
        events: list[MachineEvent] = []
        previous = self.status
        status = MachineStatus(
            state=self._state,
            previous=previous.state if previous is not None else None,
            good=self._good,
            bad=self._bad,
            fault=self._fault,
            job_id=self._job_id,
        )
        if previous is None or not status.same_reading(previous):
            self.status = status
            events.append(status)
        if self._adopted is not None and self._active is None:
            self._active = _ActiveJob(self._adopted, self._good, self._bad)
        self._adopted = None
        if (finished := self._finished_job()) is not None:
            events.append(finished)
        return events

    def _finished_job(self) -> JobFinished | None:
        active = self._active
        if active is None:
            return None
        counted = (self._good, self._bad) != (active.good_at_start, active.bad_at_start)
        done = self._completed_job_id == active.job_id or (
            self._job_id == active.job_id
            and (self._state == PackMLState.COMPLETE or (self._state in _BACK_TO_READY and counted))
        )
        if not done:
            return None
        self._active = None
        return JobFinished(
            job_id=active.job_id,
            good=_produced(self._good, active.good_at_start),
            bad=_produced(self._bad, active.bad_at_start),
        )

    def _apply(self, tag: str, raw: object) -> None:
        try:
            if tag == "state":
                self._state = decode_state(raw, self._state_by_code)
                if self._state == UNKNOWN_STATE:
                    self.unknown_states += 1
                    self.last_unknown_code = raw
            elif tag == "good_count":
                self._good = decode_count(raw)
            elif tag == "bad_count":
                self._bad = decode_count(raw)
            elif tag == "stop_reason":
                self._fault = decode_text(raw)
            elif tag == "job_id":
                self._job_id = decode_text(raw)
            elif tag == "completed_job_id":
                self._completed_job_id = decode_text(raw)
            else:
                raise KeyError(f"unknown tag {tag!r}")
        except ValueError as exc:
            # Keep the last good value: one odd reading must not zero a counter.
            self.bad_values += 1
            self.last_bad_value = f"{tag}: {exc}"
