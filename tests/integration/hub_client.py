"""The office side of the contract for tests: a paho client that publishes and records."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class HubClient:
    """Publishes to a gateway's ``in/`` topics and records everything on ``out/``."""

    def __init__(self, host: str, port: int, site: str = "hz01", line: str = "line3") -> None:
        self.prefix = f"linegate/v1/{site}/{line}/"
        self.received: list[dict[str, Any]] = []  # every envelope, duplicates included
        self.status: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        # A persistent session, as the office's hub has: events published while it is
        # reconnecting wait for it in the broker.
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="test-hub",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self._client.on_message = self._on_message
        # Subscribe on every (re)connect: a restarted broker without persistence forgets.
        self._client.on_connect = lambda c, *_: c.subscribe(self.prefix + "out/#", qos=1)
        self._client.reconnect_delay_set(1, 1)
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        with self._lock:
            if msg.topic.endswith("out/status"):
                self.status.append(doc)
            else:
                self.received.extend(doc if isinstance(doc, list) else [doc])

    def publish(self, suffix: str, payload: Any, retain: bool = False) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._client.publish(self.prefix + suffix, raw, qos=1, retain=retain).wait_for_publish(5)

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Events deduplicated by seq, in seq order (the hub's view)."""
        with self._lock:
            by_seq = {e["seq"]: e for e in self.received}
        out = [by_seq[s] for s in sorted(by_seq)]
        return [e for e in out if type_ is None or e["type"] == type_]

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events()):
                return
            time.sleep(0.05)
        raise AssertionError(f"hub did not see the expected events in {timeout} s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._client.reinitialise()  # closes the socket now, not in a garbage collection
