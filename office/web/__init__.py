"""The office's pages: server-rendered (Jinja2), in Chinese and English, no build step."""

from office.web.pages import LANG_COOKIE, Pages, lang_of

__all__ = ["LANG_COOKIE", "Pages", "lang_of"]
