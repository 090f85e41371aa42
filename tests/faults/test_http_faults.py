"""HTTP hub faults in one run: 500, 503 with Retry-After, 429, a timeout after the body was
sent, a truncated answer, in a row, while events keep coming. Reported like the rest of
the fault suite: lost, duplicated (the hub's dedup by seq drops them), unexpected, and
the time from the last fault to the last event at the hub. (Each fault alone, and the
no-retry refusal, are in tests/cloud_sync/test_http_link.py and
tests/integration/test_http_line.py.)"""

from __future__ import annotations

import asyncio
import time

from cloud_sync.http import HttpLink, HttpSettings, MemoryLinkState
from simulators.http_hub import HttpHub, serve_http_hub
from tests.cloud_sync.doubles import ListOutbox, ListSink
from tests.faults.report import Report


async def test_a_hub_in_trouble_gets_every_event_once_in_the_end() -> None:
    hub = HttpHub("hz01", "line3", token="t", retry_after_s=1, slow_s=1.2)
    hub.fail("500", "503", "429", "timeout", "truncated", "500")
    async with serve_http_hub(hub) as url:
        settings = HttpSettings(
            base_url=url, site="hz01", line="line3", token="t", batch_max=40, timeout_s=0.8,
            poll_s=0.1, masterdata_poll_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.3,
        )  # fmt: skip
        outbox = ListOutbox()
        link = HttpLink(settings, MemoryLinkState())
        task = asyncio.create_task(link.run(ListSink(), outbox))
        try:
            for _ in range(10):  # events keep coming while the hub struggles
                outbox.add(25)
                await asyncio.sleep(0.3)
            async with asyncio.timeout(30):
                while hub.faults:  # noqa: ASYNC110 - the hub's script, played out
                    await asyncio.sleep(0.05)
            last_fault = time.monotonic()
            async with asyncio.timeout(30):
                while outbox.pending:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            recovered = time.monotonic() - last_fault
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    held = set(hub.events)
    r = Report(
        lost=[s for s in range(1, 251) if s not in held],
        duplicated=hub.duplicates,
        unexpected=sorted(s for s in held if not 1 <= s <= 250),
        recovery_s=recovered,
    )
    print(f"http hub faults: {r}; {link.retries} retries")  # noqa: T201 - the fault report
    assert r.lost == [] and r.unexpected == []
    assert link.retries >= 6
