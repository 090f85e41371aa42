"""Who may read what at the office: roles, the policy each route declares, and the table
between them (one place to read it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from office.i18n import t

__all__ = ["ALLOWED", "ROLE_LABELS", "Policy", "Principal", "Role"]


class Role(StrEnum):
    SERVICE = "service"  # customer service: where is this order
    LEAD = "lead"  # line leads, site supervisors: the board
    MANAGER = "manager"  # managers and finance: the reports
    ADMIN = "admin"  # everything, and the audit
    READER = "reader"  # a program's token: Prometheus, BI scripts
    SHOP = "shop"  # a shop's system: sends orders and catalogs
    WMS = "wms"  # the warehouse's system: sends stock


ROLE_LABELS: dict[Role, str] = {
    Role.SERVICE: t("customer service"),
    Role.LEAD: t("line lead"),
    Role.MANAGER: t("manager"),
    Role.ADMIN: t("administrator"),
    Role.READER: t("reader"),
    Role.SHOP: t("shop"),
    Role.WMS: t("warehouse"),
}


class Policy(StrEnum):
    LOOKUP = "lookup"
    BOARD = "board"
    REPORTS = "reports"
    METRICS = "metrics"
    AUDIT = "audit"
    SHOP = "shop"
    WMS = "wms"


_PEOPLE = frozenset({Role.SERVICE, Role.LEAD, Role.MANAGER, Role.ADMIN})

ALLOWED: dict[Policy, frozenset[Role]] = {
    Policy.LOOKUP: _PEOPLE | {Role.READER},
    Policy.BOARD: _PEOPLE | {Role.READER},
    # Customer service answers for orders; the site's figures are the managers'.
    Policy.REPORTS: frozenset({Role.LEAD, Role.MANAGER, Role.ADMIN, Role.READER}),
    Policy.METRICS: frozenset({Role.READER, Role.ADMIN}),
    Policy.AUDIT: frozenset({Role.ADMIN}),
    Policy.SHOP: frozenset({Role.SHOP}),
    Policy.WMS: frozenset({Role.WMS}),
}


@dataclass(frozen=True)
class Principal:
    """Who is asking: a person signed in, or the name of a program's token."""

    name: str
    role: Role
