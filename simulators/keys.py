"""The credentials a simulated client of the station API holds, as a real one would.

A station's terminal acts for its station only, with the credential it received when it
was paired (``lgc_…``); what a terminal may not do (reprint, the ``use_as_is``
disposition, a device's reconnect, replanning, reading the whole board) is done by a
person or program of the right role, here with an API token (``lgt_…``) per role. The
simulated operators, the demo, the benchmarks and the tests all talk to the gateway
through this: there is no way around its gate.

No gateway import (simulators stand on their own): the credentials come from whoever
paired the terminals and made the tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

import httpx

__all__ = ["LineKeys"]

_STATION_PATH = re.compile(r"^/api/stations/([^/]+)(?:/([^/]+))?$")
_DEVICE_ACTION = re.compile(r"^/api/devices/[^/]+/[^/]+/[^/]+$")


@dataclass(frozen=True)
class LineKeys(httpx.Auth):
    """Picks the credential of each request by what it does: a station's action goes
    through that station's terminal, other things with the token of the role that may.
    A request that carries its own ``Authorization`` header keeps it."""

    terminals: Mapping[str, str]  # station -> lgc_ credential
    tokens: Mapping[str, str] = field(default_factory=dict)  # role -> lgt_ token

    def terminal(self, station: str) -> str:
        return self.terminals[station]

    def token(self, role: str) -> str:
        return self.tokens[role]

    def credential(self, request: httpx.Request) -> str | None:
        path = request.url.path
        found = _STATION_PATH.match(path)
        if found is not None:
            station, action = found.groups()
            if action in ("reprint", "override"):
                return self.tokens.get("line_lead")
            if action == "fail" and _disposition(request) == "use_as_is":
                return self.tokens.get("quality")
            return self.terminals.get(station)
        if request.method == "POST" and _DEVICE_ACTION.match(path):
            return self.tokens.get("maintenance")
        return self.tokens.get("line_lead") or self.tokens.get("viewer")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "authorization" not in request.headers:
            credential = self.credential(request)
            if credential is not None:
                request.headers["Authorization"] = f"Bearer {credential}"
        yield request


def _disposition(request: httpx.Request) -> object:
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        return None
    return body.get("disposition") if isinstance(body, dict) else None
