"""From a payload to envelopes to store, and what to refuse, the same for HTTP and MQTT.

A payload is one envelope or a JSON array of them (hub-protocol.md). Each envelope is
checked against the wire model (its ``type`` is not restricted: unknown types are kept)
and must speak for the gateway the transport vouches for (the HTTP token's line, the MQTT
topic's); one that does not is refused with its reason and the rest go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cloud_sync.contract import Envelope
from office.store import RejectKind

__all__ = ["Refusal", "Sorted", "sort_payload"]


@dataclass(frozen=True)
class Refusal:
    kind: RejectKind
    reason: str
    claimed_gateway_id: str | None
    payload: bytes
    seq: int | None = None


@dataclass
class Sorted:
    """A payload's envelopes to store and its refusals; ``malformed`` when it is not even a
    JSON envelope or array (nothing in it can be stored)."""

    accepted: list[tuple[Envelope, str]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    malformed: bool = False


def sort_payload(payload: bytes, gateway_id: str, max_bytes: int) -> Sorted:
    out = Sorted()
    if len(payload) > max_bytes:
        out.malformed = True
        out.refused.append(
            Refusal(
                RejectKind.OVERSIZED,
                f"payload of {len(payload)} bytes is over {max_bytes}",
                gateway_id,
                payload,
            )
        )
        return out
    try:
        parsed: Any = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        out.malformed = True
        out.refused.append(Refusal(RejectKind.MALFORMED, f"not JSON: {exc}", gateway_id, payload))
        return out
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items or not all(isinstance(item, dict) for item in items):
        out.malformed = True
        out.refused.append(
            Refusal(
                RejectKind.MALFORMED,
                "not an envelope or a non-empty JSON array of envelopes",
                gateway_id,
                payload,
            )
        )
        return out
    for item in items:
        raw = json.dumps(item, ensure_ascii=False)
        claimed = item.get("gateway_id")
        claimed_id = claimed if isinstance(claimed, str) else None
        seq = item.get("seq") if isinstance(item.get("seq"), int) else None
        try:
            envelope = Envelope.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            out.refused.append(
                Refusal(
                    RejectKind.MALFORMED,
                    f"not a valid envelope: {problems}",
                    claimed_id,
                    raw.encode(),
                    seq,
                )
            )
            continue
        if envelope.gateway_id != gateway_id:
            out.refused.append(
                Refusal(
                    RejectKind.FOREIGN,
                    f"envelope claims gateway {envelope.gateway_id}, sent for {gateway_id}",
                    claimed_id,
                    raw.encode(),
                    seq,
                )
            )
            continue
        out.accepted.append((envelope, raw))
    return out
