"""A message as the code says it: its English template and its values, rendered in the
language of whoever reads it.

``t("Wrong lot: scan {lot}.", lot=lot)`` is a :class:`Text`; ``str()`` of it is the English
sentence, ``render(Lang.ZH)`` the same sentence from the Chinese catalog. The template is
a literal at every call, so that ``pybabel extract -k t`` finds it (``make messages``);
its placeholders are ``{name}`` (str.format), with the values formatted by the caller
(``grams=f"{grams:g}"``), so a translation carries the same placeholders and nothing else.
A value that is itself a :class:`Text` (or a :class:`Listing` of them) is rendered in the
same language.

A Text is also kept as JSON (an alarm's message: :meth:`Text.dump`, :meth:`Text.load`), so
that what was said in English can be read in Chinese later.
"""

from __future__ import annotations

import functools
import logging
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from gateway.i18n.catalog import CATALOGS, Catalogs
from gateway.i18n.lang import Lang

__all__ = ["Listing", "Param", "Text", "listing", "placeholders", "t", "verbatim"]

logger = logging.getLogger(__name__)

# What a placeholder is filled with: a value already formatted, or more words to render.
Param: TypeAlias = "str | int | float | Text | Listing"

# How a list is written in each language; English keeps the separator the code gives.
_SEPARATORS: dict[Lang, dict[str, str]] = {Lang.ZH: {", ": "、", "; ": "；"}}
# The template of a string that is said as it is, in every language.
_VERBATIM = "{text}"


@functools.lru_cache(maxsize=4096)
def placeholders(template: str) -> frozenset[str]:
    """The names of the ``{name}`` placeholders of ``template``; ValueError if it is not
    a valid str.format template."""
    return frozenset(
        name for _, name, _, _ in string.Formatter().parse(template) if name is not None
    )


@dataclass(frozen=True, slots=True)
class Text:
    """A message: its msgid (the English template) and its values, by name."""

    msgid: str
    params: tuple[tuple[str, Param], ...] = ()

    def render(self, lang: Lang = Lang.EN, catalogs: Catalogs | None = None) -> str:
        """The message in ``lang``: its translation if the catalog has one, else English."""
        values = {name: _render(value, lang, catalogs) for name, value in self.params}
        if lang is not Lang.EN:
            template = (catalogs or CATALOGS).gettext(lang, self.msgid)
            if template is not None:
                try:
                    return template.format_map(values)
                except (KeyError, IndexError, ValueError) as exc:
                    # tests/i18n keeps the catalog's placeholders right; should one slip
                    # through, the operator still reads the message, in English.
                    logger.error("bad %s translation of %r: %r", lang, self.msgid, exc)
        return self.msgid.format_map(values)

    def __str__(self) -> str:
        return self.render(Lang.EN)

    def dump(self) -> dict[str, Any]:
        """The message as JSON (see :meth:`load`)."""
        return {"msgid": self.msgid, "params": {n: _dump(v) for n, v in self.params}}

    @classmethod
    def load(cls, doc: object) -> Text:
        """A message from :meth:`dump`'s JSON; ValueError if ``doc`` is not one."""
        if not isinstance(doc, dict) or not isinstance(doc.get("msgid"), str):
            raise ValueError(f"not a message: {doc!r:.80}")
        params = doc.get("params", {})
        if not isinstance(params, dict):
            raise ValueError(f"not the values of a message: {params!r:.80}")
        return _checked(doc["msgid"], {str(n): _load(v) for n, v in params.items()})


@dataclass(frozen=True, slots=True)
class Listing:
    """Several values said as one list: ``sep`` between them in English, the language's
    own separator in another (``、`` for ``", "`` in Chinese)."""

    items: tuple[Param, ...]
    sep: str = ", "

    def render(self, lang: Lang = Lang.EN, catalogs: Catalogs | None = None) -> str:
        sep = _SEPARATORS.get(lang, {}).get(self.sep, self.sep)
        return sep.join(_render(item, lang, catalogs) for item in self.items)

    def __str__(self) -> str:
        return self.render(Lang.EN)


def t(msgid: str, **params: Param) -> Text:
    """The message ``msgid`` (a literal English template) with its values; ValueError when
    the values do not fill the template's placeholders exactly."""
    return _checked(msgid, params)


def listing(items: Iterable[Param], sep: str = ", ") -> Listing:
    """``items`` said as a list (see :class:`Listing`)."""
    return Listing(tuple(items), sep)


def verbatim(text: str) -> Text:
    """``text`` as a message said the same in every language (words the line did not write:
    a device's or the hub's own)."""
    return Text(_VERBATIM, (("text", text),))


def _checked(msgid: str, params: dict[str, Param]) -> Text:
    wanted = placeholders(msgid)
    if wanted != params.keys():
        raise ValueError(
            f"message {msgid!r} has placeholders {sorted(wanted)}, given {sorted(params)}"
        )
    return Text(msgid, tuple(sorted(params.items())))


def _render(value: Param, lang: Lang, catalogs: Catalogs | None) -> str:
    if isinstance(value, Text | Listing):
        return value.render(lang, catalogs)
    return str(value)


def _dump(value: Param) -> Any:
    if isinstance(value, Text):
        return value.dump()
    if isinstance(value, Listing):
        return {"items": [_dump(v) for v in value.items], "sep": value.sep}
    return value


def _load(doc: object) -> Param:
    if isinstance(doc, str | int | float) and not isinstance(doc, bool):
        return doc
    if isinstance(doc, dict) and "msgid" in doc:
        return Text.load(doc)
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        sep = doc.get("sep", ", ")
        if not isinstance(sep, str):
            raise ValueError(f"not a list's separator: {sep!r:.80}")
        return Listing(tuple(_load(v) for v in doc["items"]), sep)
    raise ValueError(f"not a message's value: {doc!r:.80}")
