"""Who may read what at the office: roles, tokens, sessions and the audit (as on the
gateway: each route declares one policy; the check runs before the handler; refusals and
sign-ins are audited)."""

from office.access.gate import Gate, Outcome, client_of, wants_page
from office.access.http import User, access_routes
from office.access.passwords import hash_password, verify_password
from office.access.roles import ALLOWED, ROLE_LABELS, Policy, Principal, Role

__all__ = [
    "ALLOWED",
    "ROLE_LABELS",
    "Gate",
    "Outcome",
    "Policy",
    "Principal",
    "Role",
    "User",
    "access_routes",
    "client_of",
    "hash_password",
    "verify_password",
    "wants_page",
]
