"""Messages as Text: English as written, Chinese from a catalog, read once and lazily.

The catalogs here are PO files each test writes (the words are the test's own); one test
reads the line's real catalog for a message whose Chinese the task states.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest

from gateway.i18n import Catalogs, Gettext, Lang, Text, install, listing, t, verbatim

PO = """\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=utf-8\\n"
"Language: zh_CN\\n"
"Plural-Forms: nplurals=1; plural=0;\\n"

msgid "Wrong lot: scan {lot}."
msgstr "批次不对：请扫描 {lot}。"

msgid "{material} (lot {lot})"
msgstr "{material}（批次 {lot}）"

msgid "Scan {items}."
msgstr "扫描 {items}。"

msgid "Check: {items}."
msgstr "检查：{items}。"

#, fuzzy
msgid "Press Start."
msgstr "按开始。"

msgid "Press Complete."
msgstr ""

msgid "Weigh {what}."
msgstr "称重 {whom}。"

msgid "Scan"
msgstr "扫描"

msgid "%(n)s unit"
msgid_plural "%(n)s units"
msgstr[0] "%(n)s 件"
"""


def catalogs(folder: Path, po: str = PO) -> Catalogs:
    messages = folder / "zh_CN" / "LC_MESSAGES"
    messages.mkdir(parents=True, exist_ok=True)
    (messages / "linegate.po").write_text(po, encoding="utf-8")
    return Catalogs(folder)


def test_a_text_in_english_is_its_template_filled() -> None:
    said = t("Wrong lot: scan {lot}.", lot="L-7")
    assert str(said) == "Wrong lot: scan L-7."
    assert said.render(Lang.EN) == "Wrong lot: scan L-7."
    assert said.msgid == "Wrong lot: scan {lot}."
    assert dict(said.params) == {"lot": "L-7"}
    # A value is put in as it is, braces and all: it is never a template itself.
    assert str(t("Wrong lot: scan {lot}.", lot="{x}")) == "Wrong lot: scan {x}."
    assert str(t("Scan {items}.", items=3)) == "Scan 3."


def test_a_text_in_chinese_comes_from_the_catalog(tmp_path: Path) -> None:
    zh = catalogs(tmp_path)
    assert t("Wrong lot: scan {lot}.", lot="L-7").render(Lang.ZH, zh) == "批次不对：请扫描 L-7。"
    # English does not need the catalog.
    assert t("Wrong lot: scan {lot}.", lot="L-7").render(Lang.EN, zh) == "Wrong lot: scan L-7."


def test_values_that_are_messages_are_said_in_the_same_language(tmp_path: Path) -> None:
    zh = catalogs(tmp_path)
    inner = t("{material} (lot {lot})", material="INK-BLK", lot="L1")
    said = t("Scan {items}.", items=listing([inner, "BOX-S"]))
    assert str(said) == "Scan INK-BLK (lot L1), BOX-S."
    assert said.render(Lang.ZH, zh) == "扫描 INK-BLK（批次 L1）、BOX-S。"
    checks = t("Check: {items}.", items=listing(["seams", "print"], "; "))
    assert str(checks) == "Check: seams; print."
    assert checks.render(Lang.ZH, zh) == "检查：seams；print。"


def test_what_the_catalog_does_not_translate_stays_english(tmp_path: Path) -> None:
    zh = catalogs(tmp_path)
    # Not in the catalog, fuzzy (not reviewed), empty, or with other placeholders.
    assert t("Resumed.").render(Lang.ZH, zh) == "Resumed."
    assert t("Press Start.").render(Lang.ZH, zh) == "Press Start."
    assert t("Press Complete.").render(Lang.ZH, zh) == "Press Complete."
    assert t("Weigh {what}.", what="it").render(Lang.ZH, zh) == "Weigh it."
    # No catalog at all.
    assert t("Wrong lot: scan {lot}.", lot="L").render(Lang.ZH, Catalogs(tmp_path / "none")) == (
        "Wrong lot: scan L."
    )


def test_a_catalog_is_read_at_the_first_message_and_kept(tmp_path: Path) -> None:
    zh = Catalogs(tmp_path)  # nothing there yet: making it reads nothing
    catalogs(tmp_path)
    said = t("Wrong lot: scan {lot}.", lot="L1")
    assert said.render(Lang.ZH, zh) == "批次不对：请扫描 L1。"
    # Read once: a change of the file is not seen by this process.
    catalogs(tmp_path, PO.replace("批次不对", "错误批次"))
    assert said.render(Lang.ZH, zh) == "批次不对：请扫描 L1。"


def test_a_message_needs_exactly_its_values() -> None:
    with pytest.raises(ValueError, match="placeholders"):
        t("Wrong lot: scan {lot}.")
    with pytest.raises(ValueError, match="placeholders"):
        t("Wrong lot: scan {lot}.", lot="L", extra="x")


def test_a_text_is_kept_as_json_and_read_back(tmp_path: Path) -> None:
    said = t(
        "Scan {items}.",
        items=listing([t("{material} (lot {lot})", material="INK", lot="L1"), "BOX", 2]),
    )
    doc = json.loads(json.dumps(said.dump()))
    again = Text.load(doc)
    assert again == said
    assert again.render(Lang.ZH, catalogs(tmp_path)) == "扫描 INK（批次 L1）、BOX、2。"
    bad_docs: list[object] = [
        None,
        [],
        {"msgid": 3},
        {"msgid": "Scan {items}.", "params": {"items": None}},
    ]
    for bad in bad_docs:
        with pytest.raises(ValueError):
            Text.load(bad)
    with pytest.raises(ValueError, match="placeholders"):
        Text.load({"msgid": "Scan {items}.", "params": {}})


def test_words_from_outside_the_line_read_the_same_in_every_language(tmp_path: Path) -> None:
    said = verbatim("head jam {3}")
    assert str(said) == said.render(Lang.ZH, catalogs(tmp_path)) == "head jam {3}"


def test_the_web_pages_gettext_speaks_the_language(tmp_path: Path) -> None:
    zh = catalogs(tmp_path)
    env = jinja2.Environment(autoescape=True)
    install(env, Lang.ZH, zh)
    page = env.from_string(
        '{{ _("Scan") }} {{ ngettext("%(n)s unit", "%(n)s units", 3, n=3) }} {{ _("Resumed.") }}'
    )
    assert page.render() == "扫描 3 件 Resumed."
    english = jinja2.Environment(autoescape=True)
    install(english, Lang.EN, zh)
    assert english.from_string(page_source()).render() == "Scan 3 units 1 unit"
    assert Gettext(Lang.ZH, zh).gettext("Scan") == "扫描"
    assert zh.translations(Lang.ZH)["Wrong lot: scan {lot}."] == "批次不对：请扫描 {lot}。"
    assert "Press Start." not in zh.translations(Lang.ZH)  # fuzzy
    assert zh.translations(Lang.EN)["Scan"] == "Scan"


def page_source() -> str:
    return (
        '{{ _("Scan") }} {{ ngettext("%(n)s unit", "%(n)s units", 3, n=3) }} '
        '{{ ngettext("%(n)s unit", "%(n)s units", 1, n=1) }}'
    )


def test_the_lines_catalog_says_the_operators_first_step_in_chinese() -> None:
    # The default catalogs: the line's own (gateway/i18n/locale).
    assert t("Scan your badge to log in.").render(Lang.ZH) == "扫描工牌登录。"
    assert Lang("zh-CN") is Lang.ZH and Lang.ZH.locale == "zh_CN"
