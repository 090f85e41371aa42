"""The office's catalog: read once per process at first use of Chinese, kept on its
:class:`Catalog` (built by the composition root, never at import)."""

from __future__ import annotations

import threading
from enum import StrEnum
from pathlib import Path

from babel.messages.pofile import read_po

__all__ = ["DOMAIN", "LOCALE_DIR", "Catalog", "Lang", "t"]

DOMAIN = "office"
LOCALE_DIR = Path(__file__).parent / "locale"


class Lang(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"

    @property
    def locale(self) -> str:
        return self.value.replace("-", "_")


def t(msgid: str) -> str:
    """Marks an English message for extraction; translated where it is shown
    (:meth:`Catalog.text`)."""
    return msgid


class Catalog:
    def __init__(self, folder: Path = LOCALE_DIR) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._zh: dict[str, str] | None = None

    def po_file(self, lang: Lang) -> Path:
        return self._folder / lang.locale / "LC_MESSAGES" / f"{DOMAIN}.po"

    def text(self, lang: Lang, msgid: str, **params: object) -> str:
        """``msgid`` in ``lang`` (English when it has no reviewed translation), with
        ``%(name)s`` fields filled from ``params``."""
        found = msgid if lang is Lang.EN else self._chinese().get(msgid) or msgid
        return found % params if params else found

    def _chinese(self) -> dict[str, str]:
        if self._zh is None:
            with self._lock:
                if self._zh is None:
                    with self.po_file(Lang.ZH_CN).open("rb") as po:
                        catalog = read_po(po)
                    self._zh = {
                        str(m.id): str(m.string)
                        for m in catalog
                        if m.id and isinstance(m.id, str) and m.string and not m.fuzzy
                    }
        return self._zh
