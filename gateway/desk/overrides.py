"""A line lead overriding a refusal, with a reason: the rule gives way to a person who takes
responsibility for it, on the record (the audit trail names them, the quality record and
its ``quality.checked`` event carry who and why).

Only what a person can judge better than the rule is overridable, and only what the
station is stuck on now. Today that is one check: a weight outside its tolerance, when
the lead has checked the item or parcel by hand (a personalisation heavier than the
catalog's weight, a scale the catalog's tolerance is too tight for). The override accepts
the weight last measured; a parcel then gets its shipping label as an accepted weight
would. Whatever the scale never measured cannot be accepted: weigh first.

And the parcel's containers: when no container holds a unit of the order (the parcel
waits), or instead of the proposal, the lead names the containers (material and quantity)
or says to pack as the BOM says (gateway/desk/parcel.py ``decide``).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from gateway.desk import parcel
from gateway.desk.labels import print_shipping
from gateway.desk.replies import Done, Refused
from gateway.desk.screen import task_next
from gateway.desk.session import Session
from gateway.i18n import t
from gateway.orderbook import tasks
from gateway.store.rows import TaskStatus

__all__ = ["Overridable", "override"]


class Overridable(StrEnum):
    """The checks a line lead may override."""

    WEIGHT = "weight"
    PARCEL = "parcel"  # the parcel's containers


def override(
    s: Session,
    check: Overridable,
    reason: str,
    by: str,
    containers: Sequence[tuple[str, int]] | None = None,
    as_bom: bool = False,
) -> Done:
    """Accept the station's current task's failed ``check`` (``weight``), or decide its
    parcel's ``containers`` (material, quantity) or to pack it ``as_bom`` (``parcel``)."""
    if check is Overridable.PARCEL:
        if (containers is None) is not as_bom:
            raise Refused(
                "CONTAINERS_REQUIRED",
                t("Name the containers, or say to pack as the BOM says (not both)."),
                t("Choose the containers and their quantities."),
            )
        return parcel.decide(s, None if as_bom else containers, reason, by)
    if not reason:
        raise Refused(
            "REASON_REQUIRED", t("An override needs a reason."), t("Say why the weight is right.")
        )
    core = s.core
    task = s.require_current()
    progress = task.progress()
    if task.status is not TaskStatus.RUNNING:
        raise Refused("NOT_RUNNING", t("The task is not running."), task_next(core, task))
    if progress.weight_g is None:
        raise Refused(
            "NOT_WEIGHED",
            t("Nothing was weighed for this task yet: there is no weight to accept."),
            t("Place the item on the scale first."),
        )
    if progress.weight_ok:
        raise Refused(
            "NOTHING_TO_OVERRIDE",
            t("The weight {grams} g is already accepted.", grams=format(progress.weight_g, "g")),
            task_next(core, task),
        )
    grams = progress.weight_g
    if task.serial is None:
        expected, tol = tasks.expected_weight(core, task.order_id)
    else:
        snapshot = tasks.unit_snapshot(core, task)
        expected = snapshot.unit_weight_g if snapshot is not None else 0.0
        tol = snapshot.weight_tolerance_g if snapshot is not None else 0.0
    with core.store.transaction():
        tasks.record_quality(
            core,
            task,
            check.value,
            True,
            grams,
            {"expected_g": expected, "tolerance_g": tol, "overridden_by": by, "reason": reason},
        )
        progress.weight_ok = True
        data: dict[str, object] = {}
        if task.serial is None:
            progress.label_id = print_shipping(
                core, task.order_id, s.station_id, len(progress.units), grams
            )
            data["label_id"] = progress.label_id
        tasks.save_progress(core, task.task_id, progress)
    weighed = {"grams": f"{grams:g}", "expected": f"{expected:g}", "tol": f"{tol:g}"}
    if task.serial is None:
        said = t(
            "Weight {grams} g (expected {expected} ± {tol} g) accepted by {by}: {reason}. "
            "Shipping label {label_id} printed.",
            **weighed,
            by=by,
            reason=reason,
            label_id=str(progress.label_id),
        )
    else:
        said = t(
            "Weight {grams} g (expected {expected} ± {tol} g) accepted by {by}: {reason}.",
            **weighed,
            by=by,
            reason=reason,
        )
    return Done(said, data=data)
