"""ISO 22400-2 OEE, operator figures and the line's KPIs of a hand-worked night shift.

The night shift runs 22:00-06:00 in Berlin with a break 00:30-01:00, on the night the
clocks go back (Sunday 25 October 2026, 03:00 CEST → 02:00 CET): it lasts nine hours of
real time. The embroiderer emb-1 reports its own PackML states (a machine fault: HELD for a
thread break); the pack station pack-1 is manual (its states follow its tasks). A cap is
reworked once, another scrapped and remade; an order is late, another never made.

Every expected value is worked out here from the definitions (ISO 22400-2, as
gateway/numbers/elements.py states how each moment of a station is classed): the station's
timeline is written out below by hand, moment by moment, and summed; the ratios are
formed from those sums. Nothing expected comes from the code under test.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest

from gateway.numbers.closing import Closing
from gateway.numbers.elements import compute
from gateway.numbers.kpis import kpi_doc
from gateway.numbers.periods import PeriodKind, closed_between, parse_period
from tests.numbers.night import (
    BERLIN,
    EMBROIDER_S,
    PACK_S,
    PBT,
    SHIFT_S,
    Night,
    S,
    at,
    run_the_night,
)

# emb-1, moment by moment: (from, to, class, reason). Classes: APT (EXECUTE), AUST (a
# changeover: taken to started), ADET (a fault, or a task in hand while the machine waits:
# "handling"), ADOT (planned, nothing in hand), OFF (the break: not planned busy time).
EMB_TIMELINE = [
    (0, 300, "ADOT", None),
    (300, 600, "AUST", None),  # A taken at 300, started at 600: gold after nothing
    (600, 700, "ADET", "handling"),
    (700, 1000, "APT", None),
    (1000, 1600, "ADET", "thread break"),
    (1600, 1800, "APT", None),
    (1800, 1900, "ADET", "handling"),  # B taken at 1800, gold already: no changeover
    (1900, 2100, "APT", None),
    (2100, 2150, "ADET", "handling"),
    (2150, 2250, "ADET", "handling"),  # reworked: the repeat stays in hand here
    (2250, 2400, "APT", None),
    (2400, 2450, "ADET", "handling"),
    (2450, 9000, "ADOT", None),
    (9000, 10800, "OFF", None),
    (10800, 12000, "ADOT", None),
    (12000, 12300, "AUST", None),  # C: silver after gold
    (12300, 12500, "APT", None),
    (12500, 12600, "ADET", "handling"),
    (12600, 13000, "ADOT", None),
    (13000, 13100, "ADET", "handling"),  # C remade: silver already
    (13100, 13300, "APT", None),
    (13300, 13400, "ADET", "handling"),
    (13400, SHIFT_S, "ADOT", None),
]
# pack-1 is manual: EXECUTE from the first unit scanned to the label scanned.
PACK_TIMELINE = [(1900, 2000), (2500, 2560), (13500, 13600)]


def sums(timeline: list[tuple[int, int, str, str | None]]) -> dict[str, float]:
    out: dict[str, float] = {"APT": 0, "AUST": 0, "ADET": 0, "ADOT": 0, "OFF": 0}
    for a, b, kind, _ in timeline:
        out[kind] += b - a
    return out


def test_the_timelines_cover_the_shift() -> None:
    """The hand-written timeline itself: contiguous, nine hours, PBT = all but the break."""
    assert all(a[1] == b[0] for a, b in itertools.pairwise(EMB_TIMELINE))
    assert EMB_TIMELINE[0][0] == 0 and EMB_TIMELINE[-1][1] == SHIFT_S
    s = sums(EMB_TIMELINE)
    assert s["APT"] + s["AUST"] + s["ADET"] + s["ADOT"] == PBT


def test_the_night_shift_crosses_midnight_and_the_clock_change(night: Night) -> None:
    config = night.gw.config
    tz = config.line.tzinfo
    shift = parse_period("shift:2026-10-24:night", config.shifts, tz)
    assert (shift.start, shift.end) == (S, at(SHIFT_S))
    assert shift.seconds == 9 * 3600  # 22:00 CEST to 06:00 CET
    day = parse_period("day:2026-10-25", config.shifts, tz)
    assert day.seconds == 25 * 3600  # the day the clocks go back
    assert day.start == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # 00:00 CEST
    week = parse_period("week:2026-W43", config.shifts, tz)
    assert week.seconds == 7 * 24 * 3600 + 3600
    ended = closed_between(config.shifts, tz, at(SHIFT_S - 1), at(SHIFT_S + 1))
    assert [p.key for p in ended] == ["shift:2026-10-24:night"]
    # A day ending closes after its shifts; the week and month with it, longest last.
    last = closed_between(
        config.shifts,
        tz,
        datetime(2026, 10, 31, 22, 0, tzinfo=UTC),
        datetime(2026, 11, 1, 0, 0, tzinfo=UTC),
    )
    assert [p.kind for p in last] == [PeriodKind.DAY, PeriodKind.MONTH]


def test_oee_of_the_night_by_iso_22400(night: Night) -> None:
    run_the_night(night)
    el = compute(night.gw.core, S, at(SHIFT_S))
    doc = kpi_doc(el)

    emb = sums(EMB_TIMELINE)
    st = doc["stations"]["emb-1"]
    e = st["elements"]
    assert e["pbt_s"] == PBT
    assert (e["apt_s"], e["aust_s"], e["adet_s"], e["adot_s"]) == (
        emb["APT"],
        emb["AUST"],
        emb["ADET"],
        emb["ADOT"],
    )
    downtime: dict[str, float] = {}
    for a, b, kind, reason in EMB_TIMELINE:
        if kind == "ADET":
            assert reason is not None
            downtime[reason] = downtime.get(reason, 0) + b - a
    assert st["downtime_s"] == downtime
    # Produced at emb-1: A, B (failed, reworked), B again, C (scrapped), C's replacement.
    pq, gq, sq, rq = 5, 3, 1, 1
    assert (e["pq"], e["gq"], e["sq"], e["rq"]) == (pq, gq, sq, rq)
    assert e["pri_pq_s"] == pq * EMBROIDER_S
    availability = emb["APT"] / PBT
    performance = pq * EMBROIDER_S / emb["APT"]
    quality = gq / pq
    assert st["availability"] == {
        "numerator": emb["APT"],
        "denominator": PBT,
        "ratio": round(availability, 4),
    }
    assert st["performance"]["ratio"] == round(performance, 4)
    assert st["quality"]["ratio"] == round(quality, 4)
    assert st["oee"] == round(availability * performance * quality, 4)
    assert st["setup_share"]["ratio"] == round(emb["AUST"] / (emb["AUST"] + emb["APT"]), 4)

    # pack-1: manual, its time is its tasks'.
    pack_apt = sum(b - a for a, b in PACK_TIMELINE)
    p = doc["stations"]["pack-1"]["elements"]
    assert (p["pbt_s"], p["apt_s"], p["adot_s"], p["adet_s"]) == (PBT, pack_apt, PBT - pack_apt, 0)
    assert (p["pq"], p["gq"], p["pri_pq_s"]) == (3, 3, 3 * PACK_S)

    # The line: its stations' elements summed (the eight others idle all shift).
    stations = len(night.gw.config.stations)
    line = doc["line"]
    line_apt = emb["APT"] + pack_apt
    assert line["availability"] == {
        "numerator": line_apt,
        "denominator": stations * PBT,
        "ratio": round(line_apt / (stations * PBT), 4),
    }
    line_perf = (pq * EMBROIDER_S + 3 * PACK_S) / line_apt
    line_quality = (gq + 3) / (pq + 3)
    assert line["performance"]["ratio"] == round(line_perf, 4)
    assert line["quality"]["ratio"] == round(line_quality, 4)
    assert line["oee"] == round(line_apt / (stations * PBT) * line_perf * line_quality, 4)
    assert line["scrap_rate"] == {"numerator": 1, "denominator": 8, "ratio": 0.125}
    assert line["rework_rate"] == {"numerator": 1, "denominator": 8, "ratio": 0.125}


def test_the_line_and_people_of_the_night(night: Night) -> None:
    run_the_night(night)
    doc = kpi_doc(compute(night.gw.core, S, at(SHIFT_S)))
    line = doc["line"]
    # Due in the shift: A, B, C, D (E after it). On time: A (2000 ≤ 7200), B (2560 ≤
    # 10800); C packed at 13600 > 12600; D never made.
    assert line["otd"] == {"numerator": 2, "denominator": 4, "ratio": 0.5}
    assert line["orders_late"] == 2
    # Units finished: A, B, C's replacement; first pass: A and the replacement.
    assert line["fpy"] == {"numerator": 2, "denominator": 3, "ratio": 0.6667}
    # Lead times from acceptance (-600): A 2600, B 3160, C 14200.
    assert line["lead_time_p50_s"] == 3160.0
    # Errors caught at pack: C's unit offered into B's parcel, B weighed 60 g over.
    assert line["pack_errors"] == {
        "errors": 2,
        "orders_packed": 3,
        "per_1000": round(1000 * 2 / 3, 2),
        "by_code": {"FOREIGN_UNIT": 1, "WEIGHT_OFF": 1},
    }
    # WIP at the end: D and E accepted, not packed.
    assert line["wip"]["count"] == 2
    assert line["wip"]["age_max_s"] == SHIFT_S + 600

    # Operators: signed in from 0 to the end, less the break.
    emb_work = (1800 - 600) + (2150 - 1900) + (2450 - 2250) + (12600 - 12300) + (13400 - 13100)
    op = doc["operators"]["OP-1003"]
    assert op["signed_in_s"] == PBT
    assert op["utilisation"] == {
        "numerator": emb_work,
        "denominator": PBT,
        "ratio": round(emb_work / PBT, 4),
    }
    assert op["efficiency"]["numerator"] == 3 * EMBROIDER_S  # A, B, C's replacement
    packer = doc["operators"]["OP-1008"]
    assert packer["efficiency"]["numerator"] == 3 * PACK_S
    assert packer["utilisation"]["numerator"] == sum(b - a for a, b in PACK_TIMELINE)

    # Materials against the BOM: standard for what was completed (three caps, three
    # parcels); used is what the attempts consumed (material.consumed), the two failed
    # attempts' blanks and thread included.
    consumed: dict[str, float] = {}
    for r in night.gw.outbox.peek(0, 100_000):
        ev = json.loads(r.payload)
        if ev["type"] == "material.consumed" and ev["ts"] >= S.isoformat():
            consumed[ev["data"]["material"]] = (
                consumed.get(ev["data"]["material"], 0) + ev["data"]["qty"]
            )
    mats = line["materials"]
    assert mats["BLANK-CAP-NAVY"]["standard"] == 3
    assert mats["THREAD-POLY"]["standard"] == 3 * 12
    assert mats["POLYBAG"]["standard"] == 3
    for material, qty in consumed.items():
        assert mats[material]["used"] == pytest.approx(qty)
    assert mats["BLANK-CAP-NAVY"]["loss"] == consumed["BLANK-CAP-NAVY"] - 3


async def test_a_closed_shift_is_kept_and_reported_once(night: Night) -> None:
    run_the_night(night)
    core = night.gw.core
    closing = Closing(core)
    assert await closing.step(at(-1)) == []  # the first step only marks where numbers begin
    closed = await closing.step(at(SHIFT_S + 60))
    assert "shift:2026-10-24:night" in [p.key for p in closed]
    snaps = [
        json.loads(r.payload)["data"]
        for r in night.gw.outbox.peek(0, 100_000)
        if json.loads(r.payload)["type"] == "kpi.snapshot"
    ]
    shift = [s for s in snaps if s["period"]["kind"] == "shift"]
    assert len(shift) == 1
    # The same figures as computed directly for the period.
    direct = kpi_doc(compute(core, S, at(SHIFT_S)))
    assert shift[0]["line"]["oee"] == direct["line"]["oee"]
    assert shift[0]["stations"]["emb-1"] == direct["stations"]["emb-1"]
    assert shift[0]["period"]["timezone"] == BERLIN
    # Again later: nothing twice, and a step that closes nothing writes nothing (an idle
    # line must not commit every second: SD-card wear).
    commits = core.store.commits
    assert await closing.step(at(SHIFT_S + 120)) == []
    assert await closing.step(at(SHIFT_S + 121)) == []
    assert core.store.commits == commits
    again = await closing.regenerate(
        parse_period("shift:2026-10-24:night", [*core.config.shifts], core.config.line.tzinfo)
    )
    assert kpi_doc(again)["stations"] == direct["stations"]
