"""Small honest stand-ins for the gateway's side of the hub link: a sink and an outbox.

The link is what these tests examine; these keep the ports' contracts (the outbox's
waiting rule included) in a few lines of memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from cloud_sync.ports import InboundMessage, OutboxRecord

GATEWAY = "hz01/line3"


class ListSink:
    """Records what it is given; raises for the first ``fail_times`` calls."""

    def __init__(self, fail_times: int = 0) -> None:
        self.batches: list[list[InboundMessage]] = []
        self.failed: list[list[InboundMessage]] = []
        self._fail_times = fail_times

    def deliver(self, messages: Sequence[InboundMessage]) -> None:
        if len(self.failed) < self._fail_times:
            self.failed.append(list(messages))
            raise RuntimeError("store unavailable")
        self.batches.append(list(messages))

    @property
    def messages(self) -> list[InboundMessage]:
        return [message for batch in self.batches for message in batch]


class ListOutbox:
    """An outbox in a dict, seq-ordered, with the same waiting contract as the real one."""

    def __init__(self) -> None:
        self.pending: dict[int, bytes] = {}
        self.ack_calls: list[list[int]] = []
        self._last_seq = 0
        self._grew = asyncio.Event()

    def add(self, count: int = 1, *, as_array: bool = False) -> None:
        envelopes = []
        for _ in range(count):
            self._last_seq += 1
            envelopes.append(envelope(self._last_seq))
        if as_array:  # the contract allows an array of envelopes in one message
            self.pending[self._last_seq] = json.dumps(envelopes).encode()
        else:
            for item in envelopes:
                self.pending[item["seq"]] = json.dumps(item).encode()
        self._grew.set()
        self._grew = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def peek(self, after_seq: int, limit: int) -> list[OutboxRecord]:
        seqs = sorted(seq for seq in self.pending if seq > after_seq)[:limit]
        return [OutboxRecord(seq, self.pending[seq]) for seq in seqs]

    def ack(self, seqs: Sequence[int]) -> None:
        self.ack_calls.append(list(seqs))
        for seq in seqs:
            del self.pending[seq]

    async def wait_for_new(self, after_seq: int) -> None:
        while self._last_seq <= after_seq:
            await self._grew.wait()


def envelope(seq: int) -> dict[str, Any]:
    return {
        "v": 1,
        "gateway_id": GATEWAY,
        "seq": seq,
        "event_id": f"{GATEWAY}:{seq}",
        "ts": "2026-11-11T10:00:00+08:00",
        "type": "kpi.snapshot",
        "data": {},
    }
