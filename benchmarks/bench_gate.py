"""What the station API's gate (issue 12) costs a request, on its own, in this process.

    .venv/bin/python benchmarks/bench_gate.py [--n 20000]

A gateway of the reference line is opened on a temporary SQLite file (not served), a
terminal is paired for every station and a viewer token made. Then, for a scan at a
station by its terminal, and for a board read with the token, the gate's three steps are
timed apart and together, ``--n`` times each: finding the request's route among the app's
routes (its template: ``/api/stations/{station_id}/scan``), knowing who asks (the
credential's SHA-256, a read of the terminal and one of the station's operator; for a
token, a read of it), and the policy's decision. Printed: µs per request, p50 and p99, as
JSON. The end-to-end scan answer with the gate on is measured by ``bench_line.py scans``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.datastructures import Headers  # noqa: E402 - after the path

from gateway.access.policy import AccessRequest, decide  # noqa: E402
from gateway.app.root import Gateway  # noqa: E402
from gateway.clock import SystemClock  # noqa: E402
from gateway.config.load import load_line_config  # noqa: E402
from gateway.web.gate import Caller, Gatekeeper  # noqa: E402
from gateway.web.station_api import create_app  # noqa: E402
from tests.keys import issue_keys  # noqa: E402

REFERENCE_LINE = ROOT / "station_configs" / "reference-line"


def _scope(method: str, path: str, credential: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {credential}".encode())],
        "client": ("10.0.3.21", 50000),
    }


def _timed(step: Callable[[], object], n: int) -> dict[str, float]:
    took: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        step()
        took.append((time.perf_counter_ns() - t0) / 1000)
    took.sort()
    return {
        "p50_us": round(statistics.median(took), 1),
        "p99_us": round(took[int(0.99 * (len(took) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    config = load_line_config(REFERENCE_LINE)
    with tempfile.TemporaryDirectory(prefix="lg-bench-gate-") as tmp:
        gw = Gateway(config, data_dir=Path(tmp), clock=SystemClock(), link=None, http_port=0)
        gw.open()
        try:
            keys = issue_keys(gw.store, config)
            app = create_app(
                gw.stations, gw.health, gw.floor, gw.planner, gate=gw.gate, sign_ins=gw.sign_ins
            )
            keeper = Gatekeeper(app, gw.gate, app.router.routes)
            station = next(iter(config.stations))
            cases = {
                "scan by its terminal": _scope(
                    "POST", f"/api/stations/{station}/scan", keys.terminal(station)
                ),
                "board read with a token": _scope("GET", "/api/plan", keys.token("viewer")),
            }
            out: dict[str, Any] = {"routes": len(app.router.routes), "n": args.n}
            for name, scope in cases.items():
                headers = Headers(scope=scope)
                method = scope["method"]
                found = keeper.route_of(scope)
                assert found is not None
                request = AccessRequest(method, found[0], found[1].get("station_id"))
                caller = gw.gate.identify(headers, method)
                assert isinstance(caller, Caller)
                assert decide(caller.principal, request).allowed

                def whole(scope: dict[str, Any] = scope, headers: Headers = headers) -> None:
                    hit = keeper.route_of(scope)
                    assert hit is not None
                    who = gw.gate.identify(headers, scope["method"])
                    assert isinstance(who, Caller)
                    decide(
                        who.principal,
                        AccessRequest(scope["method"], hit[0], hit[1].get("station_id")),
                    )

                out[name] = {
                    "route": _timed(partial(keeper.route_of, scope), args.n),
                    "identify": _timed(partial(gw.gate.identify, headers, method), args.n),
                    "decide": _timed(partial(decide, caller.principal, request), args.n),
                    "whole": _timed(whole, args.n),
                }
            print(json.dumps(out))
        finally:
            gw.store.close()


if __name__ == "__main__":
    main()
