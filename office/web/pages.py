"""Rendering a page in the asker's language.

The language: ``?lang=`` (then kept in a cookie), else the cookie, else the browser's
Accept-Language; Chinese when nothing says (most of the office reads Chinese first).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from office.access.roles import ALLOWED, ROLE_LABELS, Policy, Principal
from office.i18n import Catalog, Lang

__all__ = ["LANG_COOKIE", "TEMPLATES", "Pages", "lang_of"]

LANG_COOKIE = "office_lang"
TEMPLATES = Path(__file__).parent / "templates"


def _parse(value: str | None) -> Lang | None:
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("zh"):
        return Lang.ZH_CN
    if value.startswith("en"):
        return Lang.EN
    return None


def lang_of(request: Request) -> Lang:
    asked = _parse(request.query_params.get("lang")) or _parse(request.cookies.get(LANG_COOKIE))
    if asked is not None:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        found = _parse(part.split(";")[0])
        if found is not None:
            return found
    return Lang.ZH_CN


class Pages:
    """``zone``: the site's time zone ([site] timezone): the pages show times in it, as
    the people at the site read a clock (the stored times are UTC)."""

    def __init__(
        self, catalog: Catalog, folder: Path = TEMPLATES, zone: ZoneInfo | None = None
    ) -> None:
        self.catalog = catalog
        self.zone = zone
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )
        self._env.filters["local"] = self.local

    def local(self, moment: str | datetime | None) -> str:
        """A stored time (RFC 3339 text or an aware datetime) as the site reads it:
        ``2026-11-11 18:05:09`` in the site's zone ("UTC" added when none is set)."""
        if moment is None or moment == "":
            return "–"
        try:
            at = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
        except ValueError:
            return str(moment)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if self.zone is None:
            return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def text(self, request: Request, msgid: str, **params: object) -> str:
        return self.catalog.text(lang_of(request), msgid, **params)

    def render(
        self,
        request: Request,
        principal: Principal | None,
        template: str,
        context: Mapping[str, object],
        status: int = 200,
    ) -> HTMLResponse:
        lang = lang_of(request)

        def translate(msgid: str, **params: object) -> str:
            return self.catalog.text(lang, msgid, **params)

        may = {p.value: principal is not None and principal.role in ALLOWED[p] for p in Policy}
        page = self._env.get_template(template).render(
            {
                **context,
                "_": translate,
                "t": translate,
                "lang": lang.value,
                "principal": principal,
                "role_label": translate(ROLE_LABELS[principal.role]) if principal else "",
                "may": may,
                "path": request.url.path,
            }
        )
        response = HTMLResponse(page, status_code=status)
        if _parse(request.query_params.get("lang")) is not None:
            response.set_cookie(LANG_COOKIE, lang.value, max_age=365 * 86400, samesite="lax")
        return response
