"""What a fault test reports: events lost, duplicated and unexpected at the hub, and how
long the line took to recover. The hub's side is a plain MQTT subscriber that keeps every
envelope it receives, repeats included, as a hub deduplicating by seq would see them."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PREFIX = "linegate/v1/hz01/line3/"


class HubRecorder:
    def __init__(self, port: int, host: str = "127.0.0.1", name: str = "fault-hub") -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311,
            clean_session=False,
        )  # fmt: skip
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_connect = lambda c, *_: c.subscribe(PREFIX + "out/events", qos=1)
        self._client.reconnect_delay_set(1, 1)
        self._client.connect(host, port)
        self._client.loop_start()
        assert self._subscribed.wait(5), "the hub could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        with self._lock:
            self.received.extend(doc if isinstance(doc, list) else [doc])

    def wait_subscribed(self, within: float = 15.0, *, again: bool = False) -> None:
        """Until the hub's subscription is in place (``again``: a new one, after a broker
        restart that may have lost the old one)."""
        if again:
            self._subscribed.clear()
        assert self._subscribed.wait(within), "the hub did not subscribe"

    def unique(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            return {int(e["seq"]): e for e in self.received}

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._client.reinitialise()  # closes the socket now, not in a garbage collection


@dataclass(frozen=True)
class Report:
    lost: list[int]  # seqs the gateway committed that never reached the hub
    duplicated: int  # envelopes received more than once (a hub's dedup drops them)
    unexpected: list[int]  # seqs the gateway never committed
    recovery_s: float

    def __str__(self) -> str:
        return (
            f"lost {len(self.lost)}, duplicated {self.duplicated}, unexpected "
            f"{len(self.unexpected)}, recovered in {self.recovery_s:.2f} s"
        )


def report(hub: HubRecorder, last_seq: int, recovery_s: float) -> Report:
    with hub._lock:
        seqs = Counter(int(e["seq"]) for e in hub.received)
    return Report(
        lost=[s for s in range(1, last_seq + 1) if s not in seqs],
        duplicated=sum(n - 1 for n in seqs.values()),
        unexpected=sorted(s for s in seqs if not 1 <= s <= last_seq),
        recovery_s=recovery_s,
    )


def last_committed_seq(db: Path) -> int:
    """The seq of the newest event the gateway committed (its counter, read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def oldest_unsent_seq(db: Path) -> int | None:
    """The oldest event the gateway still holds for the hub (None: it holds none)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT min(seq) FROM outbox").fetchone()
        return int(row[0]) if row and row[0] is not None else None
    finally:
        conn.close()
