"""Station actions as the station API carries them out for the gate's callers: the
operator's PIN where the line asks one, and the audit records an action calls for (an
operator signed in or out by it, a failed sign-in, a privileged action), each in the
action's own transaction (issue 12)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from gateway.access import audit, pins
from gateway.access.audit import AuditAction
from gateway.access.policy import TerminalPrincipal
from gateway.config.line import PinAction
from gateway.desk.replies import Refused, Reply
from gateway.desk.service import StationService
from gateway.i18n import Lang
from gateway.store.rows import AuditOutcome, Role
from gateway.web import replies
from gateway.web.access_routes import SignIns
from gateway.web.answers import WebRefused
from gateway.web.gate import Caller, actor_of, client_of, role_of

__all__ = ["PIN_HEADER", "Acting", "reply_body"]

# The header an operator's PIN travels in, where the line asks for one ([access]).
PIN_HEADER = "X-Operator-PIN"


def reply_body(reply: Reply) -> dict[str, Any]:
    """A desk's reply as the API answers it, in English and in Chinese."""
    return {
        "ok": reply.ok,
        "message": reply.message,
        "next": reply.next,
        "message_zh": reply.message_text.render(Lang.ZH),
        "next_zh": reply.next_text.render(Lang.ZH),
        **reply.data,
    }


class Acting:
    """The station actions' common path (see the module)."""

    def __init__(self, service: StationService, sign_ins: SignIns) -> None:
        self.service = service
        self.core = service.core
        self.store = service.core.store
        self.sign_ins = sign_ins
        self.operators = {o.badge: o for o in self.core.config.operators}
        self.pin_required = frozenset(self.core.config.access.pin_required)
        self.keeper = replies.Keeper(self.store)

    def station(self, station_id: str) -> str:
        """``station_id`` if the line has it; refused 404 ``UNKNOWN_STATION`` if not."""
        if station_id not in self.core.config.stations:
            raise WebRefused(
                404,
                "UNKNOWN_STATION",
                f"There is no station {station_id} on this line.",
                "Check the station in the terminal's address: GET /api/stations lists them.",
            )
        return station_id

    @staticmethod
    def caller(request: Request) -> Caller:
        found: Caller = request.state.caller
        return found

    def trail(self, request: Request, **fields: Any) -> None:
        """Write one audit record for this request's caller, in the current transaction."""
        principal = self.caller(request).principal
        fields.setdefault("actor", actor_of(principal))
        fields.setdefault("role", role_of(principal))
        audit.record(self.core, client=client_of(request.scope), **fields)

    async def check_pin(
        self, request: Request, station_id: str, badge: str | None, login: bool
    ) -> None:
        """The operator's PIN (header X-Operator-PIN), where the line asks one; refused
        (and audited) when missing or wrong, held back after repeated failures."""
        operator = self.operators.get(badge) if badge is not None else None
        principal = self.caller(request).principal
        if operator is None or not isinstance(principal, TerminalPrincipal):
            return  # an unknown badge is the desk's to refuse; a line lead has no PIN
        pin = request.headers.get(PIN_HEADER)
        if not pin:
            raise WebRefused(
                401,
                "PIN_REQUIRED",
                f"This action needs {operator.name}'s PIN as well as the badge.",
                "Enter your PIN and do it again.",
                (f"此操作需要 {operator.name} 的 PIN 码和工牌。", "请输入 PIN 码后重试。"),
            )
        address = f"terminal:{principal.terminal_id}"
        wait_s = self.sign_ins.throttle.check(operator.badge, address)
        if wait_s > 0:
            raise WebRefused(
                429,
                "TOO_MANY_ATTEMPTS",
                f"Too many wrong PINs for {operator.badge}: wait {max(1, round(wait_s))} s.",
                "Wait, then enter your PIN again; ask the line lead if you forgot it.",
                (
                    f"{operator.badge} 的 PIN 码错误次数过多，请稍候。",
                    "请稍后重试；如忘记 PIN 码，请联系班组长。",
                ),
            )
        async with self.sign_ins.checks:
            right = await asyncio.to_thread(pins.verify_pin, operator, pin)
        if right:
            self.sign_ins.throttle.succeeded(operator.badge, address)
            return
        self.sign_ins.throttle.failed(operator.badge, address)
        with self.store.transaction():
            self.trail(
                request,
                actor=operator.badge,
                role=Role.OPERATOR,
                action=AuditAction.SIGN_IN if login else AuditAction.REQUEST,
                outcome=AuditOutcome.DENIED,
                target=f"{request.method} {request.url.path}",
                station=station_id,
                detail="WRONG_PIN",
            )
        raise WebRefused(
            403,
            "WRONG_PIN",
            f"That is not {operator.name}'s PIN.",
            "Enter your PIN again.",
            (f"{operator.name} 的 PIN 码不正确。", "请重新输入 PIN 码。"),
        )

    async def act(
        self,
        request: Request,
        station_id: str,
        do: Callable[[StationService], Reply],
        *,
        pin: PinAction | None = None,
        badge: str | None = None,
        signs: bool = False,
        privileged: AuditAction | None = None,
        detail: str | None = None,
    ) -> dict[str, Any] | JSONResponse:
        """Carry out a station action for the request's caller: the PIN where the line
        asks one, and in the action's own transaction the audit records it calls for: an
        operator signed in or out by it (``signs``: login, logout, a badge scanned; a
        refused sign-in of ``badge`` too), a privileged action. An action sent again with
        its ``Idempotency-Key`` gets its first answer (gateway/web/replies.py)."""
        self.station(station_id)
        once = await self._once(request)
        if pin is not None and pin in self.pin_required:
            whose = badge or self.service.session(station_id).badge
            await self.check_pin(request, station_id, whose, pin is PinAction.LOGIN)
        if once is not None:
            # No await from here to the commit: a second copy waits for this one's answer.
            replayed = self._replayed(*once)
            if replayed is not None:
                return replayed
        if not signs and privileged is None and once is None:
            # Most actions (a scan of a unit or lot, start, complete …) record nothing
            # more: the desk's own transaction is the whole of it, as before the gate.
            return reply_body(do(self.service))
        try:
            with self.store.transaction():
                # Read here, not before the PIN's check: other requests ran meanwhile.
                before = self.service.session(station_id).badge
                reply = do(self.service)
                after = self.service.session(station_id).badge
                if after != before:
                    self._signed(request, station_id, before, after)
                if privileged is not None:
                    self.trail(
                        request,
                        action=privileged,
                        outcome=AuditOutcome.OK,
                        target=request.url.path,
                        station=station_id,
                        detail=detail,
                    )
                if once is not None:
                    self.keeper.keep(*once, reply_body(reply), self.core.clock.now())
        except Refused as exc:
            # Rolled back with the action: kept now, on its own.
            self.service.note_refused(station_id, exc)
            if badge is not None:  # a sign-in refused: the trail keeps failed ones too
                known = badge in self.operators
                with self.store.transaction():
                    self.trail(
                        request,
                        actor=badge if known else None,
                        role=Role.OPERATOR if known else None,
                        action=AuditAction.SIGN_IN,
                        outcome=AuditOutcome.DENIED,
                        target=None if known else badge,
                        station=station_id,
                        detail=exc.code,
                    )
            raise
        return reply_body(reply)

    async def _once(self, request: Request) -> tuple[str, str, str] | None:
        """(client, key, the request's digest) when the request carries an action id."""
        key = request.headers.get(replies.HEADER)
        if key is None:
            return None
        client = replies.client_of(self.caller(request).principal)
        if client is None or not replies.KEY_PATTERN.fullmatch(key):
            raise WebRefused(
                400,
                "BAD_IDEMPOTENCY_KEY",
                f"{replies.HEADER} must be 1 to 64 letters, digits or ._:- (a UUID will do).",
                "Send the action again with a new id.",
                (
                    "Idempotency-Key 须为 1 至 64 个字母、数字或 ._:-（可用 UUID）。",
                    "请换一个新 ID 重发。",
                ),
            )
        digest = replies.request_digest(request.method, request.url.path, await request.body())
        return client, key, digest

    def _replayed(self, client: str, key: str, digest: str) -> JSONResponse | None:
        """The first answer to this id, or None if it is new; refused if the id was used
        for another request."""
        first = replies.find(self.store, client, key)
        if first is None:
            return None
        if first.request_sha256 != digest:
            raise WebRefused(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                f"This {replies.HEADER} was already used for another action; nothing was done.",
                "Give every new action a new id.",
                ("此 Idempotency-Key 已用于另一操作，本次未执行。", "每个新操作请使用新的 ID。"),
            )
        return JSONResponse(json.loads(first.answer), headers={replies.REPLAYED_HEADER: "true"})

    def _signed(
        self, request: Request, station_id: str, before: str | None, after: str | None
    ) -> None:
        if before is not None:
            self.trail(
                request,
                actor=before,
                role=Role.OPERATOR,
                action=AuditAction.SIGN_OUT,
                outcome=AuditOutcome.OK,
                station=station_id,
            )
        if after is not None:
            self.trail(
                request,
                actor=after,
                role=Role.OPERATOR,
                action=AuditAction.SIGN_IN,
                outcome=AuditOutcome.OK,
                station=station_id,
            )

    def by_lead(self, request: Request, action: AuditAction) -> AuditAction | None:
        """``action`` when someone other than the station's terminal does it (a line lead
        pausing a station): a privileged action, for the trail."""
        return None if isinstance(self.caller(request).principal, TerminalPrincipal) else action
