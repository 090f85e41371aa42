"""Malformed and hostile inbound payloads, generated with hypothesis, through the real broker
into a real gateway process: wrong types, huge strings, deep nesting, invalid UTF-8, NaN,
replays, on every inbound topic. After each one the gateway is alive, its database is
intact, every order and task is in a legal state, and the next good order is accepted.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Mosquitto, free_port, mosquitto_binary
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient

DATA = ROOT / "simulators" / "data"
ORDER_STATES = {"released", "waiting_material", "completed", "cancelled"}
TASK_STATES = {
    "blocked", "ready", "dispatched", "running", "paused", "done", "cancelled", "scrapped",
}  # fmt: skip

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
_line = st.fixed_dictionaries(
    {"sku": st.sampled_from(["TEE-WHT-S", "NOPE", ""]) | st.text(max_size=20) | st.integers(),
     "qty": st.integers(-3, 10**12) | st.floats(allow_nan=True) | st.text(max_size=3)},
    optional={"personalization": _json},
)  # fmt: skip
_order = st.fixed_dictionaries(
    {"order_id": st.text(max_size=80) | st.integers() | st.none(),
     "ship_by": st.sampled_from(["2030-01-01T10:00:00+08:00", "yesterday", ""]) | st.integers(),
     "lines": st.lists(_line, max_size=4) | _json},
    optional={"priority": st.integers(-10**6, 10**6) | st.text(max_size=4),
              "revision": st.integers(-5, 5), "extra": _json},
)  # fmt: skip


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()  # NaN and Infinity, as a sloppy hub sends


_payloads = st.one_of(
    st.binary(max_size=2000),  # garbage, invalid UTF-8
    _json.map(_dumps),  # any JSON, wrong types, NaN
    _order.map(_dumps),
    st.lists(_order, max_size=5).map(_dumps),  # arrays, good and bad mixed
    st.integers(500, 200_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
    st.integers(10_000, 1_500_000).map(lambda n: _dumps({"order_id": "X" * n, "lines": []})),
)
_topics = st.sampled_from(
    ["in/orders", "in/cancel", "in/masterdata/catalog", "in/masterdata/stock"]
)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, HubClient]]:
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
        yield gw, hub
    finally:
        gw.stop()
        hub.close()
        broker.stop()


_probes = iter(range(10**9))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(topic=_topics, payload=_payloads, replay=st.booleans())
# The worst of each kind, every run, whatever hypothesis draws besides.
@example(topic="in/orders", payload=b"[" * 200_000 + b"]" * 200_000, replay=False)
@example(topic="in/masterdata/catalog", payload=b'{"kind": "catalog", "a": ' * 5000, replay=False)
@example(topic="in/orders", payload=b'\xff\xfe{"order_id": "\xc3\x28"}', replay=False)
@example(
    topic="in/orders", payload=b'{"order_id": "N", "ship_by": NaN, "lines": Infinity}', replay=True
)
@example(
    topic="in/cancel", payload=_dumps({"order_id": "X" * 1_500_000, "reason": None}), replay=False
)
@example(
    topic="in/masterdata/stock",
    payload=_dumps({"kind": "stock", "items": [{"qty": float("nan")}]}),
    replay=False,
)
def test_hostile_payloads_are_refused_and_the_line_goes_on(
    line: tuple[GatewayProcess, HubClient], topic: str, payload: bytes, replay: bool
) -> None:
    gw, hub = line
    hub.publish(topic, payload)
    if replay:
        hub.publish(topic, payload)  # the same message again
    # The good order after it: processed in order, so its answer means the hostile one
    # was handled, and the line still takes orders (the catalog it needs is intact).
    probe = f"PROBE-{next(_probes)}"
    good = {
        "order_id": probe,
        "ship_by": "2030-01-01T10:00:00+08:00",
        "lines": [{"sku": "PEN-ENG", "qty": 1, "personalization": {"text": "ok"}}],
    }
    hub.publish("in/orders", good)
    hub.wait_for(
        lambda ev: any(e.get("order_id") == probe and e["type"] == "order.accepted" for e in ev),
        timeout=30,
    )
    assert gw.proc is not None and gw.proc.poll() is None, "the gateway died"
    assert httpx.get(gw.base + "/api/health", timeout=5).status_code == 200
    conn = sqlite3.connect(f"file:{gw.db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        orders = {r[0] for r in conn.execute("SELECT DISTINCT status FROM orders")}
        tasks = {r[0] for r in conn.execute("SELECT DISTINCT status FROM tasks")}
    finally:
        conn.close()
    assert orders <= ORDER_STATES and tasks <= TASK_STATES


def test_every_event_the_hub_got_is_numbered_without_a_gap(
    line: tuple[GatewayProcess, HubClient],
) -> None:
    gw, hub = line
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and httpx.get(gw.base + "/api/health").json()["outbox_pending"]
    ):
        time.sleep(0.05)
    seqs = [e["seq"] for e in hub.events()]
    assert seqs == list(range(1, len(seqs) + 1))
