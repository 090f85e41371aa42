"""Every message the office's people read has its Chinese: the office's catalog against its
code and templates, extracted as ``make office-messages`` extracts them (office/babel.cfg).
When this fails after a change of words: ``make office-messages``, then translate what it
added or marked fuzzy."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
OFFICE = ROOT / "office"
PO_FILE = OFFICE / "i18n" / "locale" / "zh_CN" / "LC_MESSAGES" / "office.po"
FIELD = re.compile(r"%\((\w+)\)[sdifr]")


def _said() -> dict[str, str]:
    with (OFFICE / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    found: dict[str, str] = {}
    for path, lineno, message, _c, _x in extract_from_dir(
        OFFICE, method_map, options_map, keywords={"t": None}
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found.setdefault(msgid, f"{path}:{lineno}")
    return found


def _catalog() -> dict[str, tuple[str, bool]]:
    with PO_FILE.open("rb") as po:
        catalog = read_po(po)
    return {str(m.id): (str(m.string or ""), bool(m.fuzzy)) for m in catalog if m.id}


def test_the_extraction_finds_the_pages_words() -> None:
    said = _said()
    # A template's _() and a module's t() are both found (the cfg is right).
    assert ".html:" in said["Sign in"]
    assert ".py:" in said["Wrong name or password."]


def test_every_message_has_its_chinese_with_its_fields() -> None:
    said, catalog = _said(), _catalog()
    missing = [f"{m!r} ({where})" for m, where in said.items() if m not in catalog]
    assert not missing, "untranslated: " + ", ".join(missing)
    bad = [
        m
        for m in said
        if not catalog[m][0]
        or catalog[m][1]
        or sorted(FIELD.findall(m)) != sorted(FIELD.findall(catalog[m][0]))
    ]
    assert not bad, f"empty, fuzzy or with other fields: {bad}"


def test_the_catalog_holds_nothing_the_office_no_longer_says() -> None:
    stale = sorted(set(_catalog()) - set(_said()))
    assert not stale, f"obsolete entries: {stale}"
