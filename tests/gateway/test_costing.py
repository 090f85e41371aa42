"""order.costed: the cost of a hand-worked order, every second and every yuan of it
worked out here from the definitions (gateway/orderbook/costing.py's docstring), the rates
of the test's line.toml and the reference catalog's standard_cost; reported once, in the
transaction of order.completed, right after it.

The definitions: labour_s = Σ over every attempt at the order's tasks (failed ones too) of
(end − start) + its changeover (taken → started, when the station's setup value changed);
machine_s = the part of that at stations with a machine; setup_s = the changeovers.
Labour money = Σ seconds ÷ 3600 × the station's labour rate (a station's rate beats its
capability's, which beats the line's); machine money likewise over machine time; materials
= standard cost of what the shipped units and the parcel consumed; scrap = standard cost of
what the scrapped units consumed; total = the sum; each rounded to cents, half up.
Standard quantity = the BOM × the units shipped.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.config.load import load_line_config
from gateway.orderbook import costing
from gateway.orderbook.lookup import order_detail
from tests.clocks import ManualClock
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, stock_doc

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "cloud_sync" / "schemas"
EVENT_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "event.schema.json").read_text())
PROTOCOL = SCHEMAS / "hub-protocol.md"

# A Thursday, 10:00 in Shanghai: the early shift.
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)

COSTS_TOML = """
[costs]
currency = "{currency}"
labour_per_hour = 36.0
machine_per_hour = 12.0

[costs.capabilities.dtg_print]
labour_per_hour = 40.0
machine_per_hour = 18.0

[costs.stations.dtg-2]
machine_per_hour = 24.0

[costs.stations.pack-1]
labour_per_hour = 30.0
"""

# (labour, machine) per hour at each station of the scenario, by the rule: station beats
# capability beats the line. None: the station has no machine.
RATE: dict[str, tuple[float, float | None]] = {
    "dtg-1": (40.0, 18.0),  # dtg_print's both
    "dtg-2": (40.0, 24.0),  # dtg_print's labour, its own machine rate
    "kit-1": (36.0, None),  # the line's labour
    "pack-1": (30.0, None),  # its own labour
}

CATALOG: dict[str, Any] = json.loads(catalog_bytes())
STANDARD_COST: dict[str, float] = {
    m["material"]: float(m["standard_cost"]) for m in CATALOG["materials"]
}
BOM: dict[str, list[dict[str, Any]]] = {s["sku"]: s["bom"] for s in CATALOG["skus"]}


@dataclass(frozen=True)
class Attempt:
    """One attempt of the scenario, as the operators do it below (seconds from T0)."""

    sku: str | None  # None: the order's parcel
    station: str
    op: str
    taken: float
    started: float
    ended: float
    changeover: bool  # the station's setup value changed: taken → started is setup
    shipped: bool  # its unit shipped (the parcel always does)


# Order X: one TEE-WHT-S (print, then pack) and one KIT-XMAS-A (assemble, then pack).
ATTEMPTS = [
    # The tee at dtg-1: dtg-1's first job, ink profile "vivid": a changeover. Scrapped.
    Attempt("TEE-WHT-S", "dtg-1", "print", 10, 40, 100, changeover=True, shipped=False),
    # The kit at kit-1: a rework (its materials were consumed), then done.
    Attempt("KIT-XMAS-A", "kit-1", "assemble", 50, 60, 90, changeover=False, shipped=True),
    Attempt("KIT-XMAS-A", "kit-1", "assemble", 50, 95, 150, changeover=False, shipped=True),
    # The replacement tee at dtg-2, that station's first job: a changeover too.
    Attempt("TEE-WHT-S", "dtg-2", "print", 110, 120, 200, changeover=True, shipped=True),
    # The parcel at pack-1: its first unit scanned at 300, its label confirmed at 330.
    Attempt(None, "pack-1", "pack", 300, 300, 330, changeover=False, shipped=True),
]
SHIPPED = {"TEE-WHT-S": 1, "KIT-XMAS-A": 1}


def cents(x: float) -> float:
    return float(Decimal(repr(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# The parcel's containers (contract 1.1: chosen for its units, not the BOM's one per unit).
# The kit is 250×180×80 mm and rigid: its BOM's CARTON-S (200×150×100) is too short and a
# mailer takes no rigid item. A CARTON-M (300×220×150, 2.4) holds the kit with the tee
# (260×200×15) flat on it, cheaper than a POLYBAG for the tee and a CARTON-M for the kit.
PARCEL = {"CARTON-M": 1.0}
CONTAINERS = {m["material"] for m in CATALOG["materials"] if "container" in m}


def consumed(a: Attempt) -> dict[str, float]:
    """What an attempt consumed: its unit's BOM at its operation; the parcel: the pack
    lines of every unit shipped that are not containers, and its containers."""
    out: dict[str, float] = defaultdict(float)
    skus = [a.sku] if a.sku is not None else [s for s, n in SHIPPED.items() for _ in range(n)]
    for sku in skus:
        for line in BOM[sku]:
            if line["op"] == a.op and (a.sku is not None or line["material"] not in CONTAINERS):
                out[line["material"]] += line["qty"]
    if a.sku is None:
        for material, qty in PARCEL.items():
            out[material] += qty
    return out


def seconds(a: Attempt) -> float:
    return (a.ended - a.started) + ((a.started - a.taken) if a.changeover else 0.0)


@dataclass
class Money:
    labour: float = 0.0
    machine: float = 0.0
    materials: float = 0.0
    scrap: float = 0.0

    def doc(self) -> dict[str, float]:
        parts = {
            "labour": cents(self.labour),
            "machine": cents(self.machine),
            "materials": cents(self.materials),
            "scrap": cents(self.scrap),
        }
        return {**parts, "total": cents(sum(parts.values()))}


def money_of(a: Attempt, price: dict[str, float | None]) -> Money:
    labour_rate, machine_rate = RATE[a.station]
    m = Money(labour=seconds(a) / 3600 * labour_rate)
    if machine_rate is not None:
        m.machine = seconds(a) / 3600 * machine_rate
    value = sum((price[k] or 0.0) * q for k, q in consumed(a).items())
    if a.shipped:
        m.materials = value
    else:
        m.scrap = value
    return m


def expected(price: dict[str, float | None], currency: str) -> dict[str, Any]:
    """order.costed's data for ATTEMPTS, from the definitions."""
    used: dict[str, float] = defaultdict(float)
    for a in ATTEMPTS:
        for k, q in consumed(a).items():
            used[k] += q
    standard: dict[str, float] = defaultdict(float)
    for sku, n in SHIPPED.items():
        for line in BOM[sku]:
            standard[line["material"]] += line["qty"] * n
    order, parcel = Money(), Money()
    own: dict[str, Money] = defaultdict(Money)
    for a in ATTEMPTS:
        m = money_of(a, price)
        for target in (order, parcel if a.sku is None else own[a.sku]):
            target.labour += m.labour
            target.machine += m.machine
            target.materials += m.materials
            target.scrap += m.scrap
    units = sum(SHIPPED.values())
    by_sku = {}
    for sku, n in SHIPPED.items():
        share = n / units
        mine = Money(
            own[sku].labour + share * parcel.labour,
            own[sku].machine + share * parcel.machine,
            own[sku].materials + share * parcel.materials,
            own[sku].scrap + share * parcel.scrap,
        )
        by_sku[sku] = {"share": share, "units": n, **mine.doc()}
    names = sorted(set(used) | set(standard))
    return {
        "labour_s": sum(seconds(a) for a in ATTEMPTS),
        "machine_s": sum(seconds(a) for a in ATTEMPTS if RATE[a.station][1] is not None),
        "setup_s": sum(a.started - a.taken for a in ATTEMPTS if a.changeover),
        "units_scrapped": 1,
        "materials": [{"material": k, "qty": used[k], "standard_qty": standard[k]} for k in names],
        "cost": {**order.doc(), "currency": currency},
        "uncosted": [k for k in names if price[k] is None],
        "by_sku": by_sku,
    }


# -- the line ---------------------------------------------------------------------------


def without_costs(text: str) -> str:
    """line.toml without its [costs] tables (the test puts its own)."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("["):
            skipping = line.startswith("[costs")
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def line_folder(tmp_path: Path, costs: str) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(REFERENCE_LINE, folder, ignore=shutil.ignore_patterns("*.db*"))
    text = (REFERENCE_LINE / "line.toml").read_text(encoding="utf-8")
    (folder / "line.toml").write_text(without_costs(text) + costs, encoding="utf-8")
    return folder


class Floor:
    """The hub and the operators, on a real gateway with a clock the test sets."""

    def __init__(self, gw: Gateway, clock: ManualClock) -> None:
        self.gw = gw
        self.clock = clock
        self.svc = gw.stations

    def at(self, seconds: float) -> None:
        self.clock.at = T0 + timedelta(seconds=seconds)

    def hub(self, at: float, topic: str, doc: dict[str, Any]) -> None:
        self.at(at)
        self.gw.inbound.deliver([InboundMessage(topic, json.dumps(doc).encode())])

    def take(self, at: float, station: str) -> dict[str, Any]:
        self.at(at)
        self.svc.next_task(station)
        task: dict[str, Any] | None = self.svc.view(station)["task"]
        assert task is not None, f"nothing to do at {station}"
        return task

    def start(self, at: float, station: str) -> None:
        """Scan the traveller (when asked) and the materials, and start."""
        self.at(at)
        task = self.svc.view(station)["task"]
        assert task is not None
        if not task["confirmed"]:
            self.svc.scan(station, task["serial"])
        for m in task["materials"]:
            if m["scanned"] is None:
                self.svc.scan(station, m["suggested_lot"] or m["material"])
        reply = self.svc.start(station)
        assert reply.ok, reply.message

    def complete(self, at: float, station: str) -> None:
        self.at(at)
        task = self.svc.view(station)["task"]
        assert task is not None
        for i, _ in enumerate(task["checklist"]):
            self.svc.checklist(station, i, True)
        reply = self.svc.complete(station)
        assert reply.ok, reply.message

    def fail(self, at: float, station: str, disposition: str) -> None:
        self.at(at)
        reply = self.svc.fail(station, "smeared", disposition)
        assert reply.ok, reply.message

    def pack(self, station: str, at: float, weigh: float, end: float) -> None:
        task = self.take(at, station)
        assert task["serial"] is None
        for unit in task["units"]:
            self.svc.scan(station, unit["serial"])
        for m in task["materials"]:
            self.svc.scan(station, m["suggested_lot"] or m["material"])
        self.at(weigh)
        reply = self.svc.weight(station, task["expected_weight_g"])
        assert reply.ok, reply.message
        self.at(end)
        reply = self.svc.scan(station, reply.data["label_id"])
        assert reply.ok, reply.message

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        out = [json.loads(r.payload) for r in self.gw.outbox.peek(0, 1_000_000)]
        return [e for e in out if type_ is None or e["type"] == type_]


def make_floor(tmp_path: Path, currency: str, catalog: dict[str, Any]) -> Floor:
    clock = ManualClock(T0 - timedelta(hours=1))
    config = load_line_config(line_folder(tmp_path, COSTS_TOML.format(currency=currency)))
    gw = Gateway(config, data_dir=tmp_path / "data", clock=clock)
    gw.open()
    f = Floor(gw, clock)
    f.hub(-3600, "in/masterdata/catalog", catalog)
    f.hub(-3600, "in/masterdata/stock", stock_doc())
    for station, badge in (
        ("dtg-1", "OP-1001"),
        ("dtg-2", "OP-1002"),
        ("kit-1", "OP-1005"),
        ("pack-1", "OP-1008"),
    ):
        gw.stations.login(station, badge)
    return f


def work_order_x(f: Floor) -> None:
    """ATTEMPTS, done at the stations in time order."""
    lines = [
        {"sku": "TEE-WHT-S", "qty": 1, "personalization": {"text": "X", "ink_profile": "vivid"}},
        {"sku": "KIT-XMAS-A", "qty": 1},
    ]
    ship_by = (T0 + timedelta(hours=6)).isoformat()
    f.hub(0, "in/orders", {"order_id": "X", "ship_by": ship_by, "lines": lines})
    assert f.take(10, "dtg-1")["order_id"] == "X"
    f.start(40, "dtg-1")
    assert f.take(50, "kit-1")["order_id"] == "X"
    f.start(60, "kit-1")
    f.fail(90, "kit-1", "rework")
    f.start(95, "kit-1")
    f.fail(100, "dtg-1", "scrap")
    assert f.take(110, "dtg-2")["order_id"] == "X"  # the replacement unit
    f.start(120, "dtg-2")
    f.complete(150, "kit-1")
    f.complete(200, "dtg-2")
    f.pack("pack-1", 300, weigh=320, end=330)


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[Floor]:
    f = make_floor(tmp_path, "CNY", CATALOG)
    yield f
    f.gw.store.close()


def catalog_without_cost(material: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(catalog_bytes())
    doc["version"] = "ref-1-no-cost"
    for m in doc["materials"]:
        if m["material"] == material:
            del m["standard_cost"]
    return doc


# -- the figures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "missing"),
    [
        ("CNY", None),  # every material priced
        ("CNY", "GIFTBOX-XMAS"),  # one without a standard cost: 0 and named
        ("USD", None),  # rates in USD, catalog in CNY: no material can be priced
    ],
)
def test_a_hand_worked_order_costs_what_the_definitions_say(
    tmp_path: Path, currency: str, missing: str | None
) -> None:
    catalog = CATALOG if missing is None else catalog_without_cost(missing)
    f = make_floor(tmp_path, currency, catalog)
    try:
        work_order_x(f)
        [event] = f.events("order.costed")
    finally:
        f.gw.store.close()
    price: dict[str, float | None] = {
        k: (None if k == missing or currency != CATALOG["currency"] else v)
        for k, v in STANDARD_COST.items()
    }
    want = expected(price, currency)
    assert event["data"] == want
    # The scenario as told: 90 + 30 + 55 + 90 + 30 s of work, 40 s of it changeovers,
    # the two prints (180 s) on machines; two blanks and two kits' parts used for one each.
    assert (want["labour_s"], want["machine_s"], want["setup_s"]) == (295, 180, 40)
    used = {m["material"]: (m["qty"], m["standard_qty"]) for m in want["materials"]}
    assert used["BLANK-TEE-WHT-S"] == (2, 1)
    assert used["LIPSTICK-R01"] == (2, 1)
    # The BOM's containers are the standard; the parcel used the container chosen for it.
    assert used["POLYBAG"] == (0, 1)
    assert used["CARTON-M"] == (1, 0)
    if missing is None and currency == "CNY":
        assert want["uncosted"] == []
        assert want["cost"]["materials"] > 0 and want["cost"]["scrap"] > 0
    elif missing is not None:
        assert want["uncosted"] == [missing]
    else:
        assert want["uncosted"] == sorted(used)
        assert want["cost"]["materials"] == want["cost"]["scrap"] == 0


# -- the event ---------------------------------------------------------------------------


def contract_row(type_: str) -> str:
    """The ``data`` column of ``type_``'s row in hub-protocol.md's event tables."""
    for line in PROTOCOL.read_text().splitlines():
        cells = line.split("|")
        if len(cells) > 3 and cells[1].strip() == f"`{type_}`":
            return cells[-2]
    raise AssertionError(f"{type_} is not in the contract")


def contract_shape(type_: str) -> dict[str, set[str] | None]:
    """Each field of ``type_``'s data, with the keys of its objects when the contract names
    them (``materials`` (list of `{"material", …}`))."""
    out: dict[str, set[str] | None] = {}
    # The row ends in words on where the money comes from ("from the line's rates and
    # the catalog's `standard_cost`"): a source, not a field.
    fields = contract_row(type_).split(" from ")[0]
    for name, inner in re.findall(r"`([a-z_]+)`(?: \((?:list of )?`\{([^}]*)\}`\))?", fields):
        out[name] = set(re.findall(r'"([a-z_]+)"', inner)) if inner else None
    return out


def test_order_costed_follows_order_completed_in_its_transaction(floor: Floor) -> None:
    work_order_x(floor)
    events = floor.events()
    [completed] = [e for e in events if e["type"] == "order.completed"]
    [costed] = [e for e in events if e["type"] == "order.costed"]
    # Written in the same transaction, right after it: the next seq, the same instant.
    assert costed["seq"] == completed["seq"] + 1
    assert (costed["ts"], costed["order_id"]) == (completed["ts"], "X")
    jsonschema.validate(costed, EVENT_SCHEMA, format_checker=jsonschema.FormatChecker())
    shape = contract_shape("order.costed")
    data = costed["data"]
    # The contract's fields, and the two 1.1's open models allow: uncosted, by_sku.
    assert set(data) == set(shape) | {"uncosted", "by_sku"}
    assert shape["materials"] == {"material", "qty", "standard_qty"}
    assert all(set(m) == shape["materials"] for m in data["materials"])
    assert shape["cost"] == {"labour", "machine", "materials", "scrap", "total", "currency"}
    assert set(data["cost"]) == shape["cost"]
    assert all(
        set(part) == {"share", "units", "labour", "machine", "materials", "scrap", "total"}
        for part in data["by_sku"].values()
    )
    # Kept as reported (the reports' cost by SKU reads it).
    store = floor.gw.store
    row = store.one("SELECT costed_at, doc FROM order_costs WHERE order_id = 'X'")
    assert row is not None
    assert json.loads(row["doc"]) == data
    assert row["costed_at"] == completed["ts"]


def test_the_lookup_shows_the_cost_once_known(floor: Floor) -> None:
    core = floor.gw.core
    work_order_x(floor)
    detail = order_detail(core, None, "X")
    assert detail is not None
    [costed] = floor.events("order.costed")
    assert detail.cost is not None
    assert detail.cost.model_dump() == costed["data"]["cost"]


def test_an_order_not_yet_packed_has_no_cost(floor: Floor) -> None:
    floor.hub(
        0,
        "in/orders",
        {"order_id": "Y", "ship_by": T0.isoformat(), "lines": [{"sku": "KIT-XMAS-A", "qty": 1}]},
    )
    detail = order_detail(floor.gw.core, None, "Y")
    assert detail is not None and detail.cost is None
    assert floor.events("order.costed") == []


def test_a_costing_failure_never_stops_the_parcel(
    floor: Floor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(core: object, order_id: str) -> costing.OrderCost:
        raise ValueError("a bug in the costing")

    monkeypatch.setattr(costing, "cost_order", broken)
    work_order_x(floor)
    # The order is completed and reported; its costing is taken back alone.
    assert [e["order_id"] for e in floor.events("order.completed")] == ["X"]
    assert floor.events("order.costed") == []
    assert floor.gw.store.count("SELECT count(*) FROM order_costs") == 0
    row = floor.gw.store.one("SELECT status FROM orders WHERE order_id = 'X'")
    assert row is not None and row["status"] == "completed"
