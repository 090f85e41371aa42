"""Printing a label again at a station (a damaged or lost one), with the reason recorded."""

from __future__ import annotations

from gateway.desk import labels
from gateway.desk.replies import Done, Refused
from gateway.desk.session import Session
from gateway.i18n import t


def reprint(s: Session, reason: str, label_id: str | None) -> Done:
    """Print ``label_id`` again, or without one the label printed last at this station.
    ``reason`` is as :func:`gateway.desk.text.clean` leaves it: "" when none was given."""
    s.operator()
    if not reason:
        raise Refused(
            "REASON_REQUIRED",
            t("Say why the label is printed again."),
            t("Give a reprint reason (damaged, lost …)."),
        )
    core = s.core
    label = (
        labels.last_printed_at(core, s.station_id)
        if label_id is None
        else labels.find(core, label_id)
    )
    if label is None:
        raise Refused(
            "UNKNOWN_LABEL",
            t("There is no such label to reprint.")
            if label_id
            else t("No label was printed at this station yet."),
            t("Scan or type the label id printed on the damaged label."),
        )
    job_id = labels.reprint(core, label.label_id, s.station_id, reason)
    return Done(
        t(
            "Label {label_id} sent again ({reason}): apply the new label.",
            label_id=label.label_id,
            reason=reason,
        ),
        data={"label_id": label.label_id, "job_id": job_id},
    )
