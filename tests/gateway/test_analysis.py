"""Bottlenecks, drift and why orders were late (gateway/numbers/analysis).

The bottleneck and the drift are worked on hand-built elements, their expected values
computed here from the methods their docstrings state (utilisation = Σ busy / Σ PBT per
group of stations sharing a queue; a part's contribution c_i = w_i′(r_i′ − R) − w_i(r_i − R)),
never by calling the code under test. Why an order was late is worked on a real gateway's
store, the line driven through the station desk with a clock the test moves: every time
below is known to the second.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.desk.service import StationService
from gateway.numbers.analysis import (
    Bottleneck,
    CauseKind,
    ContributorKind,
    Kpi,
    LineShape,
    Unit,
    bottleneck,
    causes,
    drift,
    why_late,
)
from gateway.numbers.model import (
    DefectCount,
    Elements,
    LateOrder,
    OperatorElements,
    StationElements,
)
from tests.clocks import ManualClock
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, stock_doc

MINUS = "\u2212"

# -- the bottleneck --------------------------------------------------------------------------

# The reference line's shape, as its stations and routings make it (dtg-1/dtg-2 and
# pack-1/pack-2 each share a queue; print and embroidery are followed by packing).
SHAPE = LineShape.build(
    {
        "dtg-1": ["dtg_print"],
        "dtg-2": ["dtg_print"],
        "emb-1": ["embroider"],
        "pack-1": ["pack"],
        "pack-2": ["pack"],
    },
    [["dtg_print", "pack"], ["embroider", "pack"]],
)


def station(**values: Any) -> StationElements:
    return StationElements(**values)


def elements(**values: Any) -> Elements:
    return Elements(
        start="2026-11-26T00:00:00.000+00:00", end="2026-11-26T01:00:00.000+00:00", **values
    )


def test_the_shape_groups_parallel_stations_and_knows_what_follows_what() -> None:
    assert dict(SHAPE.groups) == {
        "dtg_print": ("dtg-1", "dtg-2"),
        "embroider": ("emb-1",),
        "pack": ("pack-1", "pack-2"),
    }
    assert dict(SHAPE.downstream) == {
        "dtg_print": frozenset({"pack"}),
        "embroider": frozenset({"pack"}),
    }
    assert SHAPE.group_of("dtg-2") == "dtg_print"
    assert SHAPE.group_of("laser-1") == "laser-1"  # unknown: a group of its own


def test_the_busiest_group_is_the_bottleneck_and_a_near_tie_goes_to_the_longer_queue() -> None:
    el = elements(
        stations={
            # dtg group: busy (2800+200+100) + (2600+300) = 6000 of 7200 s planned: 83.3 %;
            # queue (1200 + 900) / (4 + 2) = 350 s.
            "dtg-1": station(
                pbt_s=3600,
                apt_s=2800,
                adet_s=200,
                aust_s=100,
                adot_s=500,
                queue_wait_s=1200,
                queued=4,
            ),
            "dtg-2": station(
                pbt_s=3600, apt_s=2600, adet_s=300, adot_s=700, queue_wait_s=900, queued=2
            ),
            # emb-1: busy 2400 + 480 = 2880 of 3600: 80 %, within 5 points of 83.3 %: a
            # tie, and its queue is longer, 1800 / 3 = 600 s.
            "emb-1": station(
                pbt_s=3600, apt_s=2400, adet_s=480, adot_s=720, queue_wait_s=1800, queued=3
            ),
            # Downstream: idle 2600 / 3600 and 3200 / 3600.
            "pack-1": station(pbt_s=3600, apt_s=1000, adot_s=2600),
            "pack-2": station(pbt_s=3600, apt_s=400, adot_s=3200),
        }
    )
    found = bottleneck(el, SHAPE)
    assert found is not None
    assert (found.found, found.group, found.stations, found.station) == (
        True,
        "embroider",
        ["emb-1"],
        "emb-1",
    )
    assert found.utilisation == pytest.approx(2880 / 3600)
    assert (found.busy_s, found.planned_s) == (2880, 3600)
    assert (found.queue_wait_s, found.queued) == (600, 3)
    assert found.confirmed and found.longest_queue is None
    assert [n.station for n in found.starved] == ["pack-1", "pack-2"]
    assert [n.idle_share for n in found.starved] == pytest.approx(
        [2600 / 3600, 3200 / 3600], abs=1e-4
    )
    assert found.blocked_s is None  # units leave into totes: no blocking to report
    assert found.words.en == (
        "Bottleneck: emb-1 (embroider), 80% busy, work queued a mean 10 min before it. "
        "Downstream, idle for want of work: pack-1 72%, pack-2 89%."
    )
    assert found.words.zh == (
        "瓶颈：emb-1（embroider），忙碌率 80%，工件在其前平均排队 10 分钟。"
        "下游因缺活而空闲：pack-1 72%、pack-2 89%。"
    )


def test_a_clear_leader_is_the_bottleneck_even_when_another_queue_is_longer() -> None:
    el = elements(
        stations={
            # dtg: (3400 + 3300) / 7200 = 93 %; queue 600 / 10 = 60 s.
            "dtg-1": station(pbt_s=3600, apt_s=3400, adot_s=200, queue_wait_s=300, queued=5),
            "dtg-2": station(pbt_s=3600, apt_s=3300, adot_s=300, queue_wait_s=300, queued=5),
            # emb-1: 2160 / 3600 = 60 %, far below; queue 1200 / 2 = 600 s, the longest.
            "emb-1": station(pbt_s=3600, apt_s=2160, adot_s=1440, queue_wait_s=1200, queued=2),
        }
    )
    found = bottleneck(el, SHAPE)
    assert found is not None
    assert (found.group, found.stations, found.station) == (
        "dtg_print",
        ["dtg-1", "dtg-2"],
        "dtg-1",  # the busier of the two
    )
    assert found.utilisation == pytest.approx(6700 / 7200, abs=1e-4)
    assert not found.confirmed and found.longest_queue == "embroider"
    assert found.starved == []  # no pack station in these elements
    assert found.words.en == (
        "Bottleneck: dtg-1/dtg-2 (dtg_print), 93% busy, work queued a mean 1 min before it. "
        "The longest queue was before emb-1 (embroider) (10 min)."
    )


def test_a_line_under_half_busy_everywhere_has_no_bottleneck() -> None:
    el = elements(
        stations={
            "dtg-1": station(pbt_s=3600, apt_s=1000, adot_s=2600),
            "emb-1": station(pbt_s=3600, apt_s=1500, adet_s=200, adot_s=1900),  # 47 %
        }
    )
    found = bottleneck(el, SHAPE)
    assert found is not None
    assert not found.found
    assert found.station == "emb-1"
    assert found.utilisation == pytest.approx(1700 / 3600, abs=1e-4)
    assert found.words.en == (
        "No bottleneck: every station was under 50% busy (the busiest, emb-1 (embroider), "
        "47%); the line was short of work."
    )
    assert found.words.zh == (
        "无瓶颈：各工位忙碌率均低于 50%（最忙的 emb-1（embroider） 为 47%），产线缺活。"
    )


def test_a_line_with_no_work_at_all_says_so() -> None:
    el = elements(stations={s: station(pbt_s=3600, adot_s=3600) for s in ("dtg-1", "emb-1")})
    found = bottleneck(el, SHAPE)
    assert found is not None and not found.found and found.utilisation == 0
    assert found.words.en == "No bottleneck: no station was busy; the line had no work."
    assert found.words.zh == "无瓶颈：没有工位忙碌，产线无活可干。"


def test_no_planned_time_no_bottleneck() -> None:
    assert bottleneck(elements(), SHAPE) is None
    assert bottleneck(elements(stations={"dtg-1": station()}), SHAPE) is None


# -- drift ----------------------------------------------------------------------------------


def _previous() -> Elements:
    return elements(
        stations={
            "emb-1": station(
                pbt_s=10000,
                apt_s=9000,
                adet_s=1000,
                downtime={"thread break": 200, "handling": 800},
                pri_pq_s=8100,
                pq=50,
                gq=50,
            ),
            "dtg-1": station(
                pbt_s=10000,
                apt_s=8000,
                adet_s=2000,
                downtime={"handling": 2000},
                pri_pq_s=7200,
                pq=100,
                gq=98,
            ),
        },
        operators={
            "OP-1001": OperatorElements(earned_s=3600, apat_s=3600),
            "OP-1002": OperatorElements(earned_s=2880, apat_s=3600),
        },
        orders_due=10,
        orders_on_time=9,
        units_first_pass=95,
        units_completed=100,
        lead_times_s=[600, 1200, 1800],
        orders_packed=100,
        defects=[
            DefectCount(
                reason="smeared print",
                station="dtg-1",
                sku="TEE-BLK-M",
                operator="OP-1001",
                disposition="rework",
                count=1,
            )
        ],
    )


def _current() -> Elements:
    """emb-1 lost availability to thread breaks (200 s → 2000 s held); dtg-1 the same;
    OP-1002 earned less; more smeared prints on TEE-BLK-M; two parcels missing a unit."""
    return elements(
        stations={
            "emb-1": station(
                pbt_s=10000,
                apt_s=7200,
                adet_s=2800,
                downtime={"thread break": 2000, "handling": 800},
                pri_pq_s=6480,
                pq=40,
                gq=40,
            ),
            "dtg-1": station(
                pbt_s=10000,
                apt_s=8000,
                adet_s=2000,
                downtime={"handling": 2000},
                pri_pq_s=7200,
                pq=100,
                gq=98,
            ),
        },
        operators={
            "OP-1001": OperatorElements(earned_s=3600, apat_s=3600),
            "OP-1002": OperatorElements(earned_s=2160, apat_s=3600),
        },
        orders_due=10,
        orders_on_time=7,
        units_first_pass=90,
        units_completed=100,
        lead_times_s=[900, 2400, 3000],
        orders_packed=200,
        pack_errors=2,
        pack_errors_by_code={"UNITS_MISSING": 2},
        defects=[
            DefectCount(
                reason="smeared print",
                station="dtg-1",
                sku="TEE-BLK-M",
                operator="OP-1001",
                disposition="rework",
                count=5,
            )
        ],
    )


def test_drift_names_the_station_and_the_downtime_reason_behind_a_fall_in_oee() -> None:
    changes = {c.kpi: c for c in drift(_current(), _previous())}
    assert list(changes) == list(Kpi)

    # Availability: before 17000 / 20000 = 0.85, now 15200 / 20000 = 0.76: −9 pts. emb-1:
    # (7200 − 0.85·10000)/20000 − (9000 − 0.85·10000)/20000 = −0.09; dtg-1: 0.
    a = changes[Kpi.AVAILABILITY]
    assert (a.unit, a.previous, a.current) == (Unit.POINTS, 0.85, 0.76)
    assert a.delta == pytest.approx(-9.0)
    assert [(c.kind, c.name) for c in a.contributors] == [(ContributorKind.STATION, "emb-1")]
    assert a.contributors[0].delta == pytest.approx(-9.0)
    # emb-1's own availability 0.72 (was 0.90): −18 pts; thread break grew most
    # (+1800 s), 2000 s now: 33 min.
    assert a.words.en == (
        f"Availability {MINUS}9 pts (76%, was 85%): emb-1 availability {MINUS}18 pts, "
        "33 min held for thread break"
    )
    assert a.words.zh == (
        f"可用率 {MINUS}9 个百分点（现 76%，原 85%）：emb-1 可用率 {MINUS}18 个百分点，"
        "因 thread break 停机 33 分钟"
    )

    # OEE = X × Q, X = Σ PRI×PQ / Σ PBT, Q = Σ GQ / Σ PQ.
    x0, x1 = (8100 + 7200) / 20000, (6480 + 7200) / 20000
    q0, q1 = 148 / 150, 138 / 140
    o = changes[Kpi.OEE]
    assert o.previous == pytest.approx(x0 * q0, abs=1e-6)
    assert o.current == pytest.approx(x1 * q1, abs=1e-6)
    assert o.delta == pytest.approx(100 * (x1 * q1 - x0 * q0), abs=1e-3)
    # Station shares: X's by c = (n′ − X0·d′)/D′ − (n − X0·d)/D, Q's likewise.
    cx_emb = (6480 - x0 * 10000) / 20000 - (8100 - x0 * 10000) / 20000
    cq_emb = (40 - q0 * 40) / 140 - (50 - q0 * 50) / 150
    cq_dtg = (98 - q0 * 100) / 140 - (98 - q0 * 100) / 150
    emb = cx_emb * (q0 + q1) / 2 + cq_emb * (x0 + x1) / 2
    dtg = 0 * (q0 + q1) / 2 + cq_dtg * (x0 + x1) / 2
    assert emb + dtg == pytest.approx(x1 * q1 - x0 * q0)  # the shares add up exactly
    # dtg-1's share, −0.02 pts, is too small to name.
    assert [c.name for c in o.contributors] == ["emb-1"]
    assert o.contributors[0].delta == pytest.approx(100 * emb, abs=1e-3)
    assert o.words.en == (
        f"OEE {MINUS}8.1 pts (67%, was 75%): emb-1 availability {MINUS}18 pts, "
        "33 min held for thread break"
    )


def test_drift_names_operators_skus_reasons_and_codes() -> None:
    changes = {c.kpi: c for c in drift(_current(), _previous())}
    # Efficiency: before (3600 + 2880) / 7200 = 0.9, now (3600 + 2160) / 7200 = 0.8.
    # OP-1002: (2160 − 0.9·3600)/7200 − (2880 − 0.9·3600)/7200 = −0.1; OP-1001: 0.
    e = changes[Kpi.OPERATOR_EFFICIENCY]
    assert e.delta == pytest.approx(-10.0)
    assert [(c.kind, c.name) for c in e.contributors] == [(ContributorKind.OPERATOR, "OP-1002")]
    assert e.contributors[0].delta == pytest.approx(-10.0)
    assert e.words.en == (
        f"Operator efficiency {MINUS}10 pts (80%, was 90%): OP-1002 {MINUS}20 pts (60%, was 80%)"
    )
    # FPY 0.95 → 0.90: TEE-BLK-M and smeared print each 1 → 5 defects.
    f = changes[Kpi.FPY]
    assert f.delta == pytest.approx(-5.0)
    assert [(c.kind, c.name, c.delta, c.count, c.count_delta) for c in f.contributors] == [
        (ContributorKind.SKU, "TEE-BLK-M", None, 5, 4),
        (ContributorKind.REASON, "smeared print", None, 5, 4),
    ]
    assert f.words.en == (
        f"First pass yield {MINUS}5 pts (90%, was 95%): TEE-BLK-M 5 defects (+4); "
        "smeared print 5 (+4)"
    )
    assert f.words.zh == (
        f"一次合格率 {MINUS}5 个百分点（现 90%，原 95%）：TEE-BLK-M 缺陷 5 个（+4）；"
        "smeared print 5 个（+4）"
    )
    # OTD 9/10 → 7/10.
    d = changes[Kpi.OTD]
    assert (d.previous, d.current, d.contributors) == (0.9, 0.7, [])
    assert d.delta == pytest.approx(-20)
    assert d.words.en == (
        f"On-time delivery {MINUS}20 pts (70%, was 90%), 3 late of 10 due (was 1 of 10)"
    )
    # Lead time p50: 1200 s → 2400 s.
    lt = changes[Kpi.LEAD_TIME_P50]
    assert (lt.unit, lt.previous, lt.current, lt.delta) == (Unit.SECONDS, 1200, 2400, 1200)
    assert lt.words.en == "Lead time p50 +20 min (40 min, was 20 min)"
    # Pack errors: 0 per 1,000 → 1000 · 2 / 200 = 10, all UNITS_MISSING.
    p = changes[Kpi.PACK_ERRORS]
    assert (p.unit, p.previous, p.current, p.delta) == (Unit.PER_1000, 0, 10, 10)
    assert [(c.kind, c.name, c.delta) for c in p.contributors] == [
        (ContributorKind.CODE, "UNITS_MISSING", 10)
    ]
    # Performance kept 0.9 at both stations: no change, nobody named.
    perf = changes[Kpi.PERFORMANCE]
    assert perf.delta == 0 and perf.contributors == []
    assert perf.words.en == "Performance ±0 pts (90%, was 90%)"


def test_a_station_working_more_at_the_lines_old_ratio_moves_nothing() -> None:
    """The mix rule: a part that kept the line's old ratio contributes nothing, however
    much more it worked; the part that fell below it takes the whole change."""
    before = elements(
        stations={
            "a": station(pbt_s=1000, apt_s=800),  # 0.8
            "b": station(pbt_s=1000, apt_s=800),  # 0.8; line 0.8
        }
    )
    after = elements(
        stations={
            "a": station(pbt_s=3000, apt_s=2400),  # 0.8, three times the hours
            "b": station(pbt_s=1000, apt_s=400),  # 0.4
        }
    )
    a = next(c for c in drift(after, before) if c.kpi is Kpi.AVAILABILITY)
    # Line: 2800 / 4000 = 0.7, −10 pts. b: (400 − 0.8·1000)/4000 − 0 = −0.1; a: 0.
    assert a.delta == pytest.approx(-10.0)
    assert [c.name for c in a.contributors] == ["b"]
    assert a.contributors[0].delta == pytest.approx(-10.0)


def test_a_kpi_with_nothing_to_compare_says_so() -> None:
    changes = {c.kpi: c for c in drift(_current(), elements())}
    oee = changes[Kpi.OEE]
    assert (oee.previous, oee.delta, oee.contributors) == (None, None, [])
    assert oee.words.en == "OEE: nothing to compare with in the previous period"
    assert oee.words.zh == "OEE：上一周期无数据可比"


# -- why late -------------------------------------------------------------------------------

# The period's start: 10:00 on the reference line (Asia/Shanghai), in the early shift.
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _config() -> LineConfig:
    config = load_line_config(REFERENCE_LINE)
    # No devices: every station is worked through the desk, by hand.
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    return config.model_copy(update={"stations": stations})


class Floor:
    """The hub and the operators, on a real gateway's store, at times the test sets."""

    def __init__(self, gw: Gateway, clock: ManualClock) -> None:
        self.gw = gw
        self.clock = clock
        self.svc: StationService = gw.stations

    def hub(self, when: float, topic: str, doc: dict[str, Any]) -> None:
        self.clock.at = at(when)
        self.gw.inbound.deliver([InboundMessage(topic, json.dumps(doc).encode())])

    def order(self, when: float, order_id: str, sku: str, ship_by: float) -> None:
        line = {"sku": sku, "qty": 1, "personalization": {"text": order_id}}
        doc = {"order_id": order_id, "ship_by": at(ship_by).isoformat(), "lines": [line]}
        self.hub(when, "in/orders", doc)

    def take(self, when: float, station: str) -> dict[str, Any]:
        self.clock.at = at(when)
        assert self.svc.next_task(station).ok
        task: dict[str, Any] | None = self.svc.view(station)["task"]
        assert task is not None, f"nothing to do at {station}"
        return task

    def start(self, when: float, station: str) -> None:
        self.clock.at = at(when)
        task = self.svc.view(station)["task"]
        assert task is not None
        if not task["confirmed"]:
            self.svc.scan(station, task["serial"])
        for m in task["materials"]:
            if m["scanned"] is None:
                self.svc.scan(station, m["suggested_lot"] or m["material"])
        assert self.svc.start(station).ok

    def complete(self, when: float, station: str) -> None:
        self.clock.at = at(when)
        task = self.svc.view(station)["task"]
        assert task is not None
        for i, _ in enumerate(task["checklist"]):
            self.svc.checklist(station, i, True)
        reply = self.svc.complete(station)
        assert reply.ok, reply.message

    def pack(self, when: float, station: str, end: float) -> None:
        """Take the next parcel at ``when`` (scanning its first unit starts it), weigh it
        right and confirm its label at ``end``."""
        task = self.take(when, station)
        assert task["serial"] is None
        for unit in task["units"]:
            self.svc.scan(station, unit["serial"])
        for m in task["materials"]:
            self.svc.scan(station, m["suggested_lot"] or m["material"])
        reply = self.svc.weight(station, task["expected_weight_g"])
        assert reply.ok, reply.message
        self.clock.at = at(end)
        assert self.svc.scan(station, reply.data["label_id"]).ok

    def late(self, order_id: str) -> LateOrder:
        row = self.gw.store.conn.execute(
            "SELECT ship_by, completed_at FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return LateOrder(order_id=order_id, ship_by=row[0], completed_at=row[1])


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[Floor]:
    clock = ManualClock(at(-3600))
    gw = Gateway(_config(), data_dir=tmp_path, clock=clock)
    gw.open()
    f = Floor(gw, clock)
    f.hub(-3600, "in/masterdata/catalog", json.loads(catalog_bytes()))
    f.hub(-3600, "in/masterdata/stock", stock_doc())
    for st, badge in (("dtg-1", "OP-1001"), ("emb-1", "OP-1003"), ("pack-1", "OP-1008")):
        assert gw.stations.login(st, badge).ok
    yield f
    gw.store.close()


def _no_red_caps() -> dict[str, Any]:
    doc = stock_doc()
    doc["items"] = [i for i in doc["items"] if i["material"] != "BLANK-CAP-RED"]
    return doc


def test_a_unit_scrapped_and_remade_and_the_queues_before_stations(floor: Floor) -> None:
    f = floor
    f.order(0, "A", "TEE-WHT-S", ship_by=1800)
    serial = f.take(600, "dtg-1")["serial"]
    f.start(600, "dtg-1")
    f.clock.at = at(900)
    assert f.svc.fail("dtg-1", "smeared print", "scrap").ok  # a replacement is made at 900
    replacement = f.take(960, "dtg-1")["serial"]
    assert replacement != serial
    f.start(975, "dtg-1")
    f.complete(1020, "dtg-1")  # 45 s: the standard time
    f.pack(3000, "pack-1", end=3030)  # packed at 3030, after its ship-by at 1800

    late = f.late("A")
    assert late.completed_at is not None
    found = causes(f.gw.core, late, until=at(3600))
    # Before pack-1: ready when its unit was done (1020), taken at 3000: 1980 s, 33 min.
    # Before dtg-1: the unit made at 0 and taken at 600, the replacement made at 900 and
    # taken at 960: 660 s, 11 min. The scrap: from the defect (900) to the replacement's
    # print done (1020): 2 min. Pack took 30 s against 20 s: under a minute, not named.
    assert [(c.kind, c.seconds, c.subject) for c in found] == [
        (CauseKind.QUEUE, 1980, "pack-1"),
        (CauseKind.QUEUE, 660, "dtg-1"),
        (CauseKind.SCRAP, 120, serial),
    ]
    said = why_late(f.gw.core, late, until=at(3600))
    assert [w.en for w in said] == [
        "queued 33 min before pack-1",
        "queued 11 min before dtg-1",
        f"unit {serial} scrapped at dtg-1 (smeared print) and remade: 2 min",
    ]
    assert [w.zh for w in said] == [
        "在 pack-1 前排队 33 分钟",
        "在 dtg-1 前排队 11 分钟",
        f"工件 {serial} 在 dtg-1 报废（smeared print）并重做：2 分钟",
    ]
    # As of 2500 (a report made again later for a period ending then): the parcel, taken at
    # 3000, was still waiting for pack-1 at the end, since 1020: 1480 s; what came after is
    # not looked at.
    found = causes(f.gw.core, late, until=at(2500))
    assert [(c.kind, c.seconds, c.subject) for c in found] == [
        (CauseKind.QUEUE, 1480, "pack-1"),
        (CauseKind.QUEUE, 660, "dtg-1"),
        (CauseKind.SCRAP, 120, serial),
    ]


def test_waiting_for_material_and_a_hold_and_still_open(floor: Floor) -> None:
    f = floor
    f.hub(-60, "in/masterdata/stock", _no_red_caps())
    f.order(0, "B", "CAP-EMB-RED", ship_by=3000)  # no red cap blank: it waits
    f.hub(1800, "in/masterdata/stock", stock_doc())  # blanks back: kitted at 1800
    f.take(1800, "emb-1")
    f.start(1800, "emb-1")
    f.clock.at = at(2000)
    assert f.svc.pause("emb-1", "thread break").ok
    f.clock.at = at(4400)
    assert f.svc.resume("emb-1").ok  # held 2400 s: 40 min
    # The period ends at 7200 with the cap still on the machine.

    late = f.late("B")
    assert late.completed_at is None
    found = causes(f.gw.core, late, until=at(7200))
    # Held 2000..4400 at emb-1; waited 0..1800 for BLANK-CAP-RED (its shortage alarm was up
    # then); the queue before emb-1 is all material wait, so none is left; open at 7200,
    # 4200 s (1 h 10 min) past its ship-by.
    assert [(c.kind, c.seconds, c.subject) for c in found] == [
        (CauseKind.HOLD, 2400, "emb-1"),
        (CauseKind.MATERIAL, 1800, "BLANK-CAP-RED"),
        (CauseKind.OPEN, 4200, None),
    ]
    said = why_late(f.gw.core, late, until=at(7200))
    assert [w.en for w in said] == [
        "held 40 min at emb-1: thread break",
        "waited 30 min for material BLANK-CAP-RED",
        "still open at the period's end, 1 h 10 min past its ship-by",
    ]
    assert [w.zh for w in said] == [
        "在 emb-1 停机 40 分钟：thread break",
        "等待物料 BLANK-CAP-RED 30 分钟",
        "周期结束时仍未完成，已超过发货时限 1 小时 10 分钟",
    ]
    # At the period's end before the stock came back, the wait runs to that end.
    early = causes(f.gw.core, late, until=at(1200))
    assert [(c.kind, c.seconds) for c in early] == [
        (CauseKind.MATERIAL, 1200),
        (CauseKind.OPEN, 0),  # not yet past its ship-by at 1200
    ]
    assert why_late(f.gw.core, late, until=at(1200))[1].en == "still open at the period's end"


def test_an_order_accepted_too_late_to_make_it(floor: Floor) -> None:
    f = floor
    # An embroidered cap: 150 s of embroidery and 20 s of packing at standard times, due
    # 60 s after it arrives.
    f.order(0, "C", "CAP-EMB-NAVY", ship_by=60)
    late = f.late("C")
    found = causes(f.gw.core, late, until=at(600))
    # Still in the queue before emb-1 at 600: 600 s; accepted 110 s short; open 540 s late.
    assert [(c.kind, c.seconds, c.subject) for c in found] == [
        (CauseKind.QUEUE, 600, "emb-1"),
        (CauseKind.ACCEPTED_LATE, 110, None),
        (CauseKind.OPEN, 540, None),
    ]
    assert [w.en for w in why_late(f.gw.core, late, until=at(600))] == [
        "queued 10 min before emb-1",
        "accepted with 1 min to its ship-by for 3 min of work",
        "still open at the period's end, 9 min past its ship-by",
    ]


def test_an_unknown_order_has_no_reasons(floor: Floor) -> None:
    late = LateOrder(order_id="NOPE", ship_by=at(0).isoformat(), completed_at=None)
    assert why_late(floor.gw.core, late, until=at(60)) == []


def test_bottleneck_result_is_json(floor: Floor) -> None:
    """What the report maker keeps: the models round-trip through JSON."""
    found = bottleneck(
        elements(stations={"emb-1": station(pbt_s=100, apt_s=90, adot_s=10)}),
        LineShape.of(floor.gw.core),
    )
    assert found is not None
    assert Bottleneck.model_validate_json(found.model_dump_json()) == found
    assert found.group == "embroider" and found.stations == ["emb-1"]
