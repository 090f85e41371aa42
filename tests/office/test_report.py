"""What the office tells of the lines: a gap open past its time is logged once (the
office's clock injected); ``GET /v1/lines`` and ``GET /metrics`` served for real (uvicorn
on loopback) to a reader's token only, with values from their definitions. On SQLite and
a real PostgreSQL; the store going down shows as ``linegate_office_store_up 0``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from office.access import Gate, Principal, Role
from office.app import serve_http
from office.receive.http import http_app
from office.report.gaps import GapWatch
from office.report.http import report_routes
from office.report.metrics import OfficeMetrics
from office.store import Store, schema
from tests.office.conftest import PostgreSQL, now
from tests.office.envelopes import GATEWAY, doc, pairs

pytestmark = pytest.mark.timeout(60)

READER, LINE_TOKEN = "reader-t0ken", "line3-t0ken"
OTHER = "hz01/line4"


class Clock:
    def __init__(self) -> None:
        self.at = now()

    def __call__(self) -> datetime:
        return self.at


def _gap_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "office.report.gaps" and r.levelno == logging.WARNING
    ]


async def test_a_gap_open_past_its_time_is_logged_once(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "office.report.gaps")
    clock = Clock()
    store = await Store.open(store_url, clock)
    watch = GapWatch(store, clock, report_after=timedelta(minutes=5))
    try:
        await store.add_events(GATEWAY, pairs([1, 2, 5, 6, 9]), "mqtt")  # gaps 3..4, 7..8
        assert await watch.check() == []
        clock.at += timedelta(seconds=299)
        await store.add_events(GATEWAY, pairs([3]), "mqtt")  # 3..4 narrows to 4..4
        assert await watch.check() == []
        clock.at += timedelta(seconds=1)  # 300 s since both were first seen
        logged = await watch.check()
        assert [(g.first, g.last, g.since) for g in logged] == [(4, 4, now()), (7, 8, now())]
        assert _gap_warnings(caplog) == [
            "hz01/line3: seq 4..4 missing for 0:05:00 (held through 3, highest seq 9)",
            "hz01/line3: seq 7..8 missing for 0:05:00 (held through 3, highest seq 9)",
        ]
        clock.at += timedelta(minutes=10)
        assert await watch.check() == []  # once per gap
        await store.add_events(GATEWAY, pairs([12]), "mqtt")  # a new gap, 10..11
        assert await watch.check() == []
        clock.at += timedelta(minutes=5)
        assert [(g.first, g.last) for g in await watch.check()] == [(10, 11)]
        await store.add_events(GATEWAY, pairs([4, 7, 8, 10, 11]), "mqtt")  # all filled
        assert await watch.check() == [] and watch.open_gaps(GATEWAY) == []
        assert len(_gap_warnings(caplog)) == 3
    finally:
        await store.close()


@pytest.fixture
async def office(store: Store) -> AsyncIterator[tuple[str, Store, Clock]]:
    clock = Clock()
    store._now = clock  # the store's clock, for last_seen
    watch = GapWatch(store, clock)
    gate = Gate(store, {READER: Principal("ops", Role.READER)}, clock)
    routes = report_routes(store, gate, OfficeMetrics(store, clock), watch)
    app = http_app(store, {LINE_TOKEN: GATEWAY}, 64 * 1024, routes)
    try:
        async with serve_http(app, "127.0.0.1", 0) as url:
            yield url, store, clock
    finally:
        await store.close()


def _reader(token: str = READER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_lines_answers_each_line_to_a_reader_only(
    office: tuple[str, Store, Clock],
) -> None:
    url, store, clock = office
    await store.add_events(GATEWAY, pairs([1, 2, 3, 6]), "http")
    await store.set_status(GATEWAY, {"state": "online", "gateway_id": GATEWAY})
    clock.at += timedelta(seconds=40)
    await store.add_events(OTHER, pairs([1], OTHER), "mqtt")
    async with httpx.AsyncClient(base_url=url) as client:
        for headers in ({}, _reader(LINE_TOKEN), _reader("nope")):
            refused = await client.get("/v1/lines", headers=headers)
            assert refused.status_code == 401
        answer = await client.get("/v1/lines", headers=_reader())
    assert answer.status_code == 200
    t0, t40 = now().isoformat(timespec="microseconds"), clock.at.isoformat(timespec="microseconds")
    assert answer.json() == {
        "lines": [
            {
                "gateway_id": GATEWAY,
                "held_through": 3,
                "highest_seq": 6,
                "gaps": [{"first": 4, "last": 5, "open_since": None, "reported": False}],
                "last_seen": t0,
                "status": {"state": "online", "gateway_id": GATEWAY},
            },
            {
                "gateway_id": OTHER,
                "held_through": 1,
                "highest_seq": 1,
                "gaps": [],
                "last_seen": t40,
                "status": None,
            },
        ]
    }
    async with store.transaction() as conn:
        audit = (await conn.execute(select(schema.audit).order_by(schema.audit.c.id))).all()
    assert [(a.actor, a.action, a.target, a.outcome) for a in audit] == [
        (None, "refused:board", "GET /v1/lines", "denied")
    ] * 3


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_what_the_office_did_and_tell_each_line(
    office: tuple[str, Store, Clock],
) -> None:
    url, store, clock = office
    await store.add_events(GATEWAY, pairs([1, 2, 3, 5, 8]), "http")  # 5 new, gaps 4, 6..7
    await store.add_events(GATEWAY, pairs([1, 2]), "mqtt")  # 2 duplicates
    other = {**doc(3), "event_id": "hz01/line3:other"}
    await store.add_events(OTHER, pairs([1, 2], OTHER), "mqtt")  # 2 new
    clock.at += timedelta(seconds=90)
    async with httpx.AsyncClient(base_url=url) as client:
        post = await client.post(
            f"/v1/gateways/{GATEWAY}/events",
            content=json.dumps([other, {**doc(9), "gateway_id": OTHER}]),
            headers=_reader(LINE_TOKEN),
        )
        assert post.status_code == 422  # the conflict stays in the gateway's outbox
        assert [r["seq"] for r in post.json()["refused"]] == [9, 3]
        assert post.json()["refused"][1]["reason"] == (
            "conflict: seq 3 already held with event_id hz01/line3:3; "
            "this one has event_id hz01/line3:other"
        )
        assert (await client.get("/metrics")).status_code == 401
        answer = await client.get("/metrics", headers=_reader())
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    got = _samples(answer.text)
    line, other_line = (("gateway_id", GATEWAY),), (("gateway_id", OTHER),)
    expected = {
        ("linegate_office_events_stored_total", (("via", "http"),)): 5.0,
        ("linegate_office_events_stored_total", (("via", "mqtt"),)): 2.0,
        ("linegate_office_duplicates_total", ()): 2.0,
        ("linegate_office_conflicts_total", ()): 1.0,
        ("linegate_office_rejected_total", (("reason", "conflict"),)): 1.0,
        ("linegate_office_rejected_total", (("reason", "foreign"),)): 1.0,
        ("linegate_office_rejected_total", (("reason", "auth"),)): 1.0,  # /metrics, no token
        ("linegate_office_rejected_total", (("reason", "malformed"),)): 0.0,
        ("linegate_office_rejected_total", (("reason", "oversized"),)): 0.0,
        ("linegate_office_store_up", ()): 1.0,
        ("linegate_office_line_held_through", line): 3.0,
        ("linegate_office_line_highest_seq", line): 8.0,
        ("linegate_office_line_gaps", line): 2.0,
        # The conflicting POST came at +90 s: the line was seen then.
        ("linegate_office_line_last_seen_age_seconds", line): 0.0,
        ("linegate_office_line_held_through", other_line): 2.0,
        ("linegate_office_line_highest_seq", other_line): 2.0,
        ("linegate_office_line_gaps", other_line): 0.0,
        ("linegate_office_line_last_seen_age_seconds", other_line): 90.0,
    }
    assert {k: got.get(k) for k in expected} == expected


async def test_metrics_say_when_the_store_is_down(postgres_own: PostgreSQL) -> None:
    store = await Store.open(postgres_own.url(), now)
    metrics = OfficeMetrics(store, now)
    routes = report_routes(
        store, Gate(store, {READER: Principal("ops", Role.READER)}, now), metrics
    )
    try:
        await store.add_events(GATEWAY, pairs([1]), "http")
        async with (
            serve_http(http_app(store, {}, 64 * 1024, routes), "127.0.0.1", 0) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            up = _samples((await client.get("/metrics", headers=_reader())).text)
            assert up[("linegate_office_store_up", ())] == 1.0
            postgres_own.stop()
            down = _samples((await client.get("/metrics", headers=_reader())).text)
            assert down[("linegate_office_store_up", ())] == 0.0
            assert ("linegate_office_line_held_through", (("gateway_id", GATEWAY),)) not in down
            assert down[("linegate_office_events_stored_total", (("via", "http"),))] == 1.0
            lines = await client.get("/v1/lines", headers=_reader())
            assert lines.status_code == 503
    finally:
        await store.close()
