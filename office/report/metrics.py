"""The office's numbers for Prometheus, on a registry of its own (no global registry: two
offices in one process, as in the tests, keep theirs apart).

Counters come from the store's :class:`~office.store.Tally` (this instance since it
started; Prometheus sums the instances). The per-line gauges are read from the store at
each scrape (:meth:`OfficeMetrics.refresh`, awaited by the route before rendering, since
a collector cannot await): one small query per line and its gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from office.hooks.metrics import HookMetrics
from office.store import LineReport, RejectKind, Store, StoreUnavailable

__all__ = ["OfficeMetrics"]


class OfficeMetrics(Collector):
    def __init__(
        self, store: Store, now: Callable[[], datetime], hooks: HookMetrics | None = None
    ) -> None:
        self._store = store
        self._now = now
        self._lines: list[LineReport] = []
        self._up = False
        self._hooks = hooks
        self.registry = CollectorRegistry()
        self.registry.register(self)
        if hooks is not None:
            self.registry.register(hooks)

    async def refresh(self) -> None:
        try:
            self._lines = await self._store.lines_report()
            self._up = True
        except StoreUnavailable:
            self._lines, self._up = [], False
        if self._hooks is not None:
            await self._hooks.refresh()

    def collect(self) -> Iterable[Metric]:
        tally = self._store.tally
        stored = CounterMetricFamily(
            "linegate_office_events_stored_total",
            "Events newly stored by this instance, by transport.",
            labels=["via"],
        )
        for via in ("http", "mqtt"):
            stored.add_metric([via], tally.stored[via])
        yield stored
        yield CounterMetricFamily(
            "linegate_office_duplicates_total",
            "Events received again with the same content (redeliveries, replays).",
            value=tally.duplicates,
        )
        yield CounterMetricFamily(
            "linegate_office_conflicts_total",
            "Events sent under a seq already held with other content (recorded, not stored).",
            value=tally.conflicts,
        )
        rejected = CounterMetricFamily(
            "linegate_office_rejected_total",
            "Refusals recorded, by class.",
            labels=["reason"],
        )
        for kind in RejectKind:
            rejected.add_metric([kind.value], tally.rejected[kind])
        yield rejected
        failed = CounterMetricFamily(
            "linegate_office_projection_failures_total",
            "Batches a view (orders, board, webhooks) failed on: the events were kept, the "
            "view missed them (see the log).",
            labels=["projector"],
        )
        for name, count in sorted(tally.projection_failures.items()):
            failed.add_metric([name], count)
        yield failed
        yield GaugeMetricFamily(
            "linegate_office_store_up",
            "1 when the store answered this scrape, 0 when it did not.",
            value=1 if self._up else 0,
        )
        yield from self._per_line()

    def _per_line(self) -> Iterable[Metric]:
        held = GaugeMetricFamily(
            "linegate_office_line_held_through",
            "Every seq of the line up to this one is stored.",
            labels=["gateway_id"],
        )
        highest = GaugeMetricFamily(
            "linegate_office_line_highest_seq",
            "The highest seq stored for the line.",
            labels=["gateway_id"],
        )
        gaps = GaugeMetricFamily(
            "linegate_office_line_gaps",
            "Missing seq ranges below the line's highest seq.",
            labels=["gateway_id"],
        )
        silent = GaugeMetricFamily(
            "linegate_office_line_last_seen_age_seconds",
            "Seconds since the line last sent events or its status.",
            labels=["gateway_id"],
        )
        now = self._now()
        for line in self._lines:
            labels = [line.gateway_id]
            held.add_metric(labels, line.held_through)
            highest.add_metric(labels, line.highest_seq)
            gaps.add_metric(labels, len(line.gaps))
            if line.last_seen is not None:
                age = (now - datetime.fromisoformat(line.last_seen)).total_seconds()
                silent.add_metric(labels, max(age, 0.0))
        yield from (held, highest, gaps, silent)
