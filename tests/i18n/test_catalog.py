"""Every message an operator reads has its Chinese: the catalog against the code.

What is extracted is what ``make messages`` extracts: Babel's own extractors, mapped by
babel.cfg over gateway/ (Python: the keyword ``t``; the web pages' Jinja2 templates:
``_``, ``gettext``, ``ngettext``). Each message must have a reviewed (not fuzzy), non-empty
translation in gateway/i18n/locale/zh_CN/LC_MESSAGES/linegate.po with exactly its
placeholders, and the catalog must hold nothing else: no obsolete entry, no message the
code no longer says. When this fails after a change of words: ``make messages``, then
translate what it added or marked fuzzy.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"
PO_FILE = GATEWAY / "i18n" / "locale" / "zh_CN" / "LC_MESSAGES" / "linegate.po"
# As `make messages` gives them: no default keywords, t for Python (babel.cfg adds the
# templates' own).
KEYWORDS = {"t": None}
# Jinja2's new-style gettext formats with %(name)s.
PERCENT_FIELD = re.compile(r"%\((\w+)\)[sdifr]")


@dataclass(frozen=True)
class Said:
    """One message where the code says it."""

    msgid: str
    path: str  # relative to gateway/
    lineno: int

    @property
    def is_template(self) -> bool:
        return not self.path.endswith(".py")


def _extracted() -> list[Said]:
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    found = []
    for path, lineno, message, _comments, _context in extract_from_dir(
        GATEWAY, method_map, options_map, keywords=KEYWORDS
    ):
        # A plural entry (ngettext) is its singular and plural; both are translated.
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found.append(Said(msgid, path, lineno))
    return found


def _catalog() -> Catalog:
    with PO_FILE.open("rb") as po:
        return read_po(po)


def _placeholders(said: Said) -> set[str]:
    if said.is_template:
        return set(PERCENT_FIELD.findall(said.msgid))
    return _brace_fields(said.msgid)


def _brace_fields(text: str) -> set[str]:
    return {name for _, name, spec, conv in string.Formatter().parse(text) if name is not None}


def _t_calls() -> Iterator[tuple[str, ast.Call]]:
    """Every call of gateway.i18n's ``t`` in gateway/'s Python, with its module's path."""
    for path in sorted(GATEWAY.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        imports_t = any(
            isinstance(node, ast.ImportFrom)
            and node.module is not None
            and node.module.startswith("gateway.i18n")
            and any(alias.name == "t" and alias.asname is None for alias in node.names)
            for node in ast.walk(tree)
        )
        if not imports_t:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "t"
            ):
                yield str(path.relative_to(GATEWAY)), node


def test_every_message_has_its_chinese_translation() -> None:
    catalog = _catalog()
    problems = []
    for said in _extracted():
        where = f"{said.path}:{said.lineno}: {said.msgid!r}"
        entry = catalog.get(said.msgid)
        if entry is None:
            # A plural's plural form is stored under its singular.
            entry = next(
                (m for m in catalog if isinstance(m.id, tuple) and said.msgid in m.id), None
            )
        if entry is None:
            problems.append(f"{where} is not in the catalog (make messages)")
            continue
        if entry.fuzzy:
            problems.append(f"{where} is fuzzy: review its translation")
        strings = (entry.string,) if isinstance(entry.string, str) else tuple(entry.string or ())
        for zh in strings:
            if not zh:
                problems.append(f"{where} has no translation")
            elif _placeholders(Said(zh, said.path, said.lineno)) != _placeholders(said):
                problems.append(f"{where}: the translation {zh!r} has other placeholders")
    assert not problems, "\n".join(problems)


def test_the_catalog_holds_only_what_the_code_says() -> None:
    catalog = _catalog()
    said = {s.msgid for s in _extracted()}
    assert not catalog.obsolete, f"obsolete entries: {sorted(catalog.obsolete)}"
    stale = [
        m.id
        for m in catalog
        if m.id and not any(i in said for i in (m.id if isinstance(m.id, tuple) else (m.id,)))
    ]
    assert not stale, f"the code no longer says (make messages): {stale}"
    assert catalog.locale is not None and str(catalog.locale).startswith("zh")


def test_every_message_in_python_is_a_literal_that_babel_extracts() -> None:
    # Babel reads tokens, not Python: a template that is not a literal (an f-string, a
    # variable) is not extracted, and a subscript t["…"] is taken for a message.
    calls = list(_t_calls())
    not_literal = [
        f"{path}:{call.lineno}"
        for path, call in calls
        if not (
            len(call.args) == 1
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str)
        )
    ]
    assert not not_literal, f"t() needs one literal template (then name=value): {not_literal}"
    in_code = {
        (path, call.args[0].value)
        for path, call in calls
        if isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
    }
    extracted = {(s.path, s.msgid) for s in _extracted() if not s.is_template}
    assert extracted - in_code == set(), "taken for messages, but no t() says them"
    assert in_code - extracted == set(), "said with t(), but not extracted (babel.cfg?)"
    # The brace placeholders of each template are valid str.format fields.
    for _path, msgid in in_code:
        _brace_fields(msgid)
