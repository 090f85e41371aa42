"""What the station API answers: what happened, and what the operator should do next."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """An answer to an operator action. ``ok`` is False for a failed check that was
    recorded (a wrong weight): the action happened, the result is bad."""

    message: str
    next: str
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """The action or scan was refused; nothing changed. ``message`` says why in the
    operator's words, ``next`` what to do instead."""

    def __init__(self, code: str, message: str, next_step: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.next = next_step


@dataclass
class Done:
    """What an action did, before the service adds the screen's next step (so that an
    answer's ``next`` is always what the station screen says right after it)."""

    message: str
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)
