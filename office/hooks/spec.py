"""A webhook as the sender and the projector see it: office.toml's ``[[webhooks]]`` with its
secret read in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from office.config import WebhookConfig

__all__ = ["UNANSWERED", "HookSpec", "hook_specs"]

# The office's own event: an order its line never answered (office/hooks/unanswered.py).
UNANSWERED = "order.unanswered"


@dataclass(frozen=True)
class HookSpec:
    name: str
    url: str
    secret: str
    events: frozenset[str]
    lines: frozenset[str] | None = None  # None: every line
    shop: str | None = None  # a shop's hook: only the orders that shop sent
    timeout_s: float = 10.0
    max_attempts: int = 12
    first_retry_s: float = 5.0
    max_retry_s: float = 3600.0

    def wants(self, type_: str, gateway_id: str) -> bool:
        return type_ in self.events and (self.lines is None or gateway_id in self.lines)

    def retry_after(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt: doubling, up to the cap."""
        return float(min(self.first_retry_s * 2 ** (attempts - 1), self.max_retry_s))


def hook_specs(hooks: Sequence[WebhookConfig], secrets: Mapping[str, str]) -> list[HookSpec]:
    return [
        HookSpec(
            name=h.name,
            url=h.url,
            secret=secrets[h.name],
            events=frozenset(h.events),
            lines=frozenset(h.lines) if h.lines is not None else None,
            shop=h.shop,
            timeout_s=h.timeout_s,
            max_attempts=h.max_attempts,
            first_retry_s=h.first_retry_s,
            max_retry_s=h.max_retry_s,
        )
        for h in hooks
    ]
