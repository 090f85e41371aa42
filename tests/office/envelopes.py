"""Envelopes as a gateway sends them (event.schema.json), for the office's tests."""

from __future__ import annotations

import json
from typing import Any

from cloud_sync.contract import Envelope

GATEWAY = "hz01/line3"


def doc(seq: int, gateway_id: str = GATEWAY, type_: str = "task.completed") -> dict[str, Any]:
    return {
        "v": 1,
        "gateway_id": gateway_id,
        "seq": seq,
        "event_id": f"{gateway_id}:{seq}",
        "ts": "2026-11-11T02:00:00.000000+00:00",
        "type": type_,
        "order_id": f"SO-{seq}",
        "data": {"n": seq},
    }


def pair(
    seq: int, gateway_id: str = GATEWAY, type_: str = "task.completed"
) -> tuple[Envelope, str]:
    d = doc(seq, gateway_id, type_)
    return Envelope.model_validate(d), json.dumps(d)


def pairs(seqs: list[int] | range, gateway_id: str = GATEWAY) -> list[tuple[Envelope, str]]:
    return [pair(seq, gateway_id) for seq in seqs]
