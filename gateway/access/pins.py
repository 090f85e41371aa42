"""Operators' PINs: set per operator in the line config (``pin_hash``, an argon2id hash
made by ``linegate users pin-hash``), asked for the actions a line requires it for.

Verifying costs what a password does (tens of milliseconds of CPU): run it off the event
loop. A 4-digit PIN is no secret against someone holding the config and time to try all
10 000; it guards against a badge picked up or copied, and the station API limits tries.
"""

from __future__ import annotations

from gateway.access import passwords
from gateway.config.line import Operator


def verify_pin(operator: Operator, pin: str) -> bool:
    """``pin`` is ``operator``'s PIN. False when the operator has none: an action that asks
    for a PIN is refused to an operator without one (its hash goes in line.toml)."""
    if operator.pin_hash is None or not passwords.PIN_PATTERN.fullmatch(pin):
        return False
    return passwords.verify(operator.pin_hash, pin)
