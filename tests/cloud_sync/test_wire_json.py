"""The wire's JSON rules (cloud_sync/wire_json.py): what they refuse, and that the quick scan
of the raw text never lets a refused value by unlooked (it once missed "\\f")."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync import wire_json

_texts = st.text(alphabet=st.characters(codec=None, categories=None), max_size=12)
_docs = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=12,
)


def _breaks_the_rules(doc: Any) -> bool:
    """I-JSON (RFC 7493) and the line's text rule, written out independently."""
    if isinstance(doc, dict):
        return any(_breaks_the_rules(k) or _breaks_the_rules(v) for k, v in doc.items())
    if isinstance(doc, list):
        return any(_breaks_the_rules(v) for v in doc)
    if isinstance(doc, bool) or doc is None:
        return False
    if isinstance(doc, int):
        return abs(doc) > 2**53 - 1
    if isinstance(doc, float):
        return math.isnan(doc) or math.isinf(doc)
    assert isinstance(doc, str)
    return any(0xD800 <= ord(c) <= 0xDFFF or (ord(c) < 0x20 and c not in "\t\n\r") for c in doc)


@settings(max_examples=400, deadline=None)
@given(doc=_docs, ascii_only=st.booleans())
def test_a_refused_value_is_always_looked_at(doc: Any, ascii_only: bool) -> None:
    try:
        payload = json.dumps(doc, ensure_ascii=ascii_only).encode()
    except UnicodeEncodeError:
        return  # a lone surrogate unescaped is no UTF-8: loads() refuses the message whole
    parsed, suspect = wire_json.parse(payload)
    broken = _breaks_the_rules(parsed)
    assert bool(wire_json.problems(parsed)) == broken
    if broken:
        assert suspect, payload


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        (b'{"a": NaN}', "INVALID_JSON", "a"),
        (b'{"a": [1, -Infinity]}', "INVALID_JSON", "a.1"),
        (b'{"a": 1e400}', "INVALID_JSON", "a"),
        (b'{"a": 9007199254740992}', "INVALID_JSON", "a"),  # 2**53
        (b'{"a": {"b": "Love \\ud83d"}}', "SCHEMA", "a.b"),
        (b'{"a": "\\udc00"}', "SCHEMA", "a"),
        (b'{"a": "x\\u0000"}', "SCHEMA", "a"),
        (b'{"a": "x\\f"}', "SCHEMA", "a"),
        (b'{"a": {"\\ud800": 1}}', "SCHEMA", "a"),  # a field name: its parent is named
    ],
)
def test_each_rule_names_its_field(payload: bytes, code: str, field: str) -> None:
    parsed, suspect = wire_json.parse(payload)
    assert suspect
    [problem] = wire_json.problems(parsed)
    assert (problem.code, problem.field) == (code, field)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": 9007199254740991, "b": 1e308, "c": -1e-400}',  # 2**53 - 1; an underflow is 0
        b'{"a": "Love \\ud83d\\udc96", "b": "\\u4e2d\\u6587", "c": "tab\\tline\\nend\\r"}',
        '{"a": "张三 🎂"}'.encode(),
    ],
)
def test_what_the_wire_carries_passes(payload: bytes) -> None:
    assert wire_json.problems(wire_json.parse(payload).doc) == []


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": "\xed\xa0\x80"}',  # a surrogate in UTF-8 bytes: json.loads(bytes) takes it
        '{"a": 1}'.encode("utf-16"),  # json.loads(bytes) reads UTF-16 too
        b'\xef\xbb\xbf{"a": 1}',  # a byte order mark: RFC 8259 8.1 forbids sending one
        b'{"a": "\x00"}',  # a raw control character in a string
    ],
)
def test_what_is_no_json_text_is_refused_whole(payload: bytes) -> None:
    with pytest.raises(ValueError):
        wire_json.parse(payload)


def test_clean_text_keeps_what_is_text() -> None:
    assert wire_json.clean_text("a\u0000b\ud800c\td") == "ab\ufffdc\td"
    assert wire_json.clean_text("中文 🎂") == "中文 🎂"
