"""What the hub link needs from the core: an inbound sink and a durable outbox.

The gateway implements both; the link only moves bytes and acknowledgements. The sink
commits before it returns, so the link acknowledges an inbound message to the broker only
once it is safe on disk, and the outbox forgets an event only after the hub acknowledged it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from the hub: ``topic`` is the part after the gateway prefix."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One event waiting for the hub: its ``seq`` and its JSON envelope."""

    seq: int
    payload: bytes


class InboundSink(Protocol):
    """Takes inbound messages and commits their effects durably before returning."""

    def deliver(self, messages: Sequence[InboundMessage]) -> None: ...


class Outbox(Protocol):
    """The transactional outbox, read in ``seq`` order."""

    def peek(self, after_seq: int, limit: int) -> list[OutboxRecord]:
        """Events with ``seq > after_seq``, oldest first, at most ``limit``."""
        ...

    def ack(self, seqs: Sequence[int]) -> None:
        """The hub holds these events: remove them for good."""
        ...

    async def wait_for_new(self, after_seq: int) -> None:
        """Return once an event with ``seq > after_seq`` is committed."""
        ...

    @property
    def last_seq(self) -> int:
        """The newest committed event's seq (0: none yet)."""
        ...
