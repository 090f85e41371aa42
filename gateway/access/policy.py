"""Who may do what on the station API (issue 12): one table, route by route, and a pure
:func:`decide` that the web layer asks before a request reaches an action.

Who asks (a *principal*): a paired terminal bound to a station, with the badge of the
operator signed in there if any; a person's account (browser session or basic sign-in);
a program's API token; or nobody (:class:`Anonymous`). Tokens are scoped by their role
exactly as an account of that role is: the role says what may be done, not who types.

The rules (issue 12, "Roles and a policy for every route"):

- operator: acts only at the station where signed in, and only through the terminal bound
  to that station. ``login`` and ``scan`` need no operator yet: a badge scanned is a
  sign-in (gateway/desk/scanning.py), and the desk refuses any other scan without one.
- line lead: pause/resume any station, acknowledge alarms, replan, reprint, override.
- quality: the ``use_as_is`` disposition of ``fail``; releasing held units.
- maintenance: device actions. admin: users, tokens, terminals.
- viewer, and every other account role: the read-only board.
- admin gets no station action and no line-lead action (least privilege): managing who
  may sign in is not running the line, and a stolen admin password should not move units.
- a terminal reads its own station's view only: it shows one station, and a screen on the
  floor's shared Wi-Fi should not be a window onto the whole line.
- ``/api/health`` is open: monitoring polls it without credentials and it holds no secret.
- the docs (only served when ``[http] api_docs`` is on) take any account or token and no
  terminal or anonymous caller: they map the whole API for whoever integrates with it,
  which is an office's or a lead's business, not a guest's on the floor Wi-Fi or a
  station screen's.

Deny by default: a route without an entry in :data:`ROUTES` is refused (``NO_POLICY``),
and :func:`missing_policies` lets the web layer's test fail on such a route.

Pure: no I/O, no store. Who is signed in at a terminal is the caller's to find out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from gateway.store.rows import Disposition, Role

__all__ = [
    "ROUTES",
    "VARIANTS",
    "AccessRequest",
    "Anonymous",
    "Decision",
    "DenyCode",
    "Policy",
    "Principal",
    "TerminalPrincipal",
    "TokenPrincipal",
    "UserPrincipal",
    "decide",
    "judge",
    "missing_policies",
    "policy_for",
]


@dataclass(frozen=True)
class TerminalPrincipal:
    """A paired terminal bound to ``station``; ``operator`` the badge signed in there."""

    terminal_id: str
    station: str
    operator: str | None


@dataclass(frozen=True)
class UserPrincipal:
    """A person's account: a browser session or a basic sign-in."""

    username: str
    role: Role


@dataclass(frozen=True)
class TokenPrincipal:
    """A program with an API token; its role scopes it as an account's would."""

    token_id: str
    role: Role


@dataclass(frozen=True)
class Anonymous:
    """No credential, or none the gateway accepts."""


Principal = TerminalPrincipal | UserPrincipal | TokenPrincipal | Anonymous


@dataclass(frozen=True)
class AccessRequest:
    """A request as the policy sees it. ``path`` is the route's template (FastAPI's
    ``route.path``), ``station`` the path's station if it has one, ``variant`` what a
    body-dependent rule looks at (the ``fail`` action's disposition)."""

    method: str
    path: str
    station: str | None = None
    variant: str | None = None


class Policy(StrEnum):
    """Who may use a route. Each value's rule is in :func:`judge`."""

    OPEN = "open"  # anyone, signed in or not
    SIGNED_IN = "signed_in"  # any credential: a terminal, an account or a token
    ACCOUNT = "account"  # any account or token, no terminal
    BOARD = "board"  # the read-only board: any account or token role
    STATION_VIEW = "station_view"  # the board, and the terminal of the path's station
    STATION_TERMINAL = "station_terminal"  # that station's terminal, operator or not
    STATION_OPERATOR = "station_operator"  # that station's terminal with an operator
    OPERATOR_OR_LEAD = "operator_or_lead"  # STATION_OPERATOR, or a line lead anywhere
    LINE_LEAD = "line_lead"
    QUALITY = "quality"
    MAINTENANCE = "maintenance"
    ADMIN = "admin"


_STATION = "/api/stations/{station_id}"

# The decision for every route of the station API (gateway/web/station_api.py), one line
# each. A route added there without a line here is refused (deny by default).
ROUTES: Mapping[tuple[str, str], Policy] = MappingProxyType(
    {
        ("GET", "/api/health"): Policy.OPEN,
        # Signing in and pairing are how a credential is had: open, throttled and audited.
        ("POST", "/api/session"): Policy.OPEN,
        ("GET", "/api/session"): Policy.SIGNED_IN,
        ("DELETE", "/api/session"): Policy.SIGNED_IN,
        ("POST", "/api/terminals/claim"): Policy.OPEN,
        ("GET", "/api/stations"): Policy.BOARD,
        ("GET", _STATION): Policy.STATION_VIEW,
        ("GET", "/api/devices"): Policy.BOARD,
        ("POST", f"{_STATION}/login"): Policy.STATION_TERMINAL,
        ("POST", f"{_STATION}/scan"): Policy.STATION_TERMINAL,
        ("POST", f"{_STATION}/logout"): Policy.STATION_OPERATOR,
        ("POST", f"{_STATION}/next"): Policy.STATION_OPERATOR,
        ("POST", f"{_STATION}/start"): Policy.STATION_OPERATOR,
        ("POST", f"{_STATION}/checklist"): Policy.STATION_OPERATOR,
        ("POST", f"{_STATION}/weight"): Policy.STATION_OPERATOR,
        ("POST", f"{_STATION}/complete"): Policy.STATION_OPERATOR,
        ("POST", f"{_STATION}/fail"): Policy.STATION_OPERATOR,  # use_as_is: VARIANTS
        ("POST", f"{_STATION}/pause"): Policy.OPERATOR_OR_LEAD,
        ("POST", f"{_STATION}/resume"): Policy.OPERATOR_OR_LEAD,
        ("POST", f"{_STATION}/reprint"): Policy.LINE_LEAD,
        ("POST", f"{_STATION}/override"): Policy.LINE_LEAD,
        ("GET", "/api/alarms"): Policy.BOARD,
        ("POST", "/api/alarms/{alarm_id}/ack"): Policy.LINE_LEAD,
        ("POST", "/api/devices/{station_id}/{device}/reconnect"): Policy.MAINTENANCE,
        ("GET", "/api/plan"): Policy.BOARD,
        ("GET", "/api/plan/orders/{order_id}"): Policy.BOARD,
        ("POST", "/api/plan/replan"): Policy.LINE_LEAD,
        ("GET", "/api/trace/unit/{serial}"): Policy.BOARD,
        ("GET", "/api/trace/lot/{lot}"): Policy.BOARD,
        # Customer service's lookup: any order, by its id, a unit's serial or the
        # customer's reference (gateway/web/order_routes.py).
        ("GET", "/api/orders"): Policy.BOARD,
        ("GET", "/api/orders/{order_id}"): Policy.BOARD,
        ("GET", "/api/orders/{order_id}/live"): Policy.BOARD,
        # e-SOP pictures, named by their SHA-256: an <img> sends no bearer token, and a
        # name cannot be guessed without the catalog (gateway/web/media_routes.py).
        ("GET", "/media/{sha256}"): Policy.OPEN,
        ("HEAD", "/media/{sha256}"): Policy.OPEN,
        # The screens (gateway/web/screens.py): a page is a shell that holds no data, and
        # its assets are the gateway's own; the data behind them goes through the gate.
        ("GET", "/"): Policy.OPEN,
        ("GET", "/board"): Policy.OPEN,
        ("GET", "/orders"): Policy.OPEN,
        ("GET", "/station/{station_id}"): Policy.OPEN,
        ("GET", "/static/{name:path}"): Policy.OPEN,
        ("GET", "/api/board"): Policy.BOARD,
        ("GET", "/api/board/live"): Policy.BOARD,
        ("GET", f"{_STATION}/live"): Policy.STATION_VIEW,
        # "Can we take this promotion?" (issue 14): the line lead's page, and the check
        # itself, which costs a planning worker's CPU (gateway/web/capacity_routes.py).
        ("GET", "/capacity"): Policy.OPEN,
        ("POST", "/api/capacity"): Policy.LINE_LEAD,
        # The reports (issue 14, gateway/web/report_routes.py): the list is a page that holds
        # no data; a report's page and files are its data, for the viewer role and up.
        ("GET", "/reports"): Policy.OPEN,
        ("GET", "/api/reports"): Policy.BOARD,
        ("GET", "/reports/{report_id}"): Policy.BOARD,
        ("GET", "/reports/{report_id}/{file}"): Policy.BOARD,
        # Prometheus' scrape (issue 16): the board's numbers in its format, so the board's
        # rule; a monitoring system holds a viewer token (a bearer token file), never
        # nothing: order counts and alarms are no guest's on the floor Wi-Fi.
        ("GET", "/metrics"): Policy.BOARD,
        # Served only with [http] api_docs; Starlette answers HEAD on them too.
        ("GET", "/api/docs"): Policy.ACCOUNT,
        ("HEAD", "/api/docs"): Policy.ACCOUNT,
        ("GET", "/docs/oauth2-redirect"): Policy.ACCOUNT,
        ("HEAD", "/docs/oauth2-redirect"): Policy.ACCOUNT,
        ("GET", "/redoc"): Policy.ACCOUNT,
        ("HEAD", "/redoc"): Policy.ACCOUNT,
        ("GET", "/api/openapi.json"): Policy.ACCOUNT,
        ("HEAD", "/api/openapi.json"): Policy.ACCOUNT,
    }
)

# Where the body changes who may: (method, path, variant) → the policy used instead.
VARIANTS: Mapping[tuple[str, str, str], Policy] = MappingProxyType(
    {("POST", f"{_STATION}/fail", Disposition.USE_AS_IS.value): Policy.QUALITY}
)

_ACCOUNT_ROLES = frozenset(Role) - {Role.OPERATOR}  # an operator has no account or token
_ROLE_OF: Mapping[Policy, Role] = MappingProxyType(
    {
        Policy.LINE_LEAD: Role.LINE_LEAD,
        Policy.QUALITY: Role.QUALITY,
        Policy.MAINTENANCE: Role.MAINTENANCE,
        Policy.ADMIN: Role.ADMIN,
    }
)
# Who a policy lets in, said to the person refused: (English, Chinese).
_WHO: Mapping[Policy, tuple[str, str]] = MappingProxyType(
    {
        Policy.OPEN: ("anyone", "任何人"),
        Policy.SIGNED_IN: (
            "a paired terminal, a signed-in account or an API token",
            "已配对的终端、已登录的账户或 API 令牌",
        ),
        Policy.ACCOUNT: ("a signed-in account or API token", "已登录的账户或 API 令牌"),
        Policy.BOARD: ("a signed-in account or API token", "已登录的账户或 API 令牌"),
        Policy.STATION_VIEW: (
            "the station's own terminal or a signed-in account",
            "该工位自己的终端或已登录的账户",
        ),
        Policy.STATION_TERMINAL: ("the station's own terminal", "该工位自己的终端"),
        Policy.STATION_OPERATOR: (
            "the operator signed in at the station's own terminal",
            "在该工位终端登录的操作员",
        ),
        Policy.OPERATOR_OR_LEAD: (
            "the station's operator or a line lead",
            "该工位的操作员或班组长",
        ),
        Policy.LINE_LEAD: ("a line lead", "班组长"),
        Policy.QUALITY: ("quality", "质检人员"),
        Policy.MAINTENANCE: ("maintenance", "设备维护人员"),
        Policy.ADMIN: ("an admin", "管理员"),
    }
)


class DenyCode(StrEnum):
    NOT_SIGNED_IN = "NOT_SIGNED_IN"
    FORBIDDEN_ROLE = "FORBIDDEN_ROLE"
    WRONG_STATION = "WRONG_STATION"
    NO_OPERATOR = "NO_OPERATOR"
    NO_POLICY = "NO_POLICY"

    @property
    def status(self) -> int:
        # 401: a credential would help; 403: who is asking is known and may not.
        return 401 if self is DenyCode.NOT_SIGNED_IN else 403


@dataclass(frozen=True)
class Decision:
    """Allowed, or refused with a code and what to say (English and Simplified Chinese)."""

    allowed: bool
    code: DenyCode | None = None
    message: str = ""
    message_zh: str = ""
    next: str = ""
    next_zh: str = ""

    @property
    def status(self) -> int | None:
        """401 or 403 for a refusal; None when allowed (the action answers)."""
        return None if self.code is None else self.code.status


_ALLOWED = Decision(allowed=True)


def _deny(code: DenyCode, en: tuple[str, str], zh: tuple[str, str]) -> Decision:
    return Decision(False, code, en[0], zh[0], en[1], zh[1])


def _not_signed_in(policy: Policy, request: AccessRequest) -> Decision:
    who, who_zh = _WHO[policy]
    return _deny(
        DenyCode.NOT_SIGNED_IN,
        (
            f"Sign in first: {request.method} {request.path} is for {who}.",
            "Sign in with your account, or ask the admin to pair this terminal.",
        ),
        (
            f"请先登录：{request.method} {request.path} 仅限{who_zh}。",
            "请用账户登录，或请管理员配对此终端。",
        ),
    )


def _forbidden(
    policy: Policy,
    request: AccessRequest,
    principal: TerminalPrincipal | UserPrincipal | TokenPrincipal,
) -> Decision:
    who, who_zh = _WHO[policy]
    if isinstance(principal, TerminalPrincipal):
        asker, asker_zh = (
            f"station {principal.station}'s terminal",
            f"工位 {principal.station} 的终端",
        )
    else:
        asker, asker_zh = f"role {principal.role}", f"角色 {principal.role}"
    return _deny(
        DenyCode.FORBIDDEN_ROLE,
        (
            f"{request.method} {request.path} is for {who}; {asker} may not do it.",
            f"Ask {who} to do it.",
        ),
        (
            f"{request.method} {request.path} 仅限{who_zh}；{asker_zh}无权操作。",
            f"请{who_zh}来操作。",
        ),
    )


def _wrong_station(terminal: TerminalPrincipal, station: str) -> Decision:
    return _deny(
        DenyCode.WRONG_STATION,
        (
            f"This terminal belongs to station {terminal.station}; it cannot act for {station}.",
            f"Use the terminal at {station}.",
        ),
        (
            f"此终端属于工位 {terminal.station}，不能操作 {station}。",
            f"请使用 {station} 的终端。",
        ),
    )


def _no_operator(station: str) -> Decision:
    return _deny(
        DenyCode.NO_OPERATOR,
        (f"No operator is signed in at {station}.", "Scan your badge first."),
        (f"工位 {station} 没有操作员登录。", "请先扫描工牌。"),
    )


def _no_policy(request: AccessRequest) -> Decision:
    return _deny(
        DenyCode.NO_POLICY,
        (
            f"The gateway has no access policy for {request.method} {request.path}, "
            "so it refuses it.",
            "Tell the admin: every route needs a policy (gateway/access/policy.py).",
        ),
        (
            f"网关没有 {request.method} {request.path} 的访问策略，因此拒绝。",
            "请告知管理员：每个路由都需要访问策略（gateway/access/policy.py）。",
        ),
    )


def _at_station(
    principal: TerminalPrincipal, request: AccessRequest, *, operator: bool
) -> Decision:
    if request.station is None:
        # A wiring bug of the web layer, not a caller's fault: fail loudly (it refuses).
        raise ValueError(f"{request.method} {request.path}: the request names no station")
    if principal.station != request.station:
        return _wrong_station(principal, request.station)
    if operator and principal.operator is None:
        return _no_operator(request.station)
    return _ALLOWED


def judge(policy: Policy, principal: Principal, request: AccessRequest) -> Decision:
    """``policy``'s rule applied to ``principal`` asking ``request``."""
    if policy is Policy.OPEN:
        return _ALLOWED
    if isinstance(principal, Anonymous):
        return _not_signed_in(policy, request)
    if policy is Policy.SIGNED_IN:
        return _ALLOWED
    if isinstance(principal, TerminalPrincipal):
        if policy in (Policy.STATION_VIEW, Policy.STATION_TERMINAL):
            return _at_station(principal, request, operator=False)
        if policy in (Policy.STATION_OPERATOR, Policy.OPERATOR_OR_LEAD):
            return _at_station(principal, request, operator=True)
        return _forbidden(policy, request, principal)
    # An account or a token: its role decides; no station binds it.
    role = principal.role
    if role is Role.OPERATOR:  # operators act through terminals only
        return _forbidden(policy, request, principal)
    if policy in (Policy.ACCOUNT, Policy.BOARD, Policy.STATION_VIEW):
        return _ALLOWED if role in _ACCOUNT_ROLES else _forbidden(policy, request, principal)
    if policy is Policy.OPERATOR_OR_LEAD:
        return _ALLOWED if role is Role.LINE_LEAD else _forbidden(policy, request, principal)
    wanted = _ROLE_OF.get(policy)
    return _ALLOWED if role is wanted else _forbidden(policy, request, principal)


def policy_for(request: AccessRequest) -> Policy | None:
    """The policy of ``request``'s route (its variant's, where the body changes it)."""
    method = request.method.upper()
    if request.variant is not None:
        varied = VARIANTS.get((method, request.path, request.variant))
        if varied is not None:
            return varied
    return ROUTES.get((method, request.path))


def decide(principal: Principal, request: AccessRequest) -> Decision:
    """May ``principal`` do ``request``? Refused when its route has no policy."""
    policy = policy_for(request)
    if policy is None:
        return _no_policy(request)
    return judge(policy, principal, request)


def missing_policies(routes: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (method, path template) pairs of ``routes`` without a policy, sorted."""
    return sorted({(m.upper(), p) for m, p in routes if (m.upper(), p) not in ROUTES})
