"""Audit records made beside a running gateway (as ``linegate users|tokens|terminals`` make
them) reach the hub through a real Mosquitto: each once, in a stream whose seq has no gap,
while the gateway emits its own events; and those made while it is stopped, at its start."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.access.audit import AuditAction, record_in_store
from gateway.store.db import Store
from gateway.store.rows import AuditOutcome, Role
from tests.clocks import line_clock
from tests.conftest import Mosquitto
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient
from tests.integration.hub_line import hub_line

DATA = ROOT / "simulators" / "data"
EVENT_SCHEMA = json.loads((ROOT / "cloud_sync" / "schemas" / "event.schema.json").read_text())


class Boom(Exception):
    pass


def _order(order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": "2030-01-01T17:00:00+08:00",
        "lines": [{"sku": "TEE-WHT-M", "qty": 1}],
    }


@pytest.fixture
def line(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[GatewayProcess, HubClient]]:
    with hub_line(tmp_path, mosquitto) as started:
        yield started


def _add_user(store: Store, username: str) -> None:
    """What ``linegate users add`` records, in its own transaction, from its own process's
    connection."""
    with store.transaction():
        record_in_store(
            store,
            line_clock(),
            actor="root",
            role=Role.ADMIN,
            action=AuditAction.USER_ADD,
            target=username,
            outcome=AuditOutcome.OK,
            client="cli",
        )


def _stream(hub: HubClient) -> list[dict[str, Any]]:
    """The hub's events: each valid, seq 1..N without a gap."""
    events = hub.events()
    for e in events:
        jsonschema.validate(e, EVENT_SCHEMA)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return events


def _audited(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["target"] for e in events if e["type"] == "audit.recorded"]


def test_records_made_beside_the_gateway_reach_the_hub_once(
    line: tuple[GatewayProcess, HubClient],
) -> None:
    gw, hub = line
    users = [f"user-{i}" for i in range(12)]
    cli = Store(gw.db)
    cli.open()
    try:
        # In rounds, each with orders, so that the gateway appends events of its own
        # between the rounds' records.
        for round_ in range(3):
            for i in range(round_ * 4, round_ * 4 + 4):
                hub.publish("in/orders", _order(f"SO-{i}"))
                _add_user(cli, users[i])
            if round_ == 1:
                with pytest.raises(Boom), cli.transaction():  # rolled back: never reported
                    record_in_store(
                        cli,
                        line_clock(),
                        actor="root",
                        role=Role.ADMIN,
                        action=AuditAction.USER_ADD,
                        target="never",
                        outcome=AuditOutcome.OK,
                    )
                    raise Boom
            done = users[: round_ * 4 + 4]
            hub.wait_for(lambda ev, done=done: _audited(ev)[: len(done)] == done)
        hub.wait_for(lambda ev: sum(e["type"] == "order.accepted" for e in ev) == len(users))
        events = _stream(hub)
        assert _audited(events) == users
        audited = [e for e in events if e["type"] == "audit.recorded"]
        assert audited[0]["data"] == {
            "actor": "root",
            "role": "admin",
            "action": "user_add",
            "target": "user-0",
            "station": None,
            "outcome": "ok",
            "client": "cli",
        }
        # The seqs were shared with the gateway's own events, not split between writers.
        between = range(audited[0]["seq"], audited[-1]["seq"])
        assert any(e["type"] != "audit.recorded" for e in events if e["seq"] in between)

        # Recorded while the gateway is stopped: published when it starts, the others not
        # again (a second publication would come with a new seq).
        gw.stop()
        _add_user(cli, "while-stopped")
        gw.start()
        hub.wait_for(lambda ev: "while-stopped" in _audited(ev))
    finally:
        cli.close()
    events = _stream(hub)
    assert Counter(_audited(events)) == Counter([*users, "while-stopped"])
    assert _audited(events)[-1] == "while-stopped"
