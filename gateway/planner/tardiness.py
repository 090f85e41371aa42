"""Single-machine total weighted tardiness (1 || sum w_j T_j) with CP-SAT.

Model: one fixed-size interval per job on one ``add_no_overlap``, integer starts within
``[0, P - p_j]`` where P is the total work (the objective is regular, so an optimal schedule
has no idle time and ends at P), ``T_j >= end_j - d_j``, ``T_j >= 0``, minimise
``sum w_j T_j``. On its own the solver's first schedules are poor and its bound is weak, so:

- precedences from dominance rules cut symmetric and dominated orders: job i goes before
  job j when ``p_i <= p_j``, ``w_i >= w_j`` and ``d_i <= d_j`` (Pinedo, *Scheduling*, Lemma
  3.6.1; identical jobs ordered by index), and a job that cannot be late even when last
  (``d_j >= P``) goes after every job that can;
- the hint is the best of EDD, WSPT and ATC (apparent tardiness cost) sequences, improved by
  pairwise interchange and insertion until neither helps (a local optimum).

Imports ortools: only the planner's worker process may import this module.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from gateway.planner.instances import WeightedTardiness

# Look-ahead parameters tried for ATC; the best sequence of all of them is kept.
_ATC_K = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class TardinessResult:
    status: str  # OPTIMAL, FEASIBLE, or HEURISTIC (the solver improved nothing in time)
    objective: int  # total weighted tardiness of ``sequence``
    bound: int  # proven lower bound on the optimum
    sequence: list[int]  # job indices in processing order
    starts: list[int]  # start time of each job, by job index
    wall_s: float
    heuristic_objective: int  # of the hint, before the solver


def sequence_cost(instance: WeightedTardiness, sequence: Sequence[int]) -> int:
    """Total weighted tardiness of processing ``sequence`` back to back from time 0."""
    t = cost = 0
    for j in sequence:
        t += instance.processing[j]
        cost += instance.weights[j] * max(0, t - instance.due[j])
    return cost


def check_starts(instance: WeightedTardiness, starts: Sequence[int]) -> int:
    """Return the total weighted tardiness of ``starts``; raise ValueError if infeasible."""
    if len(starts) != instance.n:
        raise ValueError(f"{len(starts)} starts for {instance.n} jobs")
    if any(s < 0 for s in starts):
        raise ValueError("a job starts before time 0")
    order = sorted(range(instance.n), key=lambda j: starts[j])
    for a, b in itertools.pairwise(order):
        if starts[b] < starts[a] + instance.processing[a]:
            raise ValueError(f"jobs {a} and {b} overlap")
    return sum(
        w * max(0, s + p - d)
        for s, p, w, d in zip(
            starts, instance.processing, instance.weights, instance.due, strict=True
        )
    )


def _starts_of(instance: WeightedTardiness, sequence: Sequence[int]) -> list[int]:
    starts = [0] * instance.n
    t = 0
    for j in sequence:
        starts[j] = t
        t += instance.processing[j]
    return starts


def atc_sequence(instance: WeightedTardiness, k: float) -> list[int]:
    """Apparent tardiness cost dispatching with look-ahead ``k`` (Vepsalainen & Morton)."""
    p, w, d = instance.processing, instance.weights, instance.due
    p_mean = sum(p) / max(1, instance.n)
    left = set(range(instance.n))
    t = 0
    out: list[int] = []
    while left:
        scores = {
            j: (w[j] / p[j] * math.exp(-max(0, d[j] - p[j] - t) / (k * p_mean)), -j) for j in left
        }
        best = max(scores, key=scores.__getitem__)
        out.append(best)
        left.remove(best)
        t += p[best]
    return out


def local_search(instance: WeightedTardiness, sequence: Sequence[int]) -> list[int]:
    """Pairwise interchange, then insertion, repeated until neither improves the cost."""
    seq = list(sequence)
    cost = sequence_cost(instance, seq)
    improved = True
    while improved:
        improved = False
        for i in range(len(seq)):
            for j in range(i + 1, len(seq)):
                seq[i], seq[j] = seq[j], seq[i]
                new = sequence_cost(instance, seq)
                if new < cost:
                    cost, improved = new, True
                else:
                    seq[i], seq[j] = seq[j], seq[i]
        for i in range(len(seq)):
            for j in range(len(seq)):
                if i == j:
                    continue
                trial = seq[:i] + seq[i + 1 :]
                trial.insert(j, seq[i])
                new = sequence_cost(instance, trial)
                if new < cost:
                    seq, cost, improved = trial, new, True
    return seq


def heuristic_sequence(instance: WeightedTardiness) -> list[int]:
    """The best of EDD, WSPT and ATC sequences, each improved to a local optimum."""
    jobs = range(instance.n)
    p, w, d = instance.processing, instance.weights, instance.due
    seeds = [
        sorted(jobs, key=lambda j: (d[j], j)),
        sorted(jobs, key=lambda j: (-w[j] / p[j], j)),
        *(atc_sequence(instance, k) for k in _ATC_K),
    ]
    # Improve the few best seeds only: local search costs far more than dispatching.
    seeds.sort(key=lambda s: sequence_cost(instance, s))
    improved = [local_search(instance, s) for s in seeds[:3]]
    return min(improved, key=lambda s: sequence_cost(instance, s))


def dominance_pairs(instance: WeightedTardiness) -> list[tuple[int, int]]:
    """Pairs (i, j) such that some optimal schedule processes i before j."""
    p, w, d = instance.processing, instance.weights, instance.due
    total = sum(p)
    pairs = []
    for i in range(instance.n):
        for j in range(instance.n):
            if i == j:
                continue
            same = (p[i], w[i], d[i]) == (p[j], w[j], d[j])
            if (same and i < j) or (not same and p[i] <= p[j] and w[i] >= w[j] and d[i] <= d[j]):
                pairs.append((i, j))
            elif d[j] >= total and d[i] < total:
                # j is on time wherever it goes: moving it last delays nobody else.
                pairs.append((i, j))
    return pairs


def respect_dominance(sequence: Sequence[int], pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Keep ``sequence``'s order, except that a job waits until every job that a pair
    (i, j) puts before it has been placed.

    A hint that breaks a dominance precedence is infeasible for the model, and CP-SAT may
    spend the whole time limit repairing it.
    """
    position = {job: k for k, job in enumerate(sequence)}
    successors: dict[int, list[int]] = {job: [] for job in sequence}
    blockers = dict.fromkeys(sequence, 0)
    for i, j in pairs:
        successors[i].append(j)
        blockers[j] += 1
    ready = [(position[job], job) for job in sequence if blockers[job] == 0]
    heapq.heapify(ready)
    out: list[int] = []
    while ready:
        _, job = heapq.heappop(ready)
        out.append(job)
        for nxt in successors[job]:
            blockers[nxt] -= 1
            if blockers[nxt] == 0:
                heapq.heappush(ready, (position[nxt], nxt))
    if len(out) != len(sequence):
        raise ValueError("the precedence pairs contain a cycle")
    return out


def solve_tardiness(
    instance: WeightedTardiness,
    time_limit_s: float,
    workers: int = 2,
    hint: Sequence[int] | None = None,
    seed: int | None = None,
) -> TardinessResult:
    """Minimise total weighted tardiness within ``time_limit_s`` (heuristic time included).

    ``hint`` is a job sequence (e.g. the previous plan); when absent the heuristic's is used.
    """
    if time_limit_s <= 0 or workers < 1:
        raise ValueError("time_limit_s must be > 0 and workers >= 1")
    t0 = time.perf_counter()
    p, w, d = instance.processing, instance.weights, instance.due
    total = sum(p)
    if hint is not None and sorted(hint) != list(range(instance.n)):
        raise ValueError("hint must be a permutation of the job indices")
    guide = list(hint) if hint is not None else heuristic_sequence(instance)
    guide_cost = sequence_cost(instance, guide)
    pairs = dominance_pairs(instance)
    # The objective is capped at the guide's cost (the optimum is no worse); the solver is
    # hinted with the guide reordered to obey the dominance precedences.
    ordered = respect_dominance(guide, pairs)

    model = cp_model.CpModel()
    starts = [model.new_int_var(0, total - p[j], f"s{j}") for j in range(instance.n)]
    model.add_no_overlap(
        [model.new_fixed_size_interval_var(starts[j], p[j], f"i{j}") for j in range(instance.n)]
    )
    terms = []
    for j in range(instance.n):
        if d[j] >= total or w[j] == 0:
            continue  # never late, or lateness costs nothing
        tardy = model.new_int_var(0, total - d[j], f"t{j}")
        model.add(tardy >= starts[j] + p[j] - d[j])
        terms.append(w[j] * tardy)
    for i, j in pairs:
        model.add(starts[j] >= starts[i] + p[i])
    objective = model.new_int_var(0, guide_cost, "twt")
    model.add(objective == sum(terms))
    model.minimize(objective)
    for var, value in zip(starts, _starts_of(instance, ordered), strict=True):
        model.add_hint(var, value)
    model.add_hint(objective, sequence_cost(instance, ordered))

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = workers
    solver.parameters.max_time_in_seconds = max(0.01, time_limit_s - (time.perf_counter() - t0))
    if seed is not None:
        solver.parameters.random_seed = seed
    status = solver.solve(model)
    wall = time.perf_counter() - t0
    bound = max(0, math.ceil(solver.best_objective_bound)) if status != cp_model.UNKNOWN else 0
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        found = [int(solver.value(s)) for s in starts]
        cost = check_starts(instance, found)
        sequence = sorted(range(instance.n), key=lambda j: found[j])
        return TardinessResult(
            status=solver.status_name(status),
            objective=cost,
            bound=min(cost, bound),
            sequence=sequence,
            starts=found,
            wall_s=wall,
            heuristic_objective=guide_cost,
        )
    if status in (cp_model.INFEASIBLE, cp_model.MODEL_INVALID):
        # The objective is capped at the hint's cost, so a non-optimal hint can never
        # make the model infeasible; only a bug can.
        raise RuntimeError(f"CP-SAT says {solver.status_name(status)}: model bug")
    return TardinessResult(
        status="HEURISTIC",
        objective=guide_cost,
        bound=min(guide_cost, bound),
        sequence=guide,
        starts=_starts_of(instance, guide),
        wall_s=wall,
        heuristic_objective=guide_cost,
    )
