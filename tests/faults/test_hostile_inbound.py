"""Malformed and hostile inbound payloads, generated with hypothesis, through the real broker
into a real gateway process: wrong types, huge strings, deep nesting, invalid UTF-8, NaN,
lone surrogates, control characters, numbers no double holds, oversized personalisation,
replays, on every inbound topic.

What each one must get follows from the hub contract (/work/shared/contract/hub-protocol.md,
"Inbound: orders"): on ``in/orders`` every order that is not valid JSON, breaks the schema or
names an unknown SKU gets exactly one ``order.rejected`` per message that carried it, with
machine-readable ``errors`` (codes INVALID_JSON, SCHEMA, QTY_OUT_OF_RANGE, UNKNOWN_SKU …),
``raw_ref`` pointing at the raw payload the gateway keeps (its ``rejections`` table) and the
top-level ``order_id`` when it could be read; good orders beside them in an array are
accepted once. What is no JSON a line can take is named field by field, so that it costs
only its own order: by I-JSON (RFC 7493) a lone UTF-16 surrogate is no text and an integer
beyond ±(2**53 − 1) no interoperable number; RFC 8259 has no NaN or Infinity; and the
line's text holds no C0 control character but tab, line feed and carriage return (README,
"Contract notes"). A refused catalog raises an alarm; nothing but an order is answered with
``order.rejected``. After each payload the gateway is alive, its database is intact, every
order and task is in a legal state, and the next good order is accepted.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Mosquitto, free_port, mosquitto_binary
from tests.faults.report import last_committed_seq
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient

DATA = ROOT / "simulators" / "data"
EVENT_SCHEMA = json.loads((ROOT / "cloud_sync" / "schemas" / "event.schema.json").read_text())
ORDER_STATES = {"released", "waiting_material", "completed", "cancelled"}
TASK_STATES = {
    "blocked", "ready", "dispatched", "running", "paused", "done", "cancelled", "scrapped",
}  # fmt: skip
SHIP_BY = "2030-01-01T10:00:00+08:00"
_ids = itertools.count()  # order ids unique for the gateway's life: H-0, H-1, ...


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()  # NaN and Infinity, as a sloppy hub sends


def _parse(payload: bytes) -> Any:
    """The payload as JSON text in UTF-8 (RFC 8259, 8.1); ValueError if it is not. NaN and
    lone surrogates parse: they are judged value by value (_unfit)."""
    return json.loads(payload.decode("utf-8"))


_SAFE_INT = 2**53 - 1  # I-JSON (RFC 7493, 2.2)
_TEXT_CONTROLS = {"\t", "\n", "\r"}


def _unfit(doc: Any) -> frozenset[str]:
    """The error codes the wire's rules give ``doc``'s values: INVALID_JSON for a number that
    is no JSON or no double, SCHEMA for a string (or field name) that is no text."""
    codes: set[str] = set()
    todo = [doc]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            todo.extend(value.values())
            todo.extend(value.keys())
        elif isinstance(value, list):
            todo.extend(value)
        elif isinstance(value, float | int) and not isinstance(value, bool):
            if abs(value) > _SAFE_INT if isinstance(value, int) else not math.isfinite(value):
                codes.add("INVALID_JSON")
        elif isinstance(value, str) and any(
            0xD800 <= ord(c) <= 0xDFFF or (ord(c) < 0x20 and c not in _TEXT_CONTROLS) for c in value
        ):
            codes.add("SCHEMA")
    return frozenset(codes)


# --- what the hub sends, and what the contract says it must get -------------------------


@dataclass(frozen=True)
class Rejected:
    """An order the gateway must reject: the codes of its errors are one of ``codes``, each
    field in ``fields`` is named by an error and no error names another; its top-level
    ``order_id`` is ``order_id`` when ``readable``."""

    codes: tuple[frozenset[str], ...]
    fields: frozenset[str] = frozenset()
    order_id: str | None = None
    readable: bool = False
    in_array: bool = False  # it came in an array of several: then it is kept alone,
    item: Any = None  # as this


@dataclass(frozen=True)
class Accepted:
    order_id: str


@dataclass(frozen=True)
class Case:
    topic: str
    payload: bytes
    # in/orders: what each order of the message gets, in order; other topics: None.
    orders: list[Rejected | Accepted] | None = field(default=None)


def _one(*codes: str) -> tuple[frozenset[str], ...]:
    return tuple(frozenset({c}) for c in codes)


def not_json(payload: bytes) -> bool:
    try:
        _parse(payload)
    except (ValueError, RecursionError):
        return True
    return False


def expect_for_any_json(payload: bytes) -> list[Rejected | Accepted]:
    """``payload`` carries no order at all: one rejection for a message that is not JSON,
    else one per item of an array (one for an empty array, which holds no order): SCHEMA,
    or what the wire's rules give its values."""
    if not_json(payload):
        return [Rejected(_one("INVALID_JSON"), readable=True)]
    doc = _parse(payload)
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        return [Rejected(_one("SCHEMA"))]
    several = len(items) > 1
    return [
        Rejected((_unfit(item) or frozenset({"SCHEMA"}),), in_array=several, item=item)
        for item in items
    ]


MISSING = object()  # the key is left out


def _good_line(sku: str, qty: int) -> dict[str, Any]:
    return {"sku": sku, "qty": qty, "personalization": {"text": "ok"}}


_good_lines = st.lists(
    st.builds(_good_line, st.sampled_from(["PEN-ENG", "TEE-WHT-S"]), st.integers(1, 2)),
    min_size=1,
    max_size=2,
)
# (field, code, bad values) per the contract's order.schema.json: each value breaks it.
_ORDER_DEFECTS: list[tuple[str, str, list[Any]]] = [
    ("order_id", "SCHEMA", [MISSING, "", "x" * 65, "has space", "订单", 12, None]),
    ("ship_by", "SCHEMA", [MISSING, "yesterday", "", 1893456000, None, "2030-01-01T10:00:00",
                           "2030-13-01T10:00:00+08:00"]),
    ("priority", "SCHEMA", [10, -1, "9", 1.5, True, None]),
    ("revision", "SCHEMA", [0, -5, "2", 1.5, None]),
    ("lines", "SCHEMA", [MISSING, [], {}, "PEN-ENG", None, [_good_line("PEN-ENG", 1)] * 201]),
]  # fmt: skip
_LINE_DEFECTS: list[tuple[str, str, list[Any]]] = [
    ("qty", "QTY_OUT_OF_RANGE", [0, -3, 1001, 10**12]),
    ("qty", "SCHEMA", [MISSING, "1", 1.5, None, True]),
    ("sku", "SCHEMA", [MISSING, "", "has space", 12, "x" * 65, None]),
    ("personalization", "SCHEMA", [{"a": {"b": 1}}, {"a": [1]}, "text",
                                   {f"k{i}": 1 for i in range(33)}]),
]  # fmt: skip


def _set(doc: dict[str, Any], key: str, value: Any) -> None:
    if value is MISSING:
        doc.pop(key, None)
    else:
        doc[key] = value


@st.composite
def bad_orders(draw: st.DrawFn) -> tuple[dict[str, Any], Rejected]:
    """An order that would be accepted but for one to three planted schema defects, or an
    unknown SKU (checked against the catalog only once the order is well formed)."""
    order_id = f"H-{next(_ids)}"
    doc: dict[str, Any] = {"order_id": order_id, "ship_by": SHIP_BY, "lines": draw(_good_lines)}
    if draw(st.booleans()):  # catalog level: the schema holds, the SKU is unknown
        i = draw(st.integers(0, len(doc["lines"]) - 1))
        doc["lines"][i] = {**doc["lines"][i], "sku": draw(st.sampled_from(["NOPE", "TEE-XXL"]))}
        expect = Rejected(
            _one("UNKNOWN_SKU"), frozenset({f"lines.{i}.sku"}), order_id, readable=True
        )
        return doc, expect
    codes: set[str] = set()
    fields: set[str] = set()
    picks = draw(st.sets(st.integers(0, len(_ORDER_DEFECTS) + len(_LINE_DEFECTS) - 1),
                         min_size=1, max_size=3))  # fmt: skip
    line_defects = [
        _LINE_DEFECTS[p - len(_ORDER_DEFECTS)] for p in picks if p >= len(_ORDER_DEFECTS)
    ]
    for p in sorted(p for p in picks if p < len(_ORDER_DEFECTS)):
        name, code, values = _ORDER_DEFECTS[p]
        _set(doc, name, draw(st.sampled_from(values)))
        codes.add(code)
        fields.add(name)
    lines = doc.get("lines")
    if line_defects and isinstance(lines, list) and lines and len(lines) <= 200:
        planted: set[tuple[int, str]] = set()
        for name, code, values in line_defects:
            i = draw(st.integers(0, len(lines) - 1))
            if (i, name) in planted:
                continue  # a second defect of the same field would replace the first
            planted.add((i, name))
            line = dict(lines[i])
            _set(line, name, draw(st.sampled_from(values)))
            lines[i] = line
            codes.add(code)
            fields.add(f"lines.{i}.{name}")
    elif line_defects and not fields:  # the lines themselves are gone: break one at the top
        doc["priority"] = 10
        codes.add("SCHEMA")
        fields.add("priority")
    readable = "order_id" not in fields
    return doc, Rejected((frozenset(codes),), frozenset(fields), order_id, readable)


_E400 = "@1e400@"  # written as the number 1e400, which Python reads as infinity
_no_number = st.sampled_from([float("nan"), float("inf"), float("-inf"), _E400])
_no_integer = st.sampled_from([2**53, -(2**53), 10**30])
_no_text = st.one_of(
    st.just("Love \ud83d"),  # half an emoji, as a JavaScript shop cuts one
    st.characters(categories=["Cs"]).map(lambda c: f"x{c}y"),  # any lone surrogate
    st.characters(max_codepoint=0x1F, exclude_characters="\t\n\r").map(lambda c: f"a{c}"),
)
MAX_PERSONALIZATION = 2048  # the line's default (station_configs/README.md)
# (field, code, values): each value breaks the wire's rules, or the line's length limit.
_UNFIT: list[tuple[str, str, st.SearchStrategy[Any]]] = [
    ("lines.0.personalization.text", "SCHEMA", _no_text),
    ("lines.0.personalization.artwork", "INVALID_JSON", _no_number),
    ("lines.0.qty", "INVALID_JSON", _no_number | _no_integer),
    ("destination.name", "SCHEMA", _no_text),
    ("revision", "INVALID_JSON", _no_integer),
    ("order_id", "SCHEMA", _no_text.map(lambda t: f"H-{t}")),
    ("channel", "SCHEMA", _no_text),
]
_too_long = st.integers(MAX_PERSONALIZATION + 1, 20_000).map(lambda n: "长" * n)


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    at: Any = doc
    for key in parents:
        at = at[int(key)] if key.isdigit() else at.setdefault(key, {})
    at[last] = value


def _written(docs: Any) -> bytes:
    return _dumps(docs).replace(f'"{_E400}"'.encode(), b"1e400")


@st.composite
def unfit_orders(draw: st.DrawFn) -> tuple[dict[str, Any], Rejected]:
    """A good order but for one to three values no line takes: each is refused with its
    field and code (all wire problems, or else the personalisation that is too long)."""
    order_id = f"H-{next(_ids)}"
    doc: dict[str, Any] = {"order_id": order_id, "ship_by": SHIP_BY,
                           "lines": [_good_line("PEN-ENG", 1)]}  # fmt: skip
    picks = draw(st.sets(st.integers(0, len(_UNFIT) - 1), max_size=3))
    codes: set[str] = set()
    fields: set[str] = set()
    for p in sorted(picks):
        name, code, values = _UNFIT[p]
        _put(doc, name, draw(values))
        codes.add(code)
        fields.add(name)
    if not picks:
        doc["lines"][0]["personalization"]["text"] = draw(_too_long)
        codes, fields = {"TOO_LONG"}, {"lines.0.personalization.text"}
    item = json.loads(_written(doc))  # as the gateway reads it: 1e400 is infinity
    readable = "order_id" not in fields
    return item, Rejected((frozenset(codes),), frozenset(fields), order_id, readable, item=item)


def _messages(
    draw: st.DrawFn, bad_orders: st.SearchStrategy[tuple[dict[str, Any], Rejected]]
) -> Case:
    """One bad order, or an array of bad and good ones (each bad one rejected, each good
    one accepted: one bad order in an array does not reject the others)."""
    if draw(st.booleans()):
        doc, expect = draw(bad_orders)
        return Case("in/orders", _written(doc), [expect])
    docs: list[Any] = []
    expects: list[Rejected | Accepted] = []
    for bad in draw(st.lists(st.booleans(), min_size=2, max_size=4)):
        if bad:
            doc, expect = draw(bad_orders)
            docs.append(doc)
            expects.append(Rejected(expect.codes, expect.fields, expect.order_id,
                                    expect.readable, in_array=True, item=doc))  # fmt: skip
        else:
            order_id = f"H-{next(_ids)}"
            docs.append({"order_id": order_id, "ship_by": SHIP_BY, "lines": draw(_good_lines)})
            expects.append(Accepted(order_id))
    return Case("in/orders", _written(docs), expects)


@st.composite
def order_messages(draw: st.DrawFn) -> Case:
    """Orders that break the schema or name an unknown SKU, alone or among good ones."""
    return _messages(draw, bad_orders())


@st.composite
def unfit_messages(draw: st.DrawFn) -> Case:
    """An unfit order alone or among good ones: it costs only itself."""
    return _messages(draw, unfit_orders())


_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
_garbage = st.one_of(
    st.binary(max_size=2000).filter(not_json),  # garbage, invalid UTF-8
    _json.map(_dumps),  # any JSON (or NaN), wrong types
    st.integers(10_000, 1_500_000).map(lambda n: _dumps({"order_id": "X" * n, "lines": []})),
)
_deep = st.integers(500, 200_000).map(lambda n: b"[" * n + b"]" * n)


def _deep_case(payload: bytes) -> Case:
    # Valid JSON too deep for a parser may be refused as INVALID_JSON; parsed, it is an array
    # holding one thing that is not an order: SCHEMA. Either way, one rejection.
    return Case("in/orders", payload, [Rejected(_one("INVALID_JSON", "SCHEMA"))])


_masterdata_topics = st.sampled_from(["in/cancel", "in/masterdata/catalog", "in/masterdata/stock"])


@st.composite
def unfit_masterdata(draw: st.DrawFn) -> Case:
    """The reference catalog or stock with one value no line takes: refused whole, with an
    alarm (infinite stock would never run short; a name with U+0000 would reach the hub)."""
    kind = draw(st.sampled_from(["catalog", "stock"]))
    doc = json.loads((DATA / f"reference-{kind}.json").read_bytes())
    if kind == "stock":
        item = draw(st.sampled_from(doc["items"]))
        fields = [("qty", _no_number | _no_integer), ("lot", _no_text), ("material", _no_text)]
        key, values = draw(st.sampled_from(fields))
    else:
        item = draw(st.sampled_from(doc["skus"]))
        fields = [("unit_weight_g", _no_number | _no_integer), ("name", _no_text),
                  ("routing", _no_text)]  # fmt: skip
        key, values = draw(st.sampled_from(fields))
    item[key] = draw(values)
    return Case(f"in/masterdata/{kind}", _written(doc))


_cases = st.one_of(
    order_messages(),
    unfit_messages(),
    _garbage.map(lambda p: Case("in/orders", p, expect_for_any_json(p))),
    _deep.map(_deep_case),
    st.builds(Case, _masterdata_topics, st.one_of(_garbage, _deep)),
    unfit_masterdata(),
)


# --- the line -------------------------------------------------------------------------------


@dataclass
class Line:
    gw: GatewayProcess
    hub: HubClient
    mark: int = 0  # the seq of the last probe's order.accepted: events before it are judged
    probes: Iterator[int] = field(default_factory=itertools.count)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    tmp = tmp_path_factory.mktemp("hostile")
    binary = mosquitto_binary()
    (tmp / "broker").mkdir()
    broker = Mosquitto(binary, tmp / "broker", persistence=True)
    broker.start()
    hub = HubClient("127.0.0.1", broker.port)
    hub.publish("in/masterdata/catalog", (DATA / "reference-catalog.json").read_bytes(), True)
    hub.publish("in/masterdata/stock", (DATA / "reference-stock.json").read_bytes(), True)
    gw = GatewayProcess(tmp, broker.port, free_port())
    gw.start()
    try:
        yield Line(gw, hub)
    finally:
        gw.stop()
        hub.close()
        broker.stop()


def _read(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def _probe(ln: Line) -> list[dict[str, Any]]:
    """Send a good order and wait until the hub holds every event up to its acceptance (the
    gateway takes messages in order: what came before it is handled). Returns the events
    since the previous probe, and moves the mark past this one."""
    probe = f"PROBE-{next(ln.probes)}"
    ln.hub.publish(
        "in/orders",
        {"order_id": probe, "ship_by": SHIP_BY, "lines": [_good_line("PEN-ENG", 1)]},
    )

    def accepted(events: list[dict[str, Any]]) -> bool:
        seqs = [e["seq"] for e in events]
        return any(
            e.get("order_id") == probe and e["type"] == "order.accepted" for e in events
        ) and seqs == list(range(1, len(seqs) + 1))

    ln.hub.wait_for(accepted, timeout=30)  # raises when it does not come
    events = ln.hub.events()
    at = next(e["seq"] for e in events if e.get("order_id") == probe)
    window = [e for e in events if ln.mark < e["seq"] < at]
    ln.mark = at
    return window


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, allow_nan=True)


def _check_rejection(
    ln: Line, event: dict[str, Any], want: Rejected, payload: bytes, new_rows: set[int]
) -> int:
    jsonschema.validate(event, EVENT_SCHEMA)
    errors = event["data"]["errors"]
    codes = frozenset(e["code"] for e in errors)
    assert codes in want.codes, f"codes {sorted(codes)}, expected one of {want.codes}: {errors}"
    named = {e["field"] for e in errors}
    for planted in want.fields:
        assert any(f == planted or f.startswith(planted + ".") for f in named), (
            f"no error names {planted}: {errors}"
        )
    if want.fields:
        assert all(any(f == p or f.startswith(p + ".") for p in want.fields) for f in named), (
            f"an error names a field that is fine ({sorted(want.fields)}): {errors}"
        )
    if want.readable:
        assert event.get("order_id") == want.order_id
    # raw_ref points at the raw bytes the gateway kept of this very payload.
    table, _, rid = event["data"]["raw_ref"].partition("/")
    assert table == "rejections" and rid.isdigit(), event["data"]["raw_ref"]
    assert int(rid) in new_rows, f"{event['data']['raw_ref']} is not a row of this payload"
    ((topic, raw),) = _read(ln.gw.db, "SELECT topic, raw FROM rejections WHERE id = ?", (int(rid),))
    assert topic == "in/orders"
    if not want.in_array:
        assert bytes(raw) == payload
    else:  # one order of an array of several: that order
        assert _canonical(json.loads(raw)) == _canonical(want.item)
    return int(rid)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=_cases, replay=st.booleans())
# The worst of each kind, every run, whatever hypothesis draws besides.
@example(case=_deep_case(b"[" * 200_000 + b"]" * 200_000), replay=False)
@example(case=Case("in/masterdata/catalog", b'{"kind": "catalog", "a": ' * 5000), replay=False)
@example(
    case=Case(
        "in/orders",
        b'\xff\xfe{"order_id": "\xc3\x28"}',
        [Rejected(_one("INVALID_JSON"), readable=True)],
    ),
    replay=False,
)
@example(
    case=Case(
        "in/orders",
        b'{"order_id": "N", "ship_by": NaN, "lines": Infinity}',
        [Rejected(_one("INVALID_JSON"), frozenset({"ship_by", "lines"}), "N", readable=True)],
    ),
    replay=True,
)
@example(  # JSON's grammar allows a lone surrogate escape; Unicode (and UTF-8) has no such
    # character, so no JSON text exchanged in UTF-8 (RFC 8259, 8.1) carries one
    case=Case(
        "in/orders",
        b'{"order_id": "S-1", "ship_by": "2030-01-01T10:00:00+08:00", "lines": [{"sku": '
        b'"PEN-ENG", "qty": 1, "personalization": {"text": "\\ud800"}}]}',
        [
            Rejected(
                _one("SCHEMA"),
                frozenset({"lines.0.personalization.text"}),
                "S-1",
                readable=True,
            )
        ],
    ),
    replay=False,
)
@example(  # the tester's own: the order after the one with a surrogate was lost
    case=Case(
        "in/orders",
        b'[{"order_id": "SO-SURR", "ship_by": "2030-01-01T10:00:00+08:00", "destination": '
        b'{"name": "\\ud800x"}, "lines": [{"sku": "PEN-ENG", "qty": 1}]}, {"order_id": '
        b'"SO-AFTER-SURR", "ship_by": "2030-01-01T10:00:00+08:00", "lines": [{"sku": '
        b'"PEN-ENG", "qty": 1}]}]',
        [
            Rejected(
                _one("SCHEMA"),
                frozenset({"destination.name"}),
                "SO-SURR",
                readable=True,
                in_array=True,
                item={
                    "order_id": "SO-SURR",
                    "ship_by": "2030-01-01T10:00:00+08:00",
                    "destination": {"name": "\ud800x"},
                    "lines": [{"sku": "PEN-ENG", "qty": 1}],
                },
            ),
            Accepted("SO-AFTER-SURR"),
        ],
    ),
    replay=False,
)
@example(  # infinite stock, so that material can never run short
    case=Case(
        "in/masterdata/stock",
        b'{"kind": "stock", "as_of": "2026-11-11T08:00:00+08:00", "items": [{"material": '
        b'"INK-DTG-CMYK", "lot": "L-INF", "qty": 1e400}]}',
    ),
    replay=False,
)
@example(
    case=Case("in/cancel", _dumps({"order_id": "X" * 1_500_000, "reason": None})), replay=False
)
@example(
    case=Case("in/masterdata/stock", _dumps({"kind": "stock", "items": [{"qty": float("nan")}]})),
    replay=False,
)
def test_hostile_payloads_are_refused_and_the_line_goes_on(
    line: Line, case: Case, replay: bool
) -> None:
    ln = line
    (last_row,) = _read(ln.gw.db, "SELECT coalesce(max(id), 0) FROM rejections")[0]
    sends = 2 if replay else 1
    for _ in range(sends):  # a replay: the same message again
        ln.hub.publish(case.topic, case.payload)
    window = _probe(ln)
    rows = _read(ln.gw.db, "SELECT id, topic, raw FROM rejections WHERE id > ?", (last_row,))
    new_rows = {int(r[0]) for r in rows}
    rejected = [e for e in window if e["type"] == "order.rejected"]

    if case.orders is None:
        # Not an order: no order.rejected; the raw message is kept once per message.
        assert rejected == [], f"order.rejected for a message on {case.topic}"
        assert [(t, bytes(raw)) for _, t, raw in rows] == [(case.topic, case.payload)] * sends
        if case.topic.startswith("in/masterdata/"):
            kind = case.topic.rsplit("/", 1)[1]
            with ln.gw.client(timeout=5) as api:
                alarms = api.get("/api/alarms").json()
            assert f"masterdata:{kind}" in {a["alarm_id"] for a in alarms}
    else:
        bad = [o for o in case.orders if isinstance(o, Rejected)]
        assert len(rejected) == len(bad) * sends, (
            f"{len(rejected)} order.rejected for {len(bad)} bad orders sent {sends} time(s): "
            f"{[e['data']['errors'] for e in rejected]}"
        )
        refs = [
            _check_rejection(ln, event, want, case.payload, new_rows)
            for event, want in zip(rejected, bad * sends, strict=True)
        ]
        assert sorted(refs) == sorted(new_rows), "a rejection kept without its event, or twice"
        for good in (o for o in case.orders if isinstance(o, Accepted)):
            accepted = [
                e
                for e in window
                if e["type"] == "order.accepted" and e.get("order_id") == good.order_id
            ]
            assert len(accepted) == 1, f"{good.order_id} accepted {len(accepted)} times"

    assert ln.gw.proc is not None and ln.gw.proc.poll() is None, "the gateway died"
    assert httpx.get(ln.gw.base + "/api/health", timeout=5).status_code == 200
    conn = sqlite3.connect(f"file:{ln.gw.db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        orders = {r[0] for r in conn.execute("SELECT DISTINCT status FROM orders")}
        tasks = {r[0] for r in conn.execute("SELECT DISTINCT status FROM tasks")}
    finally:
        conn.close()
    assert orders <= ORDER_STATES and tasks <= TASK_STATES


def test_every_event_the_hub_got_is_numbered_without_a_gap(line: Line) -> None:
    # At least this probe's events, whether or not the test above ran before this one.
    _probe(line)
    deadline = time.monotonic() + 30
    pending = -1
    while time.monotonic() < deadline:
        pending = httpx.get(line.gw.base + "/api/health", timeout=5).json()["outbox_pending"]
        if pending == 0:
            break
        time.sleep(0.05)
    assert pending == 0, f"the outbox still holds {pending} events after 30 s"
    last = last_committed_seq(line.gw.db)
    assert last > 0
    line.hub.wait_for(lambda events: len(events) >= last, timeout=30)
    seqs = [e["seq"] for e in line.hub.events()]
    assert seqs == list(range(1, last + 1))
