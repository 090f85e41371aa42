"""The webhooks' numbers for the office's /metrics: sent, retried and given up by this
instance (counters, by hook), and per hook the rows waiting and the age of the oldest
(read from the store at each scrape: every instance's rows)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from office.hooks import outbox
from office.hooks.sender import HookTally
from office.store import Store, StoreUnavailable

__all__ = ["HookMetrics"]


class HookMetrics(Collector):
    def __init__(
        self, store: Store, hooks: Iterable[str], tally: HookTally, now: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._hooks = tuple(hooks)
        self._tally = tally
        self._now = now
        self._depth: dict[str, tuple[int, str | None]] = {}

    async def refresh(self) -> None:
        try:
            async with self._store.transaction() as conn:
                self._depth = await outbox.depth(conn)
        except StoreUnavailable:
            self._depth = {}

    def collect(self) -> Iterable[Metric]:
        counters = (
            ("sent", self._tally.sent, "Deliveries a receiver took (2xx), by this instance."),
            ("retried", self._tally.retried, "Attempts that failed and will be tried again."),
            (
                "given_up",
                self._tally.given_up,
                "Deliveries given up (a 4xx, or the attempts spent): see GET /v1/hooks/failed.",
            ),
        )
        for name, counts, text in counters:
            family = CounterMetricFamily(
                f"linegate_office_hook_{name}_total", text, labels=["hook"]
            )
            for hook in self._hooks:
                family.add_metric([hook], counts[hook])
            yield family
        waiting = GaugeMetricFamily(
            "linegate_office_hook_outbox_depth", "Deliveries waiting, by hook.", labels=["hook"]
        )
        age = GaugeMetricFamily(
            "linegate_office_hook_outbox_age_seconds",
            "Seconds the oldest waiting delivery has waited, by hook.",
            labels=["hook"],
        )
        now = self._now()
        for hook in self._hooks:
            count, oldest = self._depth.get(hook, (0, None))
            waiting.add_metric([hook], count)
            if oldest is not None:
                since = (now - datetime.fromisoformat(oldest)).total_seconds()
                age.add_metric([hook], max(since, 0.0))
        yield waiting
        yield age
