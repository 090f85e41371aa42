"""What a Prometheus scrape of ``GET /metrics`` costs the gateway (issue 16, item 7).

    .venv/bin/python benchmarks/bench_metrics.py [--orders 5000] [--rounds 200]

The reference line's gateway is opened on a temporary SQLite file (not served: the HTTP
part of a scrape is the station API's, measured by bench_line.py), its 18 devices built
(not started), with stock for everything, ``--orders`` open orders taken in (their
``order.accepted`` events and the rest wait in the outbox: no hub link), a few dozen
alarms raised and some cleared, and a few hundred actions' answer times recorded. Then
``generate_latest`` on the gateway's own registry (what the route returns) is timed
``--rounds`` times: p50/p99 ms of wall and of the process's CPU time, and the answer's
size. The scrape runs on the event loop, so its time is how long an operator's action can
wait behind it, once per scrape interval.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import generate_latest  # noqa: E402 - after the path

from cloud_sync.ports import InboundMessage  # noqa: E402
from gateway.app.root import Gateway  # noqa: E402
from gateway.config.load import load_line_config  # noqa: E402
from gateway.orderbook.alarms import clear_alarm, raise_alarm  # noqa: E402
from gateway.percentiles import percentile  # noqa: E402
from gateway.store.rows import Severity  # noqa: E402

REFERENCE_LINE = ROOT / "station_configs" / "reference-line"
DATA = ROOT / "simulators" / "data"
MORNING = datetime.fromisoformat("2026-11-26T10:00:00+08:00")
# SKUs the reference catalog makes, with the personalization each routing asks for.
SKUS: tuple[tuple[str, dict[str, str]], ...] = (
    ("TEE-WHT-M", {"ink_profile": "standard"}),
    ("TEE-BLK-L", {"ink_profile": "dark-underbase"}),
    ("CAP-EMB-NAVY", {"thread_color": "gold"}),
    ("PEN-ENG", {"fixture": "PEN-V2"}),
    ("TUMBLER-ENG", {"fixture": "TUMBLER-V1"}),
)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def _stock() -> dict[str, Any]:
    catalog = json.loads((DATA / "reference-catalog.json").read_text())
    items = []
    for m in catalog["materials"]:
        item: dict[str, Any] = {"material": m["material"], "qty": 100_000_000}
        if m.get("lot_tracked"):
            item |= {"lot": m["material"] + "-BENCH", "expires": "2099-12-31"}
        items.append(item)
    return {"kind": "stock", "as_of": "2026-01-01T00:00:00+00:00", "items": items}


def _orders(n: int, rng: random.Random) -> list[InboundMessage]:
    out = []
    for i in range(n):
        sku, setup = rng.choice(SKUS)
        doc = {
            "order_id": f"SO-{i:06d}",
            "ship_by": (MORNING + timedelta(hours=rng.randrange(4, 48))).isoformat(),
            "lines": [{"sku": sku, "qty": 1, "personalization": setup | {"text": f"n{i}"}}],
        }
        out.append(InboundMessage("in/orders", json.dumps(doc).encode()))
    return out


def _scrapes(gw: Gateway, rounds: int) -> dict[str, Any]:
    """``rounds`` scrapes of ``gw``'s registry: wall and CPU ms, the answer's size."""
    wall: list[float] = []
    cpu: list[float] = []
    body = b""
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        body = generate_latest(gw.metrics)
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    lines = body.decode().splitlines()
    return {
        "outbox_events": gw.outbox.pending_count(),
        "scrape_ms": {
            "p50": round(percentile(wall, 50), 3),
            "p99": round(percentile(wall, 99), 3),
            "cpu_p50": round(percentile(cpu, 50), 3),
        },
        "bytes": len(body),
        "series": sum(1 for line in lines if line and not line.startswith("#")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the alarms raised below each log a line
    rng = random.Random(16)
    config = load_line_config(REFERENCE_LINE)
    clock = Clock(MORNING)
    with tempfile.TemporaryDirectory(prefix="lg-bench-metrics-") as tmp:
        gw = Gateway(config, data_dir=Path(tmp), clock=clock, link=None, http_port=0)
        gw.open()
        try:
            catalog = (DATA / "reference-catalog.json").read_bytes()
            gw.inbound.deliver([InboundMessage("in/masterdata/catalog", catalog)])
            stock = json.dumps(_stock()).encode()
            gw.inbound.deliver([InboundMessage("in/masterdata/stock", stock)])
            t0 = time.perf_counter()
            orders = _orders(args.orders, rng)
            for k in range(0, len(orders), 100):
                gw.inbound.deliver(orders[k : k + 100])
            intake_s = time.perf_counter() - t0
            with gw.store.transaction():
                for n in range(40):
                    severity = (Severity.WARNING, Severity.MAJOR, Severity.CRITICAL)[n % 3]
                    raise_alarm(gw.core, f"bench:{n}", f"kind_{n % 7}", "bench", severity, "x")
                for n in range(0, 40, 4):
                    clear_alarm(gw.core, f"bench:{n}", "gone")
            for _ in range(500):
                gw.actions.add(rng.lognormvariate(-5, 0.6))  # ~7 ms, a tail to ~50 ms
            clock.at = MORNING + timedelta(minutes=30)
            open_orders = gw.store.count("SELECT count(*) FROM orders WHERE status = 'released'")
            result: dict[str, Any] = {
                "orders_open": open_orders,
                "devices": len(gw.floor.devices.supervisors),
                "intake_s": round(intake_s, 1),
                "rounds": args.rounds,
                # The hub away: every event since the intake waits in the outbox.
                "hub_away": _scrapes(gw, args.rounds),
            }
            # The hub took them all (the usual state of a line): an empty outbox.
            gw.outbox.ack([r.seq for r in gw.outbox.peek(0, 10_000_000)])
            gw.outbox.retire()
            result["hub_up"] = _scrapes(gw, args.rounds)
        finally:
            gw.store.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
