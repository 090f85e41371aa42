"""The site board's and reports' parts, as the composition root (office/app.py) wires them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from office.answer.board import Board
from office.answer.board_scrape import MetricsScraper, ScrapeTarget
from office.answer.reports import SiteReports
from office.config import OfficeConfig, read_secret
from office.store import Store

__all__ = ["SiteParts", "site_parts"]


@dataclass(frozen=True)
class SiteParts:
    board: Board
    reports: SiteReports
    scraper: MetricsScraper  # run() it in the office's task group


async def site_parts(store: Store, config: OfficeConfig, now: Callable[[], datetime]) -> SiteParts:
    # Each token file is readable now (load_config checked it); read again at each scrape.
    targets = [
        ScrapeTarget(
            line.gateway_id,
            line.metrics_url,
            functools.partial(
                read_secret,
                config.base_dir / line.metrics_token_file,
                f"metrics token of {line.gateway_id}",
            ),
        )
        for line in config.lines
        if line.metrics_url is not None and line.metrics_token_file is not None
    ]
    zone = ZoneInfo(config.site.timezone)
    configured = [line.gateway_id for line in config.lines]
    scraper = MetricsScraper(targets, now, config.site.scrape_every_s)
    bases = {t.gateway_id: t.url for t in targets}
    return SiteParts(
        board=Board(store, configured, scraper, zone, now),
        reports=SiteReports(store, configured, zone, now, bases),
        scraper=scraper,
    )
