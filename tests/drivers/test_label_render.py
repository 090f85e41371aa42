"""ZPL rendering of travellers and shipping labels: structure, UTF-8 and injection safety."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.label_printer.render import (
    ShippingLabel,
    TravellerLabel,
    field_data,
    render_shipping,
    render_traveller,
)

ELLIPSIS = "…"
HOSTILE = ["^XZ^XA^FDpwned", "~JA", "_41", "a\nb\r\nc", "nul\x00here", "^FS~DGR:X.GRF", "\x7f\x85"]

TRAVELLER = TravellerLabel(
    serial="LG-000123",
    order_id="#1001",
    sku="MUG-11OZ",
    sku_name="Ceramic mug 11oz",
    line_no=1,
    unit_index=2,
    unit_count=3,
    operations=("print", "press", "inspect"),
    personalization=(("text", "生日快乐 Anna"), ("font", "serif")),
    ship_by="11-25 17:00",
    priority=1,
)
SHIPPING = ShippingLabel(
    label_id="PKG-000045",
    order_id="#1001",
    carrier="SF Express",
    ship_by="11-25 17:00",
    name="王小明",
    address="浦东新区世纪大道100号\n15楼",
    city="上海",
    region="上海市",
    postcode="200120",
    country="CN",
    units=3,
    weight_g=1250.0,
)


def commands(zpl: str) -> list[str]:
    """The ^XX / ~XX tokens: field data never holds a raw ^ or ~, so these are the template's."""
    return re.findall(r"[\^~].{2}", zpl, flags=re.DOTALL)


def field_payloads(zpl: str) -> list[str]:
    """The raw ^FD payloads of the fields that have ^FH, in order."""
    return re.findall(r"\^FH_\^FD(.*?)\^FS", zpl, flags=re.DOTALL)


def decode(payload: str) -> str:
    """Undo ^FH_ escapes the way the printer does: _XX is one byte, the rest is UTF-8."""
    out = bytearray()
    i = 0
    while i < len(payload):
        if payload[i] == "_":
            out.append(int(payload[i + 1 : i + 3], 16))
            i += 3
        else:
            out += payload[i].encode("utf-8")
            i += 1
    return out.decode("utf-8")


def texts(zpl: str) -> list[str]:
    return [decode(p) for p in field_payloads(zpl)]


def shows(printed: str, original: str) -> bool:
    """Whether printed is original, or original cut short with an ellipsis."""
    if printed == original:
        return True
    return printed.endswith(ELLIPSIS) and original.startswith(printed[:-1])


def barcodes(zpl: str) -> list[str]:
    return re.findall(r"\^BC[^\^]*\^FD(.*?)\^FS", zpl)


def assert_framed(zpl: str) -> None:
    assert zpl.startswith("^XA")
    assert zpl.endswith("^XZ")
    assert zpl.count("^XA") == 1
    assert zpl.count("^XZ") == 1
    for command in ("^CI28", "^PW812", "^LL1218"):
        assert command in zpl


# --- field_data ---------------------------------------------------------------------------


def test_field_data_leaves_plain_and_chinese_text_alone() -> None:
    assert field_data("Anna 生日快乐 №5") == "Anna 生日快乐 №5"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("^XZ^XA^FDpwned", "_5EXZ_5EXA_5EFDpwned"),
        ("~JA", "_7EJA"),
        ("_41", "_5F41"),
        ("a\nb\r", "a_0Ab_0D"),
        ("\x00\x1f\x7f", "_00_1F_7F"),
        ("\x85", "_C2_85"),  # a C1 control: both of its UTF-8 bytes
    ],
)
def test_field_data_escapes_specials_and_controls(text: str, escaped: str) -> None:
    assert field_data(text) == escaped


def test_field_data_replaces_lone_surrogates() -> None:
    assert field_data("a\ud800b") == "a\ufffdb"


def test_field_data_truncates_by_characters_with_an_ellipsis() -> None:
    assert field_data("生日快乐", max_chars=4) == "生日快乐"
    assert field_data("生日快乐 Anna", max_chars=4) == "生日快" + ELLIPSIS
    assert field_data("abc", max_chars=1) == ELLIPSIS


def test_field_data_truncates_before_escaping() -> None:
    # Cutting after escaping could leave half an escape such as "_5" at the end.
    assert field_data("^^^^", max_chars=3) == "_5E_5E" + ELLIPSIS


def test_field_data_refuses_a_zero_limit() -> None:
    with pytest.raises(ValueError):
        field_data("abc", max_chars=0)


@given(st.text(), st.one_of(st.none(), st.integers(min_value=1, max_value=50)))
def test_field_data_round_trips(text: str, max_chars: int | None) -> None:
    payload = field_data(text, max_chars)
    assert "^" not in payload
    assert "~" not in payload
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in payload)
    # Every indicator starts a well-formed escape, so the printer never guesses.
    assert re.fullmatch(r"(?:[^_]|_[0-9A-F]{2})*", payload, flags=re.DOTALL)
    printed = decode(payload)
    if max_chars is None:
        assert printed == text
    else:
        assert len(printed) <= max_chars
        assert shows(printed, text)


# --- structure ----------------------------------------------------------------------------


def test_traveller_structure() -> None:
    zpl = render_traveller(TRAVELLER)
    assert_framed(zpl)
    assert barcodes(zpl) == [">:LG-000123"]  # the serial and nothing else
    assert "^BQ" not in zpl
    printed = texts(zpl)
    for text in ("LG-000123", "#1001", "MUG-11OZ", "Ceramic mug 11oz", "11-25 17:00", "P1"):
        assert text in printed
    assert "生日快乐 Anna" in printed
    assert [t for t in printed if re.match(r"\d+\. ", t)] == ["1. print", "2. press", "3. inspect"]


def test_shipping_structure() -> None:
    zpl = render_shipping(SHIPPING)
    assert_framed(zpl)
    assert barcodes(zpl) == [">:PKG-000045"]
    printed = texts(zpl)
    for text in ("PKG-000045", "#1001", "SF Express", "王小明", "上海", "200120", "1.25 kg"):
        assert text in printed
    assert "浦东新区世纪大道100号" in printed
    assert "15楼" in printed


def test_every_text_field_uses_the_hex_indicator_and_the_cjk_font() -> None:
    for zpl in (render_traveller(TRAVELLER), render_shipping(SHIPPING)):
        assert zpl.count("^FD") == zpl.count("^FS") - zpl.count("^GB")
        text_fields = zpl.count("^A@N")
        assert text_fields == len(field_payloads(zpl))
        assert text_fields + len(barcodes(zpl)) == zpl.count("^FD")


def test_chinese_passes_through_as_utf8() -> None:
    zpl = render_shipping(SHIPPING)
    assert "^FH_^FD王小明^FS" in zpl
    assert "王小明".encode() in zpl.encode("utf-8")


def test_long_text_is_cut_to_the_label_width() -> None:
    zpl = render_traveller(dataclasses.replace(TRAVELLER, sku_name="长" * 200))
    (name,) = [t for t in texts(zpl) if t.startswith("长")]
    assert name.endswith(ELLIPSIS)
    assert len(name) < 40


def test_long_address_wraps_onto_three_lines() -> None:
    address = "Flat 5, 1234 Very Long Street Name, Apartment Building Number Nine, Riverside"
    zpl = render_shipping(dataclasses.replace(SHIPPING, address=address))
    printed = texts(zpl)
    start = printed.index("Flat 5, 1234 Very Long Street")
    lines = printed[start : start + 3]
    assert all(lines)
    assert " ".join(lines) == address


def test_more_personalization_than_fits_is_announced() -> None:
    pairs = tuple((f"f{i}", f"v{i}") for i in range(9))
    printed = texts(render_traveller(dataclasses.replace(TRAVELLER, personalization=pairs)))
    assert "v4" in printed
    assert "v5" not in printed
    assert "+4 more: see order" in printed


def test_more_operations_than_fit_are_announced() -> None:
    ops = tuple(f"op{i}" for i in range(1, 11))
    printed = texts(render_traveller(dataclasses.replace(TRAVELLER, operations=ops)))
    assert "7. op7" in printed
    assert "8. op8" not in printed
    assert "+3 more: see order" in printed


# --- barcodes -----------------------------------------------------------------------------


def test_barcode_specials_use_code128_invocation_codes() -> None:
    zpl = render_shipping(dataclasses.replace(SHIPPING, label_id="A>B^C~D_E"))
    assert barcodes(zpl) == [">:A>0B><C>=D_E"]
    assert "A>B^C~D_E" in texts(zpl)


@pytest.mark.parametrize("serial", ["", "序列号", "LG\n1", "x" * 32])
def test_a_serial_code128_cannot_carry_is_refused(serial: str) -> None:
    with pytest.raises(ValueError):
        render_traveller(dataclasses.replace(TRAVELLER, serial=serial))


def test_a_long_id_gets_narrower_bars() -> None:
    assert "^BY3" in render_shipping(dataclasses.replace(SHIPPING, label_id="x" * 19))
    assert "^BY2" in render_shipping(dataclasses.replace(SHIPPING, label_id="x" * 31))


def test_weight_must_be_a_real_weight() -> None:
    for weight in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError):
            render_shipping(dataclasses.replace(SHIPPING, weight_g=weight))


# --- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_cannot_add_commands(hostile: str) -> None:
    traveller = dataclasses.replace(
        TRAVELLER,
        order_id=hostile,
        sku_name=hostile,
        operations=(hostile,),
        personalization=((hostile, hostile),),
        ship_by=hostile,
    )
    plain = dataclasses.replace(
        TRAVELLER, order_id="x", sku_name="x", operations=("x",), personalization=(("x", "x"),)
    )
    zpl = render_traveller(traveller)
    assert_framed(zpl)
    assert commands(zpl) == commands(render_traveller(plain))
    assert shows(texts(zpl)[texts(zpl).index("ORDER") + 1], hostile)


# Code 128 carries printable ASCII, the specials included; every other field takes anything.
barcode_ids = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)
anything = st.text()


@st.composite
def travellers(draw: st.DrawFn) -> TravellerLabel:
    return TravellerLabel(
        serial=draw(barcode_ids.filter(lambda s: len(s) <= 31)),
        order_id=draw(anything),
        sku=draw(anything),
        sku_name=draw(anything),
        line_no=draw(st.integers()),
        unit_index=draw(st.integers()),
        unit_count=draw(st.integers()),
        operations=tuple(draw(st.lists(anything, max_size=10))),
        personalization=tuple(draw(st.lists(st.tuples(anything, anything), max_size=8))),
        ship_by=draw(anything),
        priority=draw(st.integers()),
    )


@st.composite
def shipping_labels(draw: st.DrawFn) -> ShippingLabel:
    return ShippingLabel(
        label_id=draw(barcode_ids.filter(lambda s: len(s) <= 31)),
        order_id=draw(anything),
        carrier=draw(anything),
        ship_by=draw(anything),
        name=draw(anything),
        address=draw(anything),
        city=draw(anything),
        region=draw(anything),
        postcode=draw(anything),
        country=draw(anything),
        units=draw(st.integers()),
        weight_g=draw(st.floats(min_value=0, max_value=1e7)),
    )


def plain_traveller(label: TravellerLabel) -> TravellerLabel:
    return dataclasses.replace(
        label,
        serial="x" * len(label.serial),  # same length: the bar width depends on it
        order_id="x",
        sku="x",
        sku_name="x",
        operations=("x",) * len(label.operations),
        personalization=(("x", "x"),) * len(label.personalization),
        ship_by="x",
    )


def plain_shipping(label: ShippingLabel) -> ShippingLabel:
    x = "x"
    return dataclasses.replace(
        label,
        label_id=x * len(label.label_id),
        order_id=x,
        carrier=x,
        ship_by=x,
        name=x,
        address=x,
        city=x,
        region=x,
        postcode=x,
        country=x,
    )


def without_space(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


@given(travellers())
def test_any_traveller_keeps_the_template_commands(label: TravellerLabel) -> None:
    zpl = render_traveller(label)
    assert_framed(zpl)
    assert commands(zpl) == commands(render_traveller(plain_traveller(label)))
    # The template's text fields come in a fixed order, so each value has a known place.
    printed = texts(zpl)
    head = {0: label.serial, 2: label.order_id, 6: label.sku, 7: label.sku_name, 9: label.ship_by}
    for index, value in head.items():
        assert shows(printed[index], value)
    pairs = label.personalization if len(label.personalization) <= 6 else label.personalization[:5]
    for i, (name, value) in enumerate(pairs):
        assert shows(printed[12 + 2 * i], name)
        assert shows(printed[13 + 2 * i], value)
    first_op = 12 + max(1, 2 * len(pairs) + (len(pairs) < len(label.personalization))) + 1
    ops = label.operations if len(label.operations) <= 8 else label.operations[:7]
    for i, op in enumerate(ops):
        assert shows(printed[first_op + i], f"{i + 1}. {op}")


@given(shipping_labels())
def test_any_shipping_label_keeps_the_template_commands(label: ShippingLabel) -> None:
    zpl = render_shipping(label)
    assert_framed(zpl)
    assert commands(zpl) == commands(render_shipping(plain_shipping(label)))
    printed = texts(zpl)
    fields = {0: "carrier", 2: "ship_by", 4: "name", 8: "city", 9: "region", 10: "postcode"}
    fields |= {11: "country", 13: "order_id", 18: "label_id"}
    for index, name in fields.items():
        assert shows(printed[index], getattr(label, name))
    # The address wraps over three lines; wrapping only moves and drops whitespace.
    address = without_space("".join(printed[5:8]))
    assert shows(address, without_space(label.address))
