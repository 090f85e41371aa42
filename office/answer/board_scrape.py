"""The lines' health as their gateways tell it on ``GET /metrics`` (Prometheus text),
scraped in the background (never while a board request waits) and kept in memory: the
board shows the last good scrape, or since when a line's scrape fails.

Each line is scraped with a gateway token of the viewer role (``[[lines]] metrics_url``,
``metrics_token_file``). The text is parsed off the loop (``asyncio.to_thread``): a line's
metrics are a few kilobytes, but twenty of them every few seconds are not the loop's work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from office.config import ConfigError

__all__ = ["LineHealth", "MetricsScraper", "ScrapeTarget", "parse_health"]

log = logging.getLogger(__name__)

_TIMEOUT_S = 5.0
_MAX_BYTES = 4 << 20


@dataclass(frozen=True)
class ScrapeTarget:
    gateway_id: str
    url: str
    # Reads the token (from its file) at each scrape, off the loop: a gateway's viewer token
    # rotated on disk is taken without restarting the office.
    token: Callable[[], str]


@dataclass(frozen=True)
class LineHealth:
    """What the board shows of a line's /metrics (None: the gateway did not say)."""

    outbox_events: float | None = None
    outbox_oldest_age_s: float | None = None
    link_up: bool | None = None
    plan_age_s: float | None = None
    plan_in_use: bool | None = None
    # station/device -> its state (the one whose linegate_device_state is 1)
    devices: dict[str, str] = field(default_factory=dict)
    scraped_at: datetime | None = None  # the last good scrape
    failing_since: datetime | None = None  # the first failed scrape since the last good one
    error: str | None = None


def parse_health(text: str) -> LineHealth:
    """The board's figures from a gateway's metrics text (gateway/app/metrics.py's names)."""
    found = LineHealth()
    devices: dict[str, str] = {}
    link: list[bool] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "linegate_outbox_events":
                found = replace(found, outbox_events=s.value)
            elif s.name == "linegate_outbox_oldest_age_seconds":
                found = replace(found, outbox_oldest_age_s=s.value)
            elif s.name == "linegate_plan_age_seconds":
                found = replace(found, plan_age_s=s.value)
            elif s.name == "linegate_plan_in_use":
                found = replace(found, plan_in_use=s.value == 1)
            elif s.name == "linegate_link_up":
                link.append(s.value == 1)
            elif s.name == "linegate_device_state" and s.value == 1:
                devices[f"{s.labels.get('station', '')}/{s.labels.get('device', '')}"] = (
                    s.labels.get("state", "")
                )
    link_up = all(link) if link else None
    return replace(found, devices=dict(sorted(devices.items())), link_up=link_up)


class MetricsScraper:
    """Scrapes every target each ``every_s``; :meth:`health` is what it knows now."""

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        now: Callable[[], datetime],
        every_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._targets = tuple(targets)
        self._now = now
        self._every_s = every_s
        self._transport = transport
        self._health: dict[str, LineHealth] = {}

    @property
    def gateway_ids(self) -> frozenset[str]:
        return frozenset(t.gateway_id for t in self._targets)

    def health(self, gateway_id: str) -> LineHealth | None:
        """None: the line has no metrics_url, or was not scraped yet."""
        return self._health.get(gateway_id)

    async def scrape_all(self) -> None:
        if not self._targets:
            return
        async with httpx.AsyncClient(timeout=_TIMEOUT_S, transport=self._transport) as client:
            await asyncio.gather(*(self._scrape(client, t) for t in self._targets))

    async def run(self) -> None:
        while True:
            await self.scrape_all()
            await asyncio.sleep(self._every_s)

    async def _scrape(self, client: httpx.AsyncClient, target: ScrapeTarget) -> None:
        at = self._now()
        try:
            token = await asyncio.to_thread(target.token)
            response = await client.get(target.url, headers={"Authorization": f"Bearer {token}"})
            if response.status_code != 200:
                raise _Failed(f"HTTP {response.status_code}")
            if len(response.content) > _MAX_BYTES:
                raise _Failed("the metrics are over 4 MiB")
            health = await asyncio.to_thread(parse_health, response.text)
        except (httpx.HTTPError, _Failed, ValueError, ConfigError) as exc:
            before = self._health.get(target.gateway_id, LineHealth())
            reason = str(exc) or type(exc).__name__
            if before.failing_since is None:
                log.warning("%s: metrics unavailable: %s", target.gateway_id, reason)
            self._health[target.gateway_id] = replace(
                before, failing_since=before.failing_since or at, error=reason[:200]
            )
            return
        self._health[target.gateway_id] = replace(health, scraped_at=at)


class _Failed(Exception):
    pass
