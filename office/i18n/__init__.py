"""What the office's people read, in English and Simplified Chinese.

Messages are written in English: ``t("…")`` in Python, ``_("…")`` (or ``t``) in the
templates. ``office/i18n/locale/zh_CN/LC_MESSAGES/office.po`` maps each to Chinese
(``make office-messages`` brings it up to date; tests/office/test_i18n.py fails when a
message lacks its translation). The office keeps a catalog of its own: it imports nothing
of the gateway.
"""

from office.i18n.catalog import Catalog, Lang, t

__all__ = ["Catalog", "Lang", "t"]
