"""What the station API answers: what happened, and what the operator should do next.

Each is a :class:`~gateway.i18n.Text`: ``message`` and ``next`` are its English words
(what the existing callers and the hub read), ``message_text`` and ``next_text`` the
message itself, for an answer in the operator's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.i18n import Text


@dataclass
class Reply:
    """An answer to an operator action. ``ok`` is False for a failed check that was
    recorded (a wrong weight): the action happened, the result is bad."""

    message_text: Text
    next_text: Text
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return str(self.message_text)

    @property
    def next(self) -> str:
        return str(self.next_text)


class Refused(Exception):
    """The action or scan was refused; nothing changed. ``message`` says why in the
    operator's words, ``next`` what to do instead."""

    def __init__(self, code: str, message: Text, next_step: Text) -> None:
        super().__init__(str(message))
        self.code = code
        self.message_text = message
        self.next_text = next_step
        self.message = str(message)
        self.next = str(next_step)


@dataclass
class Done:
    """What an action did, before the service adds the screen's next step (so that an
    answer's ``next`` is always what the station screen says right after it)."""

    message: Text
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)
