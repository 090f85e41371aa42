"""``GET /metrics``: the gateway's numbers in the Prometheus text format, and the station
actions' answer times that both it and ``/api/health`` report.

What the numbers are is gateway/app/metrics.py's (a collector reading the gateway's own
state when Prometheus scrapes); this module only serves a registry. Who may scrape is the
access policy's line for ``GET /metrics`` (gateway/access/policy.py): the board's rule.
"""

from __future__ import annotations

import bisect
from collections import deque

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["ACTION_BUCKETS_S", "ActionTimes", "add_metrics_routes"]

# Upper bounds of the action-latency histogram, in seconds. An action answers in a few ms
# on a Pi (BENCHMARKS.md); an operator notices from about a quarter of a second: the
# buckets are fine below that and coarse above it.
ACTION_BUCKETS_S = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ActionTimes:
    """How long the station actions took to answer: the last ``keep`` in ms (for
    ``/api/health``'s percentiles), and since the start as cumulative histogram buckets
    (for Prometheus, whose quantiles are computed over any window, across gateways)."""

    def __init__(self, keep: int = 2000) -> None:
        self.recent_ms: deque[float] = deque(maxlen=keep)
        self._counts = [0] * (len(ACTION_BUCKETS_S) + 1)  # the last one: above every bound
        self.count = 0
        self.sum_s = 0.0

    def add(self, seconds: float) -> None:
        """One action answered in ``seconds`` (two appends and a bisect: on every action)."""
        self.recent_ms.append(seconds * 1000)
        self._counts[bisect.bisect_left(ACTION_BUCKETS_S, seconds)] += 1
        self.count += 1
        self.sum_s += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, ``+Inf`` last, as Prometheus' histogram has them."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*ACTION_BUCKETS_S, None), self._counts, strict=True):
            total += n
            out.append(("+Inf" if bound is None else repr(bound), float(total)))
        return out


def add_metrics_routes(app: FastAPI, registry: CollectorRegistry) -> None:
    """Serve ``registry`` at ``GET /metrics``."""

    # async: the collector reads the store, whose connection lives on the event loop's
    # thread (a plain def would run in Starlette's thread pool).
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
