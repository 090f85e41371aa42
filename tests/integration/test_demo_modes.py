"""The demo's modes: run until Ctrl-C (the default), a fixed run, and the line working
another hub's orders (``--orders 0 --broker``). The command runs as a child process, as a
newcomer runs it; the tests read what it prints and what it publishes on a real broker."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.memory import MemoryHub
from gateway.access.terminals import CODE_LIFETIME
from gateway.cli.demo import run_demo
from gateway.cli.main import _parser
from simulators.hub import MemoryTransport, SimulatedHub
from simulators.orders import (
    BAD_KINDS,
    OrderStream,
    generate_orders,
    load_reference_catalog,
    load_reference_stock,
)
from tests.clocks import LINE_MORNING, ManualClock
from tests.conftest import Mosquitto
from tests.integration.hub_client import HubClient

ROOT = Path(__file__).resolve().parents[2]
LINEGATE = Path(sys.executable).with_name("linegate")
SPEED = 300.0
# The demo's line clock starts here, not at today's date and hour.
START = ["--start", LINE_MORNING.isoformat()]
STARTUP_S = 60.0  # real seconds for the line to come up and print its banner
RUNNING = "running until Ctrl-C"


class DemoProcess:
    """``linegate demo`` as a child process; what it prints, line by line."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            [str(LINEGATE), "demo", *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line)

    @property
    def out(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, found: Callable[[str], Any], timeout: float) -> Any:
        """The first truthy ``found(output so far)``; fails when the demo ends or time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = found(self.out)
            if result:
                return result
            if self.proc.poll() is not None:
                self._reader.join(5)
                result = found(self.out)
                if result:
                    return result
                pytest.fail(f"the demo ended (rc {self.proc.returncode}):\n{self.out}")
            time.sleep(0.1)
        pytest.fail(f"the demo did not get there in {timeout:g} s:\n{self.out}")

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C, and its exit code once it has stopped."""
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def __enter__(self) -> DemoProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _completed(out: str) -> int:
    """Orders completed by the last progress line."""
    found = re.findall(r"orders accepted \d+/\d+, completed (\d+)", out)
    return int(found[-1]) if found else 0


def _elapsed(out: str) -> float:
    """Real seconds the demo has run, by its last progress line."""
    found = re.findall(r"^\[\s*([\d.]+) s \|", out, re.M)
    return float(found[-1]) if found else 0.0


def _api(out: str) -> str:
    found = re.search(r"station API +(http://127\.0\.0\.1:\d+)/api/stations", out)
    assert found is not None, out
    return found.group(1)


def test_the_demo_keeps_the_line_running_until_ctrl_c(tmp_path: Path) -> None:
    first_batch = 4  # too few for a bad one (one of each kind needs 20): all good
    argv = ["--orders", str(first_batch), "--pace", "20", "--speed", f"{SPEED:g}"]
    argv += ["--no-devices", "--http-port", "0", "--data-dir", str(tmp_path), *START]
    with DemoProcess(argv) as demo:
        out = demo.wait_for(lambda o: o if RUNNING in o else None, STARTUP_S)
        url = _api(out)
        # The screens' addresses, with what it takes to open them.
        token = re.search(r"viewer token (lgt_\S+)", out)
        assert token is not None, out
        assert f"board        {url}/board " in out
        assert f"{url}/board?kiosk=1#token={token.group(1)}" in out
        links = dict(re.findall(rf"{re.escape(url)}/station/([\w-]+)\?pair=(\S+)", out))
        assert set(links) == {
            "dtg-1", "dtg-2", "emb-1", "kit-1", "kit-2", "laser-1", "pack-1", "pack-2", "qc-1"
        }  # fmt: skip
        # Beyond its first batch: new orders came, and were made.
        demo.wait_for(lambda o: _completed(o) >= first_batch + 2, 90.0)
        # Later than a code lives on the line's clock (it runs ×SPEED): the printed links
        # still pair a browser, once each.
        code_life_real_s = CODE_LIFETIME.total_seconds() / SPEED
        demo.wait_for(lambda o: _elapsed(o) > 2 * code_life_real_s, 30.0)
        with httpx.Client(base_url=url, timeout=10.0) as http:
            claim = {"code": links["pack-1"], "name": "test browser"}
            answer = http.post("/api/terminals/claim", json=claim)
            assert answer.status_code == 200, answer.text
            terminal = {"Authorization": f"Bearer {answer.json()['credential']}"}
            assert http.get("/api/stations/pack-1", headers=terminal).status_code == 200
            assert http.post("/api/terminals/claim", json=claim).status_code >= 400
            viewer = {"Authorization": f"Bearer {token.group(1)}"}
            assert http.get("/api/stations", headers=viewer).status_code == 200
        rc = demo.interrupt()
    out = demo.out
    assert rc == 0, out
    assert "RESULT: OK" in out
    assert "PROBLEM" not in out
    released = re.search(r"orders released +(\d+) \(\d+ good, \d+ bad; (\d+) of them after", out)
    assert released is not None, out
    assert int(released.group(2)) >= 2
    assert int(released.group(1)) == first_batch + int(released.group(2))
    done = re.search(r"orders completed +(\d+) of (\d+)", out)
    assert done is not None and int(done.group(1)) >= first_batch + 2, out


def _order(order_id: str, sku: str) -> dict[str, Any]:
    """An order as the contract defines it (order.schema.json), for the line's morning."""
    return {
        "order_id": order_id,
        "revision": 1,
        "channel": "office-shop",
        "placed_at": LINE_MORNING.isoformat(),
        "ship_by": (LINE_MORNING + timedelta(days=1)).isoformat(),
        "priority": 5,
        "carrier": "SF",
        "lines": [{"line_no": 1, "sku": sku, "qty": 1, "personalization": {}}],
    }


def _outside_demo(broker: Mosquitto, data_dir: Path) -> DemoProcess:
    url = f"mqtt://{broker.host}:{broker.port}"
    argv = ["--orders", "0", "--broker", url, "--speed", f"{SPEED:g}", "--no-devices"]
    return DemoProcess([*argv, "--http-port", "0", "--data-dir", str(data_dir), *START])


def _completes(hub: HubClient, order_id: str) -> None:
    hub.wait_for(
        lambda events: any(
            e["type"] == "order.completed" and e.get("order_id") == order_id for e in events
        ),
        timeout=90.0,
    )


def _online(hub: HubClient) -> None:
    deadline = time.monotonic() + STARTUP_S
    while not any(s.get("state") == "online" for s in hub.status):
        assert time.monotonic() < deadline, "the gateway never said it is online"
        time.sleep(0.05)


def _assert_not_the_demos(out: str, completed: int, rejected: int) -> None:
    """The demo released nothing, judged nothing of another hub's, and said how many of
    that hub's orders the line made."""
    assert "RESULT: OK" in out, out
    assert "PROBLEM" not in out, out
    assert re.search(r"orders released +0 \(0 good, 0 bad\)", out), out
    assert re.search(r"orders rejected +0 \(none\)", out), out
    found = re.search(r"other orders +(\d+) completed, \d+ accepted, (\d+) rejected", out)
    assert found is not None, out
    assert (int(found.group(1)), int(found.group(2))) == (completed, rejected)


def test_the_line_works_another_hubs_orders(tmp_path: Path, mosquitto: Mosquitto) -> None:
    hub = HubClient(mosquitto.host, mosquitto.port)
    try:
        with _outside_demo(mosquitto, tmp_path) as demo:
            out = demo.wait_for(lambda o: o if RUNNING in o else None, STARTUP_S)
            assert "none of its own" in out
            _online(hub)
            # An order of the catalog the demo publishes, and a message that is no order.
            hub.publish("in/orders", _order("OFFICE-0001", "KIT-XMAS-A"))
            hub.publish("in/orders", b'{"order_id": "OFFICE-0002", "lines": [')
            _completes(hub, "OFFICE-0001")
            hub.wait_for(lambda events: any(e["type"] == "order.rejected" for e in events))
            # Still running, with nothing of its own to wait for.
            assert demo.proc.poll() is None
            rc = demo.interrupt()
    finally:
        hub.close()
    assert rc == 0, demo.out
    _assert_not_the_demos(demo.out, completed=1, rejected=1)


def test_another_hubs_catalog_stays_in_force(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A hub that publishes its own catalog: the demo leaves it on the broker, and the
    line makes that catalog's SKUs."""
    catalog = copy.deepcopy(load_reference_catalog())
    catalog["version"] = "office-7"
    kit = next(s for s in catalog["skus"] if s["sku"] == "KIT-XMAS-A")
    catalog["skus"].append({**copy.deepcopy(kit), "sku": "KIT-OFFICE-B", "unit_weight_g": 420})
    hub = HubClient(mosquitto.host, mosquitto.port)
    try:
        hub.publish("in/masterdata/catalog", catalog, retain=True)
        with _outside_demo(mosquitto, tmp_path) as demo:
            out = demo.wait_for(lambda o: o if RUNNING in o else None, STARTUP_S)
            assert "office-7, from another hub" in out
            _online(hub)
            hub.publish("in/orders", _order("OFFICE-0003", "KIT-OFFICE-B"))
            _completes(hub, "OFFICE-0003")
            rc = demo.interrupt()
        retained = _retained(mosquitto, "linegate/v1/hz01/line3/in/masterdata/catalog")
    finally:
        hub.close()
    assert rc == 0, demo.out
    _assert_not_the_demos(demo.out, completed=1, rejected=0)
    assert retained == catalog


def _retained(broker: Mosquitto, topic: str) -> Any:
    """What the broker holds retained on ``topic`` (its first message to a new subscriber)."""
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-retained")
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10.0
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
        client.reinitialise()  # closes the socket now, not in a garbage collection
    assert got, f"nothing retained on {topic}"
    return json.loads(got[0])


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--orders", "0", "--exit-when-done", "--broker", "mqtt://127.0.0.1:1883"],
         "nothing would ever be done"),
        (["--orders", "0"], "give --broker"),
        (["--pace", "-1"], "--pace must be 0 or more"),
        (["--pace", "nan"], "--pace must be 0 or more"),
        (["--pace", "10", "--exit-when-done"], "--exit-when-done has none"),
        (["--orders", "0", "--pace", "10", "--broker", "mqtt://127.0.0.1:1883"],
         "with --orders 0 it releases none"),
    ],
)  # fmt: skip
def test_combinations_that_make_no_sense_are_refused(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(_parser().parse_args(["demo", *argv])) == 2
    assert says in capsys.readouterr().err


def _event(seq: int, kind: str, order_id: str | None, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "type": kind, "order_id": order_id, "data": data}


def test_the_hub_judges_only_the_orders_it_released() -> None:
    catalog, stock = load_reference_catalog(), load_reference_stock()
    clock = ManualClock(LINE_MORNING)
    # 20 orders: one bad of each kind (simulators/orders.py: bad_order_count).
    orders = generate_orders(catalog, stock, count=20, now=clock.now(), seed=4)
    hub = SimulatedHub(
        MemoryTransport(MemoryHub()),
        catalog=catalog,
        stock=stock,
        orders=orders,
        clock_now=clock.now,
    )
    hub.release(orders)
    good = [o for o in orders if o.good]
    bad = {o.expected_error: o for o in orders if not o.good}
    assert set(bad) == set(BAD_KINDS)
    events = [
        _event(1, "order.accepted", good[0].order_id),
        _event(2, "order.completed", good[0].order_id, on_time=True),
        # Another hub's order: accepted, completed, one rejected.
        _event(3, "order.accepted", "OFFICE-1"),
        _event(4, "order.completed", "OFFICE-1", on_time=True),
        _event(5, "order.rejected", "OFFICE-2", errors=[{"code": "UNKNOWN_SKU"}]),
        # Not JSON has no order id: the demo sent one, so the first such is its own...
        _event(6, "order.rejected", None, errors=[{"code": "INVALID_JSON"}]),
        # ...and a second is not.
        _event(7, "order.rejected", None, errors=[{"code": "INVALID_JSON"}]),
        _event(8, "order.rejected", bad["SCHEMA"].order_id, errors=[{"code": "SCHEMA"}]),
    ]
    hub.on_events(events)
    c = hub.counters
    assert (c.accepted, c.completed, c.on_time, c.rejected) == (1, 1, 1, 2)
    assert (c.other_accepted, c.other_completed, c.other_rejected) == (1, 1, 2)
    assert c.rejection_codes == {"INVALID_JSON": 1, "SCHEMA": 1}
    assert c.other_rejection_codes == {"UNKNOWN_SKU": 1, "INVALID_JSON": 1}
    assert hub.rejected_good == [] and hub.accepted_bad == [] and hub.wrong_rejections == []
    assert len(hub.outstanding) == len(good) - 1
    # The gateway's mistakes about the demo's own orders are caught, each by its id.
    hub.on_events(
        [
            _event(9, "order.rejected", good[1].order_id, errors=[{"code": "SCHEMA"}]),
            _event(10, "order.accepted", bad["UNKNOWN_SKU"].order_id),
            _event(11, "order.rejected", bad["QTY_OUT_OF_RANGE"].order_id, errors=[]),
        ]
    )
    assert hub.rejected_good == [good[1].order_id]
    assert hub.accepted_bad == [bad["UNKNOWN_SKU"].order_id]
    assert hub.wrong_rejections == [bad["QTY_OUT_OF_RANGE"].order_id]
    assert not hub.rejections_as_expected


def test_the_order_stream_goes_on_where_the_batch_ended() -> None:
    catalog, stock = load_reference_catalog(), load_reference_stock()
    start = LINE_MORNING
    batch = generate_orders(catalog, stock, count=10, now=start, seed=3)

    def stream() -> list[str]:
        made = OrderStream(catalog, stock, now=start, seed=3, bad_rate=0.25, first_number=11)
        return [made.next(start + timedelta(minutes=2 * i)).order_id for i in range(400)]

    ids = stream()
    assert ids == stream()  # the same seed and times: the same orders
    assert len(set(ids) | {o.order_id for o in batch}) == len(ids) + len(batch)
    assert [int(i[-4:]) for i in ids[:3]] == [11, 12, 13]
    made = OrderStream(catalog, stock, now=start, seed=3, bad_rate=0.25)
    orders = [made.next(start) for _ in range(400)]
    kinds = {o.expected_error for o in orders if not o.good}
    assert kinds == set(BAD_KINDS)
    assert 60 <= sum(1 for o in orders if not o.good) <= 140  # about a quarter of 400
