"""What an operator reads, in English and Simplified Chinese: messages as :class:`Text`
(``t("…", name=value)``), rendered from gettext catalogs kept with Babel (``make
messages`` refreshes ``locale/zh_CN/LC_MESSAGES/linegate.po``; tests/i18n checks that
every message has its translation)."""

from gateway.i18n.catalog import Catalogs, Gettext, install, translations
from gateway.i18n.lang import Lang
from gateway.i18n.text import Listing, Param, Text, listing, t, verbatim

__all__ = [
    "Catalogs",
    "Gettext",
    "Lang",
    "Listing",
    "Param",
    "Text",
    "install",
    "listing",
    "t",
    "translations",
    "verbatim",
]
