"""The site demo's verdict, from the office's store and the lines' own: every order the
shop sent was routed, accepted by its line and completed (a fixed run; a run stopped by
Ctrl-C judges what was said so far), and the office holds every line's events without a
gap, through the last seq the line committed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sitedemo.lines import LineProcess
from sitedemo.shop import Sent
from sitedemo.tally import SiteTally

__all__ = ["judge"]


def judge(
    lines: Sequence[LineProcess],
    sent: Sequence[Sent],
    tally: SiteTally,
    last_seqs: Mapping[str, int | None],
    *,
    fixed: bool,
) -> list[str]:
    problems: list[str] = []
    for line in lines:
        gateway_id = line.spec.gateway_id
        problems += [f"{gateway_id}: {p}" for p in line.problems]
        if line.returncode not in (0, None):
            problems.append(f"{gateway_id} ended with exit {line.returncode} ({line.log_path})")
        last = last_seqs.get(gateway_id)
        held = tally.line(gateway_id)
        if last is None:
            if line.returncode is not None:
                problems.append(f"{gateway_id}: no store to read its last seq from")
            continue
        if held.gaps:
            problems.append(f"the office misses seqs of {gateway_id}: {held.gaps}")
        if held.held_through != last or held.highest_seq != last:
            problems.append(
                f"the office holds {gateway_id}'s events through {held.held_through} "
                f"(highest {held.highest_seq}); the line's last seq is {last}"
            )
    unrouted = [s.order_id for s in sent if s.line is None]
    if unrouted:
        problems.append(f"{len(unrouted)} orders not routed: {', '.join(unrouted[:5])}")
    for s in sent:
        if s.line is None:
            continue
        routed_to = tally.line(s.line)
        if s.order_id in routed_to.rejected:
            problems.append(f"{s.line} rejected {s.order_id}")
        others = [g for g, t in tally.lines.items() if g != s.line and s.order_id in t.accepted]
        if others:
            problems.append(f"{s.order_id} went to {s.line} and was accepted by {others}")
    if fixed:
        routed = [s for s in sent if s.line is not None]
        open_ = [s.order_id for s in routed if s.order_id not in tally.line(s.line or "").accepted]
        if open_:
            problems.append(f"{len(open_)} orders never accepted: {', '.join(open_[:5])}")
        unfinished = [
            s.order_id for s in routed if s.order_id not in tally.line(s.line or "").completed
        ]
        if unfinished:
            problems.append(f"{len(unfinished)} orders not completed: {', '.join(unfinished[:5])}")
    return problems
