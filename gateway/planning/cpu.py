"""The solver's worker under a CPU quota: how much the quota allows, and a pacer that keeps
the worker to its share of it.

SCHED_IDLE (gateway/planning/worker_child.py) lets the gateway's loop preempt the solver
whenever it wants a core. Under a CPU quota (a container's CPU limit, systemd's
``CPUQuota=``) that is not enough: the worker's idle-priority CPU time is spent from the
same quota as the gateway's, and once the quota of a period is spent the kernel stops the
whole group, the gateway's loop included, until the next period. So the worker is paced:
stopped (SIGSTOP) and continued (SIGCONT) in short turns so that it uses at most what the
gateway leaves of the quota (its own CPU use measured as it goes, plus a margin for
bursts, ``[planner] api_reserve_cores``). Without a quota nothing is paced.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["CpuRate", "Pacer", "quota_cores", "search_threads"]

# One on/off turn of the pacer: short against the kernel's quota period (100 ms by default),
# so the worker's use is spread over every period rather than spent at its start.
_TURN_S = 0.05
# The least a paced worker runs: enough for a plan in the end.
MIN_FRACTION = 0.1


def search_threads(configured: int, cpus: int | None = None) -> int:
    """CP-SAT's search threads: ``[planner] workers``, but at most one fewer than the cores
    this process may run on, and at least one (one on a 2-core box, two of four on a
    Raspberry Pi 5 with the default ``workers = 2``).

    SCHED_IDLE already lets the gateway preempt the solver; the cap also leaves a core's
    worth of CPU time the solver cannot use, which the priority alone does not where the
    CPU is rationed: a CPU quota on the service (systemd's CPUQuota=, a container's limit)
    is shared by the gateway and its worker, every solver thread spends it, and once it is
    spent the whole service waits for the next period, the gateway's loop included. (Even
    one thread spends too much of a 1.2-core quota for the station API's target:
    BENCHMARKS.md.) ``cpus`` is the process's CPU affinity (taskset, systemd's
    CPUAffinity=); the quota itself is not read.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, min(configured, cpus - 1))


def quota_cores(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """The CPU time this process's cgroup (or an ancestor) may use, in cores; None when
    there is no quota. cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    found: list[float] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy for every controller
            found += _walk(root, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                if mount.is_dir():
                    found += _walk(mount, path, _v1_quota)
                    break
    return min(found) if found else None


def _walk(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas from the cgroup at ``path`` up to the root of ``mount``."""
    out: list[float] = []
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        quota = read(mount.joinpath(*parts[:depth]))
        if quota is not None:
            out.append(quota)
    return out


def _v2_quota(folder: Path) -> float | None:
    try:
        limit, period = (folder / "cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) / int(period)


def _v1_quota(folder: Path) -> float | None:
    try:
        limit = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if limit < 0 else limit / period


class CpuRate:
    """This process's own CPU use, in cores, over the last second or so: what the gateway
    (its loop, the station API, the store) is spending now."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self._clock, self._cpu = clock, cpu
        self._at = (clock(), cpu())
        self.cores = 0.0

    def sample(self) -> float:
        now, cpu = self._clock(), self._cpu()
        elapsed = now - self._at[0]
        if elapsed >= 0.2:
            recent = (cpu - self._at[1]) / elapsed
            # Smoothed, but rising at once: a burst of scans gets its CPU back right away.
            self.cores = max(recent, 0.7 * self.cores + 0.3 * recent)
            self._at = (now, cpu)
        return self.cores


class Pacer:
    """Keeps a process of ``threads`` busy threads to ``budget()`` cores' worth of CPU
    time, by running it that share of each turn of ``_TURN_S`` (see the module docstring);
    the budget is asked again every turn. Leaves the process running when it stops."""

    def __init__(self, pid: int, threads: int, budget: Callable[[], float]) -> None:
        self.pid = pid
        self.threads = max(1, threads)
        self.budget = budget
        self._task: asyncio.Task[None] | None = None

    def fraction(self) -> float:
        """The share of this turn the process runs."""
        return min(1.0, max(MIN_FRACTION, self.budget() / self.threads))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pace(), name="pacer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _pace(self) -> None:
        try:
            while True:
                fraction = self.fraction()
                if fraction >= 1.0:
                    await asyncio.sleep(_TURN_S)
                    continue
                await asyncio.sleep(fraction * _TURN_S)
                self._signal(signal.SIGSTOP)
                await asyncio.sleep((1.0 - fraction) * _TURN_S)
                self._signal(signal.SIGCONT)
        finally:
            self._signal(signal.SIGCONT)  # never leave it stopped: it must finish or die

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
