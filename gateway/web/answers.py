"""The one shape of a refusal by the station API: ``{ok: false, code, message, next}``.

The desk's refusals have it (gateway/desk/replies.py); so must everything the web layer
refuses by itself (an unknown path, a body that is too big or too slow, a request that is
not HTTP), so that a terminal shows every refusal the same way.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.i18n import Lang, Text

__all__ = ["WebRefused", "refusal", "refusal_bytes"]


def refusal(code: str, message: str | Text, next_step: str | Text) -> dict[str, Any]:
    """A refusal as the API answers it; with ``message_zh`` and ``next_zh`` too when it is
    said as messages (the desk's refusals: gateway/i18n)."""
    answer: dict[str, Any] = {
        "ok": False,
        "code": code,
        "message": str(message),
        "next": str(next_step),
    }
    if isinstance(message, Text) or isinstance(next_step, Text):
        answer |= {"message_zh": _zh(message), "next_zh": _zh(next_step)}
    return answer


def _zh(said: str | Text) -> str:
    return said.render(Lang.ZH) if isinstance(said, Text) else said


def refusal_bytes(code: str, message: str, next_step: str) -> bytes:
    """:func:`refusal` as the JSON body of an answer written below the app."""
    return json.dumps(
        refusal(code, message, next_step), ensure_ascii=False, separators=(",", ":")
    ).encode()


class WebRefused(Exception):
    """A refusal by the web layer itself, before the desk (an unknown station, an order
    the plan does not know, the planner off, a PIN missing), answered in the API's shape;
    ``zh`` the message and next step in Chinese where an operator reads them."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        next_step: str,
        zh: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.next = next_step
        self.zh = zh
