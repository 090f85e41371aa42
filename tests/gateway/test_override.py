"""A line lead overrides a refusal with a reason: a parcel whose weight is outside its
tolerance is accepted by the lead, on the record; nobody else may, and nothing is accepted
that was never weighed. Through the station API of a running gateway (served_line)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.access.audit import read_trail
from gateway.app.root import Gateway
from tests.gateway.test_station_api import LOT, Line, served_line


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Line, Gateway]]:
    async with served_line(tmp_path) as (ln, gw):
        yield ln, gw


async def _to_the_pack_station(ln: Line) -> str:
    """One engraved pen through laser, inspection and kitting, its parcel started."""
    await ln.order("SO-OVR", "2030-01-01T10:00:00+08:00")
    unit = await ln.take("laser-1")
    serial = str(unit["serial"])
    await ln.scan("laser-1", serial)
    await ln.scan("laser-1", LOT)
    for station, action in (("laser-1", "start"), ("laser-1", "complete")):
        await ln.post(station, action)
    await ln.take("qc-1")
    await ln.scan("qc-1", serial)
    await ln.post("qc-1", "start")
    await ln.post("qc-1", "checklist", {"item": 0, "passed": True})
    await ln.post("qc-1", "checklist", {"item": 1, "passed": True})
    await ln.post("qc-1", "complete")
    await ln.take("kit-1")
    await ln.scan("kit-1", serial)
    await ln.scan("kit-1", "GIFTBOX-S")
    await ln.post("kit-1", "start")
    await ln.post("kit-1", "complete")
    await ln.take("pack-1")
    await ln.scan("pack-1", serial)
    await ln.scan("pack-1", "CARTON-S")
    return serial


async def test_a_lead_accepts_a_weight_out_of_tolerance(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    await _to_the_pack_station(ln)
    lead = {"Authorization": f"Bearer {ln.keys.token('line_lead')}"}
    body = {"check": "weight", "reason": "gift box heavier than the catalog's; checked by hand"}
    # Nothing weighed yet: nothing to accept.
    r = await ln.api.post("/api/stations/pack-1/override", json=body, headers=lead)
    assert r.status_code == 409 and r.json()["code"] == "NOT_WEIGHED", r.text
    # 150 g is the parcel's weight (test_station_api); 400 g is far outside it.
    weighed = await ln.post("pack-1", "weight", {"grams": 400.0})
    assert weighed["ok"] is False and "label_id" not in weighed
    # The station's own terminal may not override (a line lead's), nor may quality.
    terminal = {"Authorization": f"Bearer {ln.keys.terminal('pack-1')}"}
    r = await ln.api.post("/api/stations/pack-1/override", json=body, headers=terminal)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN_ROLE", r.text
    quality = {"Authorization": f"Bearer {ln.keys.token('quality')}"}
    r = await ln.api.post("/api/stations/pack-1/override", json=body, headers=quality)
    assert r.status_code == 403
    # An override without a reason is no override.
    r = await ln.api.post(
        "/api/stations/pack-1/override",
        json={"check": "weight", "reason": " \u200b "},
        headers=lead,
    )
    assert r.status_code == 409 and r.json()["code"] == "REASON_REQUIRED", r.text
    r = await ln.api.post(
        "/api/stations/pack-1/override", json={"check": "colour", "reason": "x"}, headers=lead
    )
    assert r.status_code == 422, r.text
    r = await ln.api.post("/api/stations/pack-1/override", json=body, headers=lead)
    assert r.status_code == 200, r.text
    label_id = r.json()["label_id"]
    lead_id = ln.keys.token("line_lead").split("_")[1]
    assert f"accepted by token:{lead_id}" in r.json()["message"]
    # The operator finishes the parcel as after an accepted weight.
    await ln.scan("pack-1", label_id)
    await ln.events("order.completed")
    checks = [e["data"] for e in await ln.events("quality.checked")]
    accepted = [c for c in checks if c.get("overridden_by")]
    assert len(accepted) == 1
    assert accepted[0]["passed"] is True and accepted[0]["measured"] == 400.0
    assert accepted[0]["reason"] == body["reason"]
    (row,) = read_trail(gw.store, action="override")
    assert row.actor == f"token:{lead_id}" and row.role == "line_lead"
    assert row.station == "pack-1" and row.detail == f"weight: {body['reason']}"
    # Done once: a second override finds nothing to accept.
    r = await ln.api.post("/api/stations/pack-1/override", json=body, headers=lead)
    assert r.status_code == 409
