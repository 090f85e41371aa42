"""The languages an operator reads the line in."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Lang"]


class Lang(StrEnum):
    """A language, by its BCP 47 tag (what an ``Accept-Language`` header or a terminal's
    setting names); English is the language the messages are written in."""

    EN = "en"
    ZH = "zh-CN"

    @property
    def locale(self) -> str:
        """The gettext folder of the language (``zh_CN``)."""
        return self.value.replace("-", "_")
