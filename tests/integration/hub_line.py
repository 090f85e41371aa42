"""A gateway process on a real Mosquitto with the reference master data retained: the line
that the MQTT tests run orders (and audit records) through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import Mosquitto, free_port
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient

DATA = ROOT / "simulators" / "data"


@contextmanager
def hub_line(tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[GatewayProcess, HubClient]]:
    hub = HubClient("127.0.0.1", broker.port)
    hub.publish(
        "in/masterdata/catalog", (DATA / "reference-catalog.json").read_bytes(), retain=True
    )
    hub.publish("in/masterdata/stock", (DATA / "reference-stock.json").read_bytes(), retain=True)
    gw = GatewayProcess(tmp_path, broker.port, free_port())
    gw.start()
    try:
        # The broker keeps orders for the gateway's session only once the session exists.
        hub.wait_for(lambda _: any(s["state"] == "online" for s in hub.status))
        yield gw, hub
    finally:
        gw.stop()
        hub.close()
