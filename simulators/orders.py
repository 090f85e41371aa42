"""A seeded generator of e-commerce orders for a catalog, with the bad orders a hub can send."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

JsonDict = dict[str, Any]
_T = TypeVar("_T")

_DATA = Path(__file__).resolve().parent / "data"

# The order.rejected codes the generator provokes, one kind per bad order, in rotation.
BAD_KINDS = ("INVALID_JSON", "SCHEMA", "UNKNOWN_SKU", "QTY_OUT_OF_RANGE")

# Share of order lines per routing of the reference catalog; a routing not named here gets
# OTHER_ROUTING_SHARE. Within a routing the SKUs share equally.
ROUTING_SHARE = {"R-TEE-DTG": 0.45, "R-CAP-EMB": 0.12, "R-ENGRAVE": 0.22, "R-KIT": 0.21}
OTHER_ROUTING_SHARE = 0.1

_CHANNELS = (
    ("TM", "tmall", 0.35),
    ("JD", "jd", 0.25),
    ("DY", "douyin", 0.25),
    ("WX", "wechat", 0.15),
)
_CARRIERS = (("SF", 0.35), ("ZTO", 0.45), ("JD", 0.2))
_LINES = ((1, 0.72), (2, 0.21), (3, 0.07))
_QTY = ((1, 0.76), (2, 0.17), (3, 0.07))

_TEXTS = (
    "王芳",
    "李小龙",
    "生日快乐",
    "新年快乐 2027",
    "爱你一万年",
    "平安喜乐",
    "杭州 Hangzhou",
    "Best Dad 最棒的老爸",
    "张伟 & Anna",
    "Zoë",
    "José Müller",
    "Team 3 线",
    "Happy Birthday",
    "Class of 2026",
    "陈静",
    "Merry Christmas 圣诞快乐",
    "Love you, 妈妈",
    "OK 没问题",
)
_FONTS = ("KaiTi 楷体", "SimHei 黑体", "FangSong 仿宋", "Helvetica", "Brush Script", "Courier")
_THREADS = ("gold", "white", "silver", "black")
_ARTWORK = ("panda", "dragon", "lotus", "koi", "cat-meow", "west-lake", "mountain", "logo")
_GIFT_NOTES = ("圣诞快乐!", "Merry Christmas!", "送给最好的你", "Thank you 谢谢")
_UNKNOWN_SKUS = ("MUG-CERAMIC-11OZ", "TEE-PNK-XL", "HOODIE-GRY-M", "CAP-EMB-GREEN")

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = (*"伟芳娜敏静丽强磊洋艳勇军杰娟涛明超", "秀英", "晓东", "子涵", "雨桐", "浩然")
_LATIN_NAMES = ("Maria Santos", "Tom Becker", "Anna Kowalska", "Lucas Martin")
# (province, city, postcode, districts, streets)
_PLACES = (
    (
        "浙江省",
        "杭州市",
        "310012",
        ("西湖区", "滨江区", "余杭区"),
        ("文三路", "江南大道", "文一西路"),
    ),
    (
        "上海市",
        "上海市",
        "200120",
        ("浦东新区", "徐汇区", "静安区"),
        ("世纪大道", "漕溪北路", "南京西路"),
    ),
    ("北京市", "北京市", "100080", ("海淀区", "朝阳区"), ("中关村大街", "建国路")),
    ("广东省", "深圳市", "518057", ("南山区", "福田区"), ("科技园路", "深南大道")),
    ("广东省", "广州市", "510620", ("天河区", "越秀区"), ("体育西路", "环市东路")),
    ("四川省", "成都市", "610041", ("武侯区", "锦江区"), ("天府大道", "春熙路")),
    ("江苏省", "南京市", "210008", ("鼓楼区", "玄武区"), ("中山路", "北京东路")),
    ("湖北省", "武汉市", "430071", ("武昌区", "洪山区"), ("中南路", "珞喻路")),
)


@dataclass(frozen=True, slots=True)
class GeneratedOrder:
    """One message for ``in/orders`` and what the gateway should make of it."""

    order_id: str
    payload: bytes
    doc: JsonDict | None  # None when the payload is not JSON at all
    expected_error: str | None  # the order.rejected code it must provoke; None: a good order
    units: int

    @property
    def good(self) -> bool:
        return self.expected_error is None


def load_reference_catalog() -> JsonDict:
    """The reference line's catalog (shared/contract/reference-catalog.json)."""
    return _load("reference-catalog.json")


def load_reference_stock() -> JsonDict:
    """The reference line's stock snapshot (shared/contract/reference-stock.json)."""
    return _load("reference-stock.json")


def _load(name: str) -> JsonDict:
    doc: JsonDict = json.loads((_DATA / name).read_text(encoding="utf-8"))
    return doc


def bad_order_count(count: int, bad_rate: float) -> int:
    """How many of ``count`` orders are bad: the rate, but every kind once when there is room."""
    if count <= 0 or bad_rate <= 0:
        return 0
    return min(count, max(round(count * bad_rate), min(len(BAD_KINDS), count // 5)))


def generate_orders(
    catalog: Mapping[str, Any],
    stock: Mapping[str, Any],
    *,
    count: int,
    now: datetime,
    seed: int = 7,
    bad_rate: float = 0.08,
    respect_stock: bool = True,
    sku_weights: Mapping[str, float] | None = None,
    timezone: str = "Asia/Shanghai",
) -> list[GeneratedOrder]:
    """``count`` orders as the hub would release them at ``now``; the same inputs give the
    same orders. With ``respect_stock`` a line takes only what ``stock`` still holds after
    the lines before it, while some SKU fits at all (beyond that, and through scrap and
    rework, a material can still run short: the hub replenishes it)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return _Generator(catalog, stock, now, seed, respect_stock, sku_weights, timezone).run(
        count, bad_rate
    )


class OrderStream:
    """Orders one at a time, as customers place them, for a hub that keeps releasing after
    its first batch. The same inputs and the same ``now`` of each call give the same orders.

    A share ``bad_rate`` of them is bad, the kinds in rotation. Stock is not respected:
    over a long run the line uses up any snapshot, and the hub's WMS refills on shortage.
    ``first_number`` continues the numbering of a batch released before, so every order
    id stays unique."""

    def __init__(
        self,
        catalog: Mapping[str, Any],
        stock: Mapping[str, Any],
        *,
        now: datetime,
        seed: int = 7,
        bad_rate: float = 0.08,
        first_number: int = 1,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        if not 0.0 <= bad_rate <= 1.0:
            raise ValueError("bad_rate must be between 0 and 1")
        # Its own seed: the stream is not the batch's continuation draw for draw.
        self._gen = _Generator(catalog, stock, now, seed + 1, False, None, timezone)
        self._bad_rate = bad_rate
        self._number = first_number
        self._kinds = self._gen.rng.randrange(len(BAD_KINDS))

    def next(self, now: datetime) -> GeneratedOrder:
        """The next order, placed at ``now``."""
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        gen = self._gen
        gen.set_now(now)
        kind = None
        if gen.rng.random() < self._bad_rate:
            kind = BAD_KINDS[self._kinds % len(BAD_KINDS)]
            self._kinds += 1
        order = gen.one(self._number, kind)
        self._number += 1
        return order


class _Generator:
    def __init__(
        self,
        catalog: Mapping[str, Any],
        stock: Mapping[str, Any],
        now: datetime,
        seed: int,
        respect_stock: bool,
        sku_weights: Mapping[str, float] | None,
        timezone: str,
    ) -> None:
        self.rng = random.Random(seed)
        self.zone = ZoneInfo(timezone)
        self.now = now.astimezone(self.zone)
        self.respect_stock = respect_stock
        routings = {r["routing"]: r for r in catalog["routings"]}
        self.skus: dict[str, JsonDict] = {s["sku"]: s for s in catalog["skus"]}
        self.params: dict[str, list[str]] = {}
        for sku in self.skus.values():
            names: list[str] = []
            for op in routings[sku["routing"]]["operations"]:
                names.extend(p for p in op.get("params", []) if p not in names)
            self.params[sku["sku"]] = names
        self.weights = (
            dict(sku_weights) if sku_weights is not None else _default_weights(self.skus.values())
        )
        unknown = sorted(set(self.weights) - set(self.skus))
        if unknown:
            raise ValueError(f"SKUs not in the catalog: {', '.join(unknown)}")
        self.budget: dict[str, float] = {}
        for item in stock.get("items", []):
            self.budget[item["material"]] = self.budget.get(item["material"], 0.0) + float(
                item["qty"]
            )

    def set_now(self, now: datetime) -> None:
        self.now = now.astimezone(self.zone)

    def run(self, count: int, bad_rate: float) -> list[GeneratedOrder]:
        bad = bad_order_count(count, bad_rate)
        positions = set(self.rng.sample(range(count), bad)) if bad else set()
        first_kind = self.rng.randrange(len(BAD_KINDS))
        out: list[GeneratedOrder] = []
        kinds = 0
        for n in range(count):
            kind = None
            if n in positions:
                kind = BAD_KINDS[(first_kind + kinds) % len(BAD_KINDS)]
                kinds += 1
            out.append(self.one(n + 1, kind))
        return out

    def one(self, number: int, bad_kind: str | None) -> GeneratedOrder:
        """Order ``number``, placed now: bad of ``bad_kind``, or good when None."""
        prefix, channel = _pick(self.rng, [((p, c), w) for p, c, w in _CHANNELS])
        order_id = f"{prefix}{self.now:%y%m%d%H%M%S}{number:04d}"
        if bad_kind is not None:
            return self._bad(bad_kind, order_id, channel)
        doc = self._order(order_id, channel, reserve=True)
        return GeneratedOrder(order_id, _dump(doc), doc, None, _units(doc))

    # -- good orders -----------------------------------------------------------------

    def _order(self, order_id: str, channel: str, *, reserve: bool) -> JsonDict:
        rng = self.rng
        carrier = _pick(rng, list(_CARRIERS))
        tight = rng.random() < 0.08
        if tight:
            # Promised for the next truck: a few of these are late whatever the line does.
            ship_by = self.now + timedelta(minutes=rng.uniform(6, 20))
        else:
            ship_by = _round_up(self.now + timedelta(hours=rng.uniform(1.0, 9.0)), 15)
        express = carrier == "SF" and rng.random() < 0.5
        priority = rng.choice((7, 8, 9)) if (express or tight or rng.random() < 0.08) else 5
        lines = self._lines(reserve)
        return {
            "order_id": order_id,
            "revision": 1,
            "channel": channel,
            "placed_at": _iso(self.now - timedelta(minutes=rng.uniform(5, 600))),
            "ship_by": _iso(ship_by),
            "priority": priority,
            "carrier": carrier,
            "destination": self._destination(),
            "lines": lines,
        }

    def _lines(self, reserve: bool) -> list[JsonDict]:
        rng = self.rng
        wanted = _pick(rng, list(_LINES))
        lines: list[JsonDict] = []
        used: set[str] = set()
        for _ in range(wanted):
            picked = self._sku_and_qty(used, reserve)
            if picked is None:
                break
            sku, qty = picked
            used.add(sku)
            lines.append(
                {
                    "line_no": len(lines) + 1,
                    "sku": sku,
                    "qty": qty,
                    "personalization": self._personalization(sku),
                }
            )
        if not lines:
            # Nothing fits the stock any more: order anyway, the hub replenishes on shortage.
            sku = _pick(rng, list(self.weights.items()))
            lines.append(
                {"line_no": 1, "sku": sku, "qty": 1, "personalization": self._personalization(sku)}
            )
            self._take(sku, 1)
        return lines

    def _sku_and_qty(self, used: set[str], reserve: bool) -> tuple[str, int] | None:
        rng = self.rng
        qty = _pick(rng, list(_QTY))
        candidates = {s: w for s, w in self.weights.items() if s not in used and w > 0}
        while candidates:
            sku = _pick(rng, list(candidates.items()))
            for q in range(qty, 0, -1):
                if not self.respect_stock or self._fits(sku, q):
                    if reserve:
                        self._take(sku, q)
                    return sku, q
            del candidates[sku]
        return None

    def _fits(self, sku: str, qty: int) -> bool:
        return all(
            self.budget.get(b["material"], 0.0) >= float(b["qty"]) * qty - 1e-9
            for b in self.skus[sku].get("bom", [])
        )

    def _take(self, sku: str, qty: int) -> None:
        for b in self.skus[sku].get("bom", []):
            self.budget[b["material"]] = self.budget.get(b["material"], 0.0) - float(b["qty"]) * qty

    def _personalization(self, sku: str) -> JsonDict:
        rng = self.rng
        doc = self.skus[sku]
        out: JsonDict = {}
        for name in self.params[sku]:
            if name == "text":
                out[name] = rng.choice(_TEXTS)
            elif name == "font":
                out[name] = rng.choice(_FONTS)
            elif name == "thread_color":
                out[name] = rng.choice(_THREADS)
            elif name == "ink_profile":
                # A dark garment needs a white underbase: a different profile, so a setup.
                out[name] = "dark-underbase" if "-BLK-" in sku else "standard"
            elif name == "artwork":
                out[name] = f"artwork/{rng.choice(_ARTWORK)}-v{rng.randint(1, 3)}.png"
            elif name == "fixture":
                out[name] = f"FX-{sku.split('-')[0]}"
            else:
                out[name] = f"{name}-{rng.randint(1, 9)}"
        if not out and doc["routing"] == "R-KIT" and rng.random() < 0.4:
            out["gift_message"] = rng.choice(_GIFT_NOTES)
        return out

    def _destination(self) -> JsonDict:
        rng = self.rng
        province, city, postcode, districts, streets = rng.choice(_PLACES)
        if rng.random() < 0.06:
            name = rng.choice(_LATIN_NAMES)
        else:
            name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
        address = (
            f"{rng.choice(districts)}{rng.choice(streets)}{rng.randint(1, 999)}号"
            f"{rng.randint(1, 30)}幢{rng.randint(1, 28)}0{rng.randint(1, 6)}室"
        )
        return {
            "name": name,
            "country": "CN",
            "region": province,
            "city": city,
            "postcode": postcode,
            "address": address,
        }

    # -- bad orders ------------------------------------------------------------------

    def _bad(self, kind: str, order_id: str, channel: str) -> GeneratedOrder:
        rng = self.rng
        # Bad orders take no stock: the gateway must never execute them.
        doc = self._order(order_id, channel, reserve=False)
        if kind == "INVALID_JSON":
            text = _dump(doc)
            cut = text[: max(1, int(len(text) * rng.uniform(0.3, 0.8)))]
            return GeneratedOrder(order_id, cut, None, kind, 0)
        if kind == "SCHEMA":
            variant = rng.randrange(4)
            if variant == 0:
                del doc["ship_by"]
            elif variant == 1:
                doc["priority"] = "high"
            elif variant == 2:
                doc["lines"] = []
            else:
                doc["ship_by"] = "明天下午五点"
        elif kind == "UNKNOWN_SKU":
            unknown = [s for s in _UNKNOWN_SKUS if s not in self.skus]
            doc["lines"][-1]["sku"] = rng.choice(unknown)
            doc["lines"][-1]["personalization"] = {}
        elif kind == "QTY_OUT_OF_RANGE":
            doc["lines"][0]["qty"] = rng.choice((0, -1, 1001, 5000))
        else:
            raise ValueError(f"unknown bad order kind {kind}")
        return GeneratedOrder(order_id, _dump(doc), doc, kind, 0)


def _default_weights(skus: Any) -> dict[str, float]:
    by_routing: dict[str, list[str]] = {}
    for sku in skus:
        by_routing.setdefault(sku["routing"], []).append(sku["sku"])
    return {
        sku: ROUTING_SHARE.get(routing, OTHER_ROUTING_SHARE) / len(names)
        for routing, names in by_routing.items()
        for sku in names
    }


def _pick(rng: random.Random, weighted: Sequence[tuple[_T, float]]) -> _T:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _round_up(ts: datetime, minutes: int) -> datetime:
    ts = ts.replace(second=0, microsecond=0)
    return ts + timedelta(minutes=(-ts.minute) % minutes)


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="seconds")


def _dump(doc: JsonDict) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _units(doc: JsonDict) -> int:
    return sum(int(line["qty"]) for line in doc["lines"])
