"""The gateway's numbers for Prometheus (issue 16, item 7), read from its own state when
Prometheus scrapes ``GET /metrics`` (gateway/web/metrics_routes.py).

A custom collector, registered on a registry the :class:`~gateway.app.root.Gateway` owns
(no global registry: two gateways in one process, as in the tests, keep theirs apart).
Nothing is counted twice: the outbox, the link, the device supervisors, the planner and
the store already keep what is reported; the collector reads them. What it reads from
the store are indexed counts (orders by status, orders completed today), the open alarms
(a small table) and the outbox's count, the one read that grows with the backlog (the
same one /api/health makes). With 5,000 open orders a scrape takes 1.5 ms on the event
loop, 6 ms while 15,000 events wait for a hub that is away (benchmarks/bench_metrics.py).

The one thing kept here is the number of events committed by type since the start: an
outbox listener adds them up (a dict update per commit).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, time
from typing import Protocol, runtime_checkable

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cloud_sync.http import HttpLink
from cloud_sync.mqtt import MqttLink
from drivers.base import DriverState
from gateway import __version__
from gateway.clock import Clock, iso
from gateway.config.line import LineConfig
from gateway.floor.floor import Floor
from gateway.planning.planner import LinePlanner
from gateway.store.db import Store
from gateway.store.outbox import Outbox
from gateway.store.rows import OrderStatus
from gateway.web.metrics_routes import ActionTimes

__all__ = ["GatewayMetrics", "LinkState", "MetricSource"]

logger = logging.getLogger(__name__)


@runtime_checkable
class LinkState(Protocol):
    """What every hub link (MQTT, HTTP, the demo's in-memory one) tells of itself."""

    @property
    def connected(self) -> bool: ...

    @property
    def published(self) -> int: ...


class MetricSource(Protocol):
    """What the collector reads: the gateway (gateway/app/root.py) as it runs. Read-only,
    and the hub link read at each scrape (a caller may set it after construction)."""

    @property
    def config(self) -> LineConfig: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def store(self) -> Store: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def link(self) -> object: ...
    @property
    def floor(self) -> Floor: ...
    @property
    def planner(self) -> LinePlanner | None: ...
    @property
    def actions(self) -> ActionTimes: ...


class GatewayMetrics(Collector):
    """The collector: ``collect()`` yields the metric families, computed now."""

    def __init__(self, gateway: MetricSource) -> None:
        self._gw = gateway
        self._emitted: Counter[str] = Counter()
        gateway.outbox.listeners.append(self._committed)

    def _committed(self, events: Sequence[tuple[int, str, bytes]]) -> None:
        self._emitted.update(type_ for _, type_, _ in events)

    def collect(self) -> Iterable[Metric]:
        yield from self._info()
        yield from self._outbox()
        yield from self._link()
        yield from self._devices()
        yield from self._actions()
        yield from self._plan()
        yield from self._alarms()
        yield from self._orders()

    def _info(self) -> Iterator[Metric]:
        config = self._gw.config
        info = InfoMetricFamily("linegate", "This gateway: its version and line.")
        info.add_metric(
            [],
            {
                "version": __version__,
                "gateway_id": config.gateway_id,
                "site": config.line.site,
                "line": config.line.line,
            },
        )
        yield info

    def _outbox(self) -> Iterator[Metric]:
        outbox = self._gw.outbox
        yield GaugeMetricFamily(
            "linegate_outbox_events",
            "Events committed and waiting for the hub to acknowledge them.",
            value=outbox.pending_count(),
        )
        yield GaugeMetricFamily(
            "linegate_outbox_bytes",
            "The JSON bodies of the events waiting for the hub, in bytes.",
            value=outbox.size_bytes,
        )
        yield GaugeMetricFamily(
            "linegate_outbox_oldest_age_seconds",
            "How long the oldest event waiting for the hub has waited (0: none waits), "
            "on the line's clock.",
            value=self._oldest_age_s(),
        )
        yield CounterMetricFamily(
            "linegate_events_committed_total",
            "Events committed for the life of the store: the outbox's last seq.",
            value=outbox.last_seq,
        )
        emitted = CounterMetricFamily(
            "linegate_events_emitted_total",
            "Events committed since the gateway started, by type.",
            labels=["type"],
        )
        for type_, n in sorted(self._emitted.items()):
            emitted.add_metric([type_], n)
        yield emitted

    def _oldest_age_s(self) -> float:
        first = self._gw.outbox.peek(0, 1)  # by the primary key: one row
        if not first:
            return 0.0
        try:
            ts = json.loads(first[0].payload)["ts"]
            at = datetime.fromisoformat(ts)
        except (ValueError, KeyError, TypeError) as exc:  # the outbox wrote it: a bug
            logger.warning("event %d: no readable ts: %s", first[0].seq, exc)
            return 0.0
        return max(0.0, (self._gw.clock.now() - at).total_seconds())

    def _link(self) -> Iterator[Metric]:
        link = self._gw.link
        if not isinstance(link, LinkState):
            return  # no hub link ([hub] transport = "none"): nothing to be up or down
        transport = _transport(link)
        up = GaugeMetricFamily(
            "linegate_link_up",
            "1 while the hub link is connected (MQTT) or the hub answered (HTTP).",
            labels=["transport"],
        )
        up.add_metric([transport], _one(link.connected))
        yield up
        published = CounterMetricFamily(
            "linegate_events_published_total",
            "Events the hub acknowledged since the gateway started.",
            labels=["transport"],
        )
        published.add_metric([transport], link.published)
        yield published

    def _devices(self) -> Iterator[Metric]:
        supervisors = self._gw.floor.devices.supervisors
        up = GaugeMetricFamily(
            "linegate_device_up",
            "1 while the device is connected and working (state ready).",
            labels=["station", "device", "kind"],
        )
        state = GaugeMetricFamily(
            "linegate_device_state",
            "The device's state: 1 for the state it is in, 0 for the others.",
            labels=["station", "device", "state"],
        )
        restarts = CounterMetricFamily(
            "linegate_device_restarts_total",
            "How often the device's driver was started again after a failure.",
            labels=["station", "device"],
        )
        for name, sup in supervisors.items():
            station, _, device = name.partition("/")
            up.add_metric([station, device, sup.driver.kind], _one(sup.state is DriverState.READY))
            for each in DriverState:
                state.add_metric([station, device, each.value], _one(sup.state is each))
            restarts.add_metric([station, device], sup.restarts)
        yield from (up, state, restarts)

    def _actions(self) -> Iterator[Metric]:
        actions = self._gw.actions
        yield HistogramMetricFamily(
            "linegate_action_seconds",
            "How long the station API took to answer an operator's action (carried out, "
            "or refused by the desk), commit included.",
            buckets=actions.buckets(),
            sum_value=actions.sum_s,
        )

    def _plan(self) -> Iterator[Metric]:
        planner = self._gw.planner
        if planner is None:
            return  # [planner] enabled = false: the dispatch rule, no plan to age
        stats = planner.replanner.stats
        yield CounterMetricFamily(
            "linegate_replans_total", "Replans that made a plan.", value=stats.replans
        )
        yield CounterMetricFamily(
            "linegate_replan_failures_total",
            "Replans that made no plan (the line kept its last one).",
            value=stats.failures,
        )
        yield GaugeMetricFamily(
            "linegate_plan_in_use",
            "1 while the stations follow the plan, 0 while the dispatch rule orders their "
            "queues (no plan yet, or the plan is stale).",
            value=_one(planner.current() is not None),
        )
        live = planner.replanner.current
        if live is None:
            return
        yield GaugeMetricFamily(
            "linegate_plan_age_seconds",
            "How long ago the current plan was made, on the line's clock.",
            value=max(0.0, (self._gw.clock.now() - live.made_at).total_seconds()),
        )
        yield GaugeMetricFamily(
            "linegate_plan_tasks", "Tasks the current plan sequences.", value=len(live.planned)
        )

    def _alarms(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "linegate_alarms_open",
            "Alarms raised and not cleared, by kind and severity.",
            labels=["kind", "severity"],
        )
        rows = self._gw.store.conn.execute(
            "SELECT kind, severity, count(*) FROM alarms WHERE cleared_at IS NULL "
            "GROUP BY kind, severity ORDER BY kind, severity"
        ).fetchall()
        for kind, severity, n in rows:
            family.add_metric([str(kind), str(severity)], int(n))
        yield family

    def _orders(self) -> Iterator[Metric]:
        store = self._gw.store
        family = GaugeMetricFamily(
            "linegate_orders",
            "Orders on the line by stage: open (released to the stations), "
            "waiting_material, completed_today (since midnight in the line's time zone).",
            labels=["stage"],
        )
        counts = dict.fromkeys((OrderStatus.RELEASED, OrderStatus.WAITING_MATERIAL), 0)
        # Counted on the index orders_status (status, ship_by): no order row is read.
        rows = store.conn.execute(
            "SELECT status, count(*) FROM orders WHERE status IN (?, ?) GROUP BY status",
            tuple(counts),
        ).fetchall()
        for status, n in rows:
            counts[OrderStatus(status)] = int(n)
        family.add_metric(["open"], counts[OrderStatus.RELEASED])
        family.add_metric(["waiting_material"], counts[OrderStatus.WAITING_MATERIAL])
        # On the partial index orders_completed: today's rows only.
        completed = store.count(
            "SELECT count(*) FROM orders WHERE completed_at >= ? AND status = ?",
            (iso(self._midnight()), OrderStatus.COMPLETED.value),
        )
        family.add_metric(["completed_today"], completed)
        yield family

    def _midnight(self) -> datetime:
        tz = self._gw.config.line.tzinfo
        today = self._gw.clock.now().astimezone(tz).date()
        return datetime.combine(today, time(), tzinfo=tz)


def _transport(link: LinkState) -> str:
    if isinstance(link, MqttLink):
        return "mqtt"
    if isinstance(link, HttpLink):
        return "http"
    return "memory"  # the demo's in-process hub (cloud_sync/memory.py)


def _one(flag: bool) -> float:
    return 1.0 if flag else 0.0
