"""An action sent again with its Idempotency-Key is answered with its first answer and
done once (flaky Wi-Fi: the answer was lost, the terminal sends again). Through the
station API of a running gateway (served_line), events counted on the hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.access.audit import read_trail
from gateway.app.root import Gateway
from gateway.store.db import Store
from gateway.web import replies
from tests.gateway.test_station_api import LOT, Line, served_line


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Line, Gateway]]:
    async with served_line(tmp_path) as (ln, gw):
        yield ln, gw


def _completed(ln: Line) -> int:
    return sum(e["type"] == "task.completed" for e in ln.hub.events)


async def test_a_complete_sent_twice_completes_once(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    await ln.order("SO-IDEM", "2030-01-01T10:00:00+08:00")
    unit = await ln.take("laser-1")
    await ln.scan("laser-1", unit["serial"])
    await ln.scan("laser-1", LOT)
    # Refused (not started): not kept, so the same id works once the task runs.
    once = {"Idempotency-Key": "7f3c2a9e-0001"}
    r = await ln.api.post("/api/stations/laser-1/complete", headers=once)
    assert r.status_code == 409 and r.json()["code"] == "NOT_RUNNING", r.text
    await ln.post("laser-1", "start")
    first = await ln.api.post("/api/stations/laser-1/complete", headers=once)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    await ln.events("task.completed")
    # The answer was lost; the terminal sends the same action again.
    again = await ln.api.post("/api/stations/laser-1/complete", headers=once)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # Without the id, the same press is refused: there is nothing to complete.
    r = await ln.api.post("/api/stations/laser-1/complete")
    assert r.status_code == 409, r.text
    assert _completed(ln) == 1
    # The id for another action is a client's bug: refused, nothing done.
    r = await ln.api.post("/api/stations/laser-1/pause", json={"reason": "break"}, headers=once)
    assert r.status_code == 422 and r.json()["code"] == "IDEMPOTENCY_KEY_REUSED", r.text
    assert r.json()["message_zh"]
    # Ids are each client's own: another station's terminal with the same id acts.
    await ln.post("qc-1", "login", {"badge": "OP-1005"})
    r = await ln.api.post("/api/stations/qc-1/logout", headers=once)
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers, r.text
    assert gw.stations.session("qc-1").badge is None


async def test_a_badge_scanned_twice_signs_in_once(served: tuple[Line, Gateway]) -> None:
    ln, gw = served
    key = {"Idempotency-Key": "scan-42"}
    body = {"code": "OP-1006"}
    first = await ln.api.post("/api/stations/laser-1/scan", json=body, headers=key)
    assert first.status_code == 200, first.text
    again = await ln.api.post("/api/stations/laser-1/scan", json=body, headers=key)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(read_trail(gw.store, action="sign_in")) == 1  # one sign-in on the trail
    # Same id, another body: refused.
    r = await ln.api.post("/api/stations/laser-1/scan", json={"code": "OP-1002"}, headers=key)
    assert r.status_code == 422, r.text
    for bad in (b"", b"x" * 65, b"two words", b"a/b", "k\u00e9".encode("latin-1")):
        r = await ln.api.post(
            "/api/stations/laser-1/scan", json=body, headers={b"Idempotency-Key": bad}
        )
        assert r.status_code == 400 and r.json()["code"] == "BAD_IDEMPOTENCY_KEY", (bad, r.text)


def test_old_answers_are_deleted_now_and_then(tmp_path: Path) -> None:
    store = Store(tmp_path / "line.db")
    store.open()
    try:
        keeper = replies.Keeper(store)
        t0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
        with store.transaction():
            keeper.keep("terminal:a", "old", "d", {"ok": True}, t0)
        later = t0 + replies.KEEP + replies.KEEP / 10
        with store.transaction():
            for n in range(replies.PRUNE_EVERY - 2):
                keeper.keep("terminal:a", f"k{n}", "d", {"ok": True}, later)
        assert replies.find(store, "terminal:a", "old") is not None  # not yet: a prune is due
        with store.transaction():
            keeper.keep("terminal:a", "last", "d", {"ok": True}, later)
        assert replies.find(store, "terminal:a", "old") is None
        assert replies.find(store, "terminal:a", "k0") is not None  # younger than KEEP
    finally:
        store.close()


async def test_a_refused_action_is_counted_once_whatever_carried_it(
    served: tuple[Line, Gateway],
) -> None:
    """A refusal changes nothing, yet it is kept (table refusals: a wrong item stopped at
    packing is an error the line caught, gateway/numbers): also when the action came with an
    Idempotency-Key, whose transaction is rolled back with the refusal."""
    ln, gw = served
    await ln.order("SO-REFUSE", "2030-01-01T10:00:00+08:00")
    await ln.take("laser-1")
    r = await ln.api.post("/api/stations/laser-1/complete", headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 409 and r.json()["code"] == "NOT_RUNNING", r.text
    r = await ln.api.post("/api/stations/laser-1/complete")
    assert r.status_code == 409, r.text
    rows = gw.store.conn.execute(
        "SELECT station, operator, code, order_id, at_pack FROM refusals ORDER BY id"
    ).fetchall()
    badge = gw.stations.session("laser-1").badge
    assert [tuple(row) for row in rows] == [
        ("laser-1", badge, "NOT_RUNNING", "SO-REFUSE", 0),
        ("laser-1", badge, "NOT_RUNNING", "SO-REFUSE", 0),
    ]
