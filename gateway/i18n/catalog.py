"""The translations, from gettext PO catalogs kept with Babel (``make messages``).

The messages are written in English in the code (``t("…")``, see gateway/i18n/text.py); a
catalog ``locale/<ll_CC>/LC_MESSAGES/linegate.po`` maps each to another language. A
catalog is read once per process, when the first message is wanted in its language (an
English answer never reads one), and kept on its :class:`Catalogs`. An entry that is
empty or fuzzy (not reviewed) is no translation: the message stays English.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from babel.messages.pofile import read_po

from gateway.i18n.lang import Lang

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "CATALOGS",
    "DOMAIN",
    "LOCALE_DIR",
    "Catalogs",
    "Gettext",
    "Messages",
    "install",
    "translations",
]

logger = logging.getLogger(__name__)

DOMAIN = "linegate"
LOCALE_DIR = Path(__file__).parent / "locale"


@dataclass(frozen=True, slots=True)
class Messages:
    """One language's translations: msgid → msgstr, and for a plural entry its singular
    msgid → the msgstr of each plural form."""

    singular: dict[str, str] = field(default_factory=dict)
    plural: dict[str, tuple[str, ...]] = field(default_factory=dict)


class Catalogs:
    """The PO catalogs of ``folder``, each read at its first use and kept."""

    def __init__(self, folder: Path = LOCALE_DIR, domain: str = DOMAIN) -> None:
        self.folder = folder
        self.domain = domain
        self._lock = threading.Lock()  # answers are rendered from threads too
        self._read: dict[Lang, Messages] = {}

    def po_file(self, lang: Lang) -> Path:
        return self.folder / lang.locale / "LC_MESSAGES" / f"{self.domain}.po"

    def messages(self, lang: Lang) -> Messages:
        """The translations into ``lang`` (none for English: the msgids are English)."""
        found = self._read.get(lang)
        if found is None:
            with self._lock:
                found = self._read.get(lang)
                if found is None:
                    found = self._read[lang] = self._load(lang)
        return found

    def gettext(self, lang: Lang, msgid: str) -> str | None:
        """The translation of ``msgid`` into ``lang``; None when there is none."""
        if lang is Lang.EN:
            return None
        return self.messages(lang).singular.get(msgid)

    def translations(self, lang: Lang) -> dict[str, str]:
        """msgid → msgstr for ``lang``: every translated message; for English every msgid
        of the catalogs mapped to itself."""
        if lang is Lang.EN:
            ids: dict[str, str] = {}
            for other in Lang:
                if other is not Lang.EN:
                    ids.update((m, m) for m in self.messages(other).singular)
            return ids
        return dict(self.messages(lang).singular)

    def _load(self, lang: Lang) -> Messages:
        if lang is Lang.EN:
            return Messages()
        path = self.po_file(lang)
        try:
            with path.open("rb") as po:
                catalog = read_po(po, domain=self.domain)
        except FileNotFoundError:
            logger.warning("no %s messages (%s): answers stay in English", lang, path)
            return Messages()
        except (OSError, ValueError) as exc:
            # An operator is better served in English than not at all.
            logger.error("cannot read %s: %s; answers stay in English", path, exc)
            return Messages()
        singular: dict[str, str] = {}
        plural: dict[str, tuple[str, ...]] = {}
        for message in catalog:
            if not message.id or message.fuzzy:
                continue
            if isinstance(message.id, str) and isinstance(message.string, str):
                if message.string:
                    singular[message.id] = message.string
            elif isinstance(message.id, tuple | list) and isinstance(message.string, tuple | list):
                forms = tuple(str(s) for s in message.string)
                if forms and all(forms):
                    plural[str(message.id[0])] = forms
                    singular[str(message.id[0])] = forms[0]
        return Messages(singular, plural)


# The process's catalogs: nothing is read until a message is first wanted in Chinese.
CATALOGS = Catalogs()


def translations(lang: Lang) -> dict[str, str]:
    """msgid → msgstr for the web pages (see :meth:`Catalogs.translations`)."""
    return CATALOGS.translations(lang)


class Gettext:
    """gettext and ngettext into one language, for Jinja2's ``_`` (see :func:`install`)."""

    def __init__(self, lang: Lang, catalogs: Catalogs | None = None) -> None:
        self.lang = lang
        self._catalogs = catalogs or CATALOGS

    def gettext(self, message: str) -> str:
        found = self._catalogs.gettext(self.lang, message)
        return message if found is None else found

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        if self.lang is not Lang.EN:
            forms = self._catalogs.messages(self.lang).plural.get(singular)
            if forms:
                # Chinese has one form (Plural-Forms: nplurals=1); a language with more
                # would need its plural rule here.
                return forms[0]
        return singular if n == 1 else plural


def install(env: jinja2.Environment, lang: Lang, catalogs: Catalogs | None = None) -> None:
    """Make ``_``, ``gettext``, ``ngettext`` and ``{% trans %}`` of ``env``'s templates
    speak ``lang``. New-style gettext: ``_("Scan %(lot)s", lot=lot)`` formats (and
    escapes) its keyword arguments; a literal ``%`` is written ``%%``."""
    if "jinja2.ext.InternationalizationExtension" not in env.extensions:
        env.add_extension("jinja2.ext.i18n")
    words = Gettext(lang, catalogs)
    # Added to the Environment by the i18n extension, hence unknown to its type.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        words.gettext, words.ngettext, newstyle=True
    )
