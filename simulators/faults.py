"""Fault injection shared by every simulated device.

Link faults (drop, delay, garble) apply to each exchange the simulator answers; a
device's own faults (a machine fault, an unstable scale, paper out) and disconnects are
methods of each simulator. Tests and ``linegate simulate``'s control API change these
fields while the simulator runs.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Faults", "SimulatedDevice"]


@dataclass
class Faults:
    """Link faults: each probability is per exchange (a request, a frame, a label)."""

    drop: float = 0.0  # no answer at all: the driver must time out
    delay_s: float = 0.0  # added before every answer
    garble: float = 0.0  # the answer's bytes are corrupted
    rng: random.Random = field(default_factory=random.Random)

    def should_drop(self) -> bool:
        return self.drop > 0 and self.rng.random() < self.drop

    def should_garble(self) -> bool:
        return self.garble > 0 and self.rng.random() < self.garble

    async def delay(self) -> None:
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)

    def garble_bytes(self, data: bytes) -> bytes:
        """Flip bits in a few bytes (never none), as line noise does."""
        if not data:
            return b"\xff"
        out = bytearray(data)
        for _ in range(max(1, len(out) // 8)):
            i = self.rng.randrange(len(out))
            out[i] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def set(self, **values: float) -> None:
        """Change faults by name (the control API's entry); unknown names are refused."""
        for key, value in values.items():
            if key not in ("drop", "delay_s", "garble"):
                raise ValueError(f"unknown link fault {key!r} (drop, delay_s, garble)")
            setattr(self, key, float(value))

    def as_dict(self) -> dict[str, float]:
        return {"drop": self.drop, "delay_s": self.delay_s, "garble": self.garble}


class SimulatedDevice(Protocol):
    """What ``linegate simulate`` and the tests do with any simulated device."""

    @property
    def name(self) -> str:
        """``station/device``, as the gateway names the real one."""
        ...

    faults: Faults

    async def start(self) -> None:
        """Appear: listen on the configured address (or create the pty / socket path)."""
        ...

    async def stop(self) -> None:
        """Disappear as if unplugged or powered off; safe to call twice."""
        ...

    async def disconnect(self) -> None:
        """Drop the current connections but keep listening (a link blip)."""
        ...

    def status(self) -> dict[str, Any]:
        """What the simulator holds now (weight, PackML state, labels kept …)."""
        ...
