"""The site board's scrape against a real gateway's ``GET /metrics`` (not a text typed to
look like one): the reference line's gateway of tests/gateway/test_metrics.py, its label
printer up and its scale on a serial port that does not exist, an HTTP hub link nobody
answers (every event waits in its outbox). The office reads it with the viewer token
the line issued, as ``[[lines]] metrics_url`` and ``metrics_token_file`` would have it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.base import DriverState
from office.answer.board_scrape import MetricsScraper, ScrapeTarget
from tests.gateway.conftest import catalog_bytes, order
from tests.gateway.test_metrics import served, until

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def test_the_board_reads_a_real_gateways_metrics(tmp_path: Path) -> None:
    async with served(tmp_path) as rig:
        sups = rig.gateway.floor.devices.supervisors
        printer, scale = sups["pack-1/printer"], sups["pack-1/scale"]
        await until(
            lambda: printer.state is DriverState.READY and scale.state is DriverState.DEGRADED
        )
        # An order taken in: its events wait in the outbox (no hub answers).
        rig.deliver("in/masterdata/catalog", catalog_bytes())
        rig.deliver("in/orders", json.dumps(order("SO-1", ("PEN-ENG", 1))).encode())
        await until(lambda: rig.db_one("SELECT count(*) FROM outbox") > 0)
        url = f"{rig.api.base_url}/metrics"
        viewer = rig.keys.token("viewer")
        scraper = MetricsScraper([ScrapeTarget("hz01/line3", url, lambda: viewer)], lambda: NOW)
        await scraper.scrape_all()
        waiting = rig.db_one("SELECT count(*) FROM outbox")  # read from the store file
    health = scraper.health("hz01/line3")
    assert health is not None and health.error is None and health.scraped_at == NOW
    # Its devices as the line has them: the printer ready, the scale not (no such port).
    assert health.devices["pack-1/printer"] == "ready"
    assert health.devices["pack-1/scale"] != "ready"
    assert health.outbox_events == waiting > 0  # nothing acknowledged: no hub answers
    assert health.link_up is False
