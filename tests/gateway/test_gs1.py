"""GS1 element strings: check digits, every AI, predefined vs variable length, dates,
the human-readable form, separators, and round trips under hypothesis."""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.desk.gs1 import (
    CSET82,
    GS,
    PREDEFINED_LENGTH,
    AiSpec,
    Content,
    Gs1Data,
    Gs1Error,
    Gs1Problem,
    check_digit,
    has_valid_check_digit,
    known_ais,
    parse_element_string,
    parse_hri,
    resolve_date,
)

GTIN = "09501101530003"  # the GS1 General Specifications' example GTIN-13, as GTIN-14

# -- check digits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("96385074", True),  # GTIN-8
        ("96385075", False),
        ("036000291452", True),  # GTIN-12 (UPC-A)
        ("036000291453", False),
        ("9501101530003", True),  # GTIN-13
        ("9501101530008", False),
        ("09501101530003", True),  # GTIN-14
        ("19501101530000", True),
        ("19501101530003", False),
        ("106141411234567897", True),  # SSCC
        ("106141411234567890", False),
        ("", False),
        ("7", False),
        ("95011015300a3", False),
        ("٩٥٠١١٠١٥٣٠٠٠٣", False),  # Arabic-Indic digits are not GS1 digits
    ],
)
def test_check_digits(number: str, valid: bool) -> None:
    assert has_valid_check_digit(number) is valid


def test_check_digit_of_a_body() -> None:
    assert check_digit("950110153000") == "3"
    assert check_digit("0950110153000") == "3"  # leading zeros do not change it
    assert check_digit("10614141123456789") == "7"


# -- every AI ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("element_string", "expected"),
    [
        ("00106141411234567897", {"00": "106141411234567897"}),
        (f"01{GTIN}", {"01": GTIN}),
        (f"02{GTIN}", {"02": GTIN}),
        ("10LOT-42/A", {"10": "LOT-42/A"}),
        ("11260131", {"11": "260131"}),
        ("12260200", {"12": "260200"}),
        ("13261231", {"13": "261231"}),
        ("15270100", {"15": "270100"}),
        ("16270115", {"16": "270115"}),
        ("17271130", {"17": "271130"}),
        ("2007", {"20": "07"}),
        ("21SN:0001", {"21": "SN:0001"}),
        ("22CPV-1", {"22": "CPV-1"}),
        ("240INK-DTG-CMYK", {"240": "INK-DTG-CMYK"}),
        ("241PART-9", {"241": "PART-9"}),
        ("242123456", {"242": "123456"}),
        ("250SEC-1", {"250": "SEC-1"}),
        ("251SRC-1", {"251": "SRC-1"}),
        ("3012345678", {"30": "12345678"}),
        ("3103001250", {"3103": "001250"}),
        ("3110000150", {"3110": "000150"}),
        ("3300012000", {"3300": "012000"}),
        ("3712", {"37": "12"}),
        ("400PO-2026-0042", {"400": "PO-2026-0042"}),
        ("40206141410000000005", {"402": "06141410000000005"}),
        ("4109501101530003", {"410": "9501101530003"}),
        ("420SG-018956", {"420": "SG-018956"}),
        ("422702", {"422": "702"}),
        ("8004GIAI-7", {"8004": "GIAI-7"}),
        ("90INTERNAL", {"90": "INTERNAL"}),
        ("99x", {"99": "x"}),
    ],
)
def test_every_ai(element_string: str, expected: dict[str, str]) -> None:
    data = parse_element_string(element_string)
    assert data.as_dict() == expected
    assert data.element_string() == element_string


def test_the_ai_table_is_prefix_free_and_matches_the_predefined_lengths() -> None:
    ais = [s.ai for s in known_ais()]
    assert not [(a, b) for a in ais for b in ais if a != b and b.startswith(a)]
    for spec in known_ais():
        total = PREDEFINED_LENGTH.get(spec.ai[:2])
        if total is not None:
            assert spec.min_len == spec.max_len == total - len(spec.ai), spec.ai


# -- predefined vs variable length, separators ------------------------------------------


@pytest.mark.parametrize(
    ("element_string", "expected"),
    [
        # Predefined lengths need no GS, before or after a variable-length AI.
        (f"01{GTIN}17271130" + "10LOT42", [("01", GTIN), ("17", "271130"), ("10", "LOT42")]),
        (f"10LOT42{GS}01{GTIN}", [("10", "LOT42"), ("01", GTIN)]),
        (f"10LOT42{GS}21S1{GS}240INK", [("10", "LOT42"), ("21", "S1"), ("240", "INK")]),
        # FNC1 in first position, a redundant GS after a predefined value, a trailing GS.
        (f"{GS}01{GTIN}{GS}10LOT42{GS}", [("01", GTIN), ("10", "LOT42")]),
        # Without a GS a variable-length value runs on: this is what the code says.
        ("10LOT4221S1", [("10", "LOT4221S1")]),
        # 402 has a fixed length but not a predefined one: it needs its GS.
        (f"40206141410000000005{GS}10L", [("402", "06141410000000005"), ("10", "L")]),
        # The same AI twice with the same value counts once.
        (f"10L{GS}10L", [("10", "L")]),
    ],
)
def test_fixed_and_variable_length(element_string: str, expected: list[tuple[str, str]]) -> None:
    assert parse_element_string(element_string) == Gs1Data.of(expected)


def test_element_string_puts_a_gs_only_after_variable_values_that_are_not_last() -> None:
    data = Gs1Data.of([("10", "L1"), ("01", GTIN), ("21", "S"), ("3103", "001250")])
    assert data.element_string() == f"10L1{GS}01{GTIN}21S{GS}3103001250"


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("element_string", "ai", "problem"),
    [
        ("", None, Gs1Problem.SYNTAX),
        (GS, None, Gs1Problem.SYNTAX),
        (f"10A{GS}{GS}21B", None, Gs1Problem.SYNTAX),
        ("LOT42", None, Gs1Problem.SYNTAX),
        ("7003123", "7003", Gs1Problem.UNKNOWN_AI),
        ("23123", "2312", Gs1Problem.UNKNOWN_AI),  # where it ends is unknowable
        ("3106001250", "3106", Gs1Problem.UNKNOWN_AI),  # 6 decimals of six digits: no
        ("0109501101530004", "01", Gs1Problem.CHECK_DIGIT),
        ("00106141411234567890", "00", Gs1Problem.CHECK_DIGIT),
        ("4109501101530004", "410", Gs1Problem.CHECK_DIGIT),
        ("01095011015300", "01", Gs1Problem.LENGTH),
        (f"01095011015300{GS}10A", "01", Gs1Problem.LENGTH),
        ("0109501101530O03", "01", Gs1Problem.CHARACTERS),
        ("10", "10", Gs1Problem.LENGTH),
        ("10" + "A" * 21, "10", Gs1Problem.LENGTH),
        ("21" + "A" * 21, "21", Gs1Problem.LENGTH),
        ("240" + "A" * 31, "240", Gs1Problem.LENGTH),
        ("10LOT 42", "10", Gs1Problem.CHARACTERS),
        ("10LOT#42", "10", Gs1Problem.CHARACTERS),
        ("10LOTé", "10", Gs1Problem.CHARACTERS),
        ("301234567A", "30", Gs1Problem.CHARACTERS),
        ("17271332", "17", Gs1Problem.DATE),
        ("17271300", "17", Gs1Problem.DATE),
        ("17270001", "17", Gs1Problem.DATE),
        ("17270230", "17", Gs1Problem.DATE),
        ("17270229", "17", Gs1Problem.DATE),  # 2027 is no leap year
        ("1727043A", "17", Gs1Problem.CHARACTERS),
        (f"10A{GS}10B", "10", Gs1Problem.DUPLICATE),
    ],
)
def test_what_is_refused(element_string: str, ai: str | None, problem: Gs1Problem) -> None:
    with pytest.raises(Gs1Error) as caught:
        parse_element_string(element_string)
    assert (caught.value.ai, caught.value.problem) == (ai, problem)
    assert caught.value.reason


def test_a_wrong_check_digit_says_which_and_what_it_should_be() -> None:
    with pytest.raises(Gs1Error, match=r"GTIN 09501101530004: check digit wrong.*3"):
        parse_element_string("0109501101530004")


# -- dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yymmdd", "expected"),
    [
        ("271130", date(2027, 11, 30)),
        ("271100", date(2027, 11, 30)),  # DD = 00: the last day of the month
        ("270200", date(2027, 2, 28)),
        ("280200", date(2028, 2, 29)),  # leap year
        ("280229", date(2028, 2, 29)),
        ("271200", date(2027, 12, 31)),
        ("270400", date(2027, 4, 30)),
    ],
)
def test_dates_and_day_zero(yymmdd: str, expected: date) -> None:
    assert resolve_date(yymmdd, date(2026, 6, 1)) == expected


@pytest.mark.parametrize(
    ("today", "yymmdd", "expected"),
    [
        # D = YY - this year's YY: 51..99 last century, -99..-50 next, else this century.
        (date(2026, 6, 1), "760101", date(2076, 1, 1)),  # D = 50
        (date(2026, 6, 1), "770101", date(1977, 1, 1)),  # D = 51
        (date(2026, 6, 1), "000101", date(2000, 1, 1)),  # D = -26
        (date(2075, 6, 1), "250101", date(2125, 1, 1)),  # D = -50
        (date(2075, 6, 1), "260101", date(2026, 1, 1)),  # D = -49
        (date(2099, 12, 31), "010101", date(2101, 1, 1)),
        (date(2001, 1, 1), "990101", date(1999, 1, 1)),
        # 29 Feb read in a century that is not a leap year: the month's last day.
        (date(2075, 6, 1), "000229", date(2100, 2, 28)),
    ],
)
def test_century_rule(today: date, yymmdd: str, expected: date) -> None:
    assert resolve_date(yymmdd, today) == expected


def test_accessors() -> None:
    data = parse_element_string(
        f"00106141411234567897{GS}01{GTIN}17271100310301250010LOT42{GS}21S-1{GS}240INK-DTG-CMYK"
    )
    assert data.sscc == "106141411234567897"
    assert data.gtin == GTIN
    assert data.lot == "LOT42"
    assert data.serial == "S-1"
    assert data.additional_id == "INK-DTG-CMYK"
    assert data.expiry(date(2026, 1, 1)) == date(2027, 11, 30)
    assert data.date_of("15", date(2026, 1, 1)) is None
    assert data.net_weight_kg == Decimal("12.500")
    assert data.measure("330") is None
    assert "10" in data and "11" not in data


# -- human-readable form ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("hri", "expected"),
    [
        (f"(01){GTIN}(10)LOT42", [("01", GTIN), ("10", "LOT42")]),
        (f"(01) {GTIN} (17) 271100 (10) LOT42", [("01", GTIN), ("17", "271100"), ("10", "LOT42")]),
        ("(10)A\\(B(21)C", [("10", "A(B"), ("21", "C")]),  # escaped "("
        ("(10)A(B)(21)C", [("10", "A(B)"), ("21", "C")]),  # a "(" that opens no AI
        ("(3103)001250", [("3103", "001250")]),
    ],
)
def test_human_readable_form(hri: str, expected: list[tuple[str, str]]) -> None:
    assert parse_hri(hri) == Gs1Data.of(expected)


@pytest.mark.parametrize(
    ("hri", "ai", "problem"),
    [
        ("01)123", None, Gs1Problem.SYNTAX),
        ("()1", None, Gs1Problem.SYNTAX),
        ("(7003)2601011200", "7003", Gs1Problem.UNKNOWN_AI),
        ("(01)09501101530004", "01", Gs1Problem.CHECK_DIGIT),
        ("(10)", "10", Gs1Problem.LENGTH),
        ("(10)LOT 42", "10", Gs1Problem.CHARACTERS),
    ],
)
def test_human_readable_errors(hri: str, ai: str | None, problem: Gs1Problem) -> None:
    with pytest.raises(Gs1Error) as caught:
        parse_hri(hri)
    assert (caught.value.ai, caught.value.problem) == (ai, problem)


def test_hri_escapes_an_open_parenthesis() -> None:
    data = Gs1Data.of([("10", "A(10)B"), ("21", "(")])
    assert data.hri() == "(10)A\\(10)B(21)\\("
    assert parse_hri(data.hri()) == data


# -- properties -------------------------------------------------------------------------


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


@st.composite
def _yymmdd(draw: st.DrawFn) -> str:
    yy = draw(st.integers(0, 99))
    mm = draw(st.integers(1, 12))
    last = (date(2000 + yy + (mm == 12), mm % 12 + 1, 1) - date(2000 + yy, mm, 1)).days
    return f"{yy:02d}{mm:02d}{draw(st.integers(0, last)):02d}"


def _value(spec: AiSpec) -> st.SearchStrategy[str]:
    if spec.yymmdd:
        return _yymmdd()
    if spec.check_digit:
        return _digits(spec.max_len - 1).map(lambda body: body + check_digit(body))
    alphabet = "0123456789" if spec.content is Content.DIGITS else "".join(sorted(CSET82))
    return st.text(alphabet=alphabet, min_size=spec.min_len, max_size=spec.max_len)


@st.composite
def gs1_data(draw: st.DrawFn) -> Gs1Data:
    specs = draw(st.lists(st.sampled_from(known_ais()), min_size=1, max_size=6, unique=True))
    return Gs1Data.of([(spec.ai, draw(_value(spec))) for spec in specs])


@given(gs1_data())
def test_element_string_round_trip(data: Gs1Data) -> None:
    assert parse_element_string(data.element_string()) == data
    assert parse_element_string(GS + data.element_string()) == data  # FNC1 first


@given(gs1_data())
def test_hri_round_trip(data: Gs1Data) -> None:
    assert parse_hri(data.hri()) == data


@given(_digits(13), st.integers(0, 13), st.integers(1, 9))
def test_a_single_digit_corruption_of_a_gtin_is_always_detected(
    body: str, position: int, shift: int
) -> None:
    gtin = body + check_digit(body)
    wrong = str((int(gtin[position]) + shift) % 10)
    corrupted = gtin[:position] + wrong + gtin[position + 1 :]
    assert has_valid_check_digit(gtin)
    assert not has_valid_check_digit(corrupted)
    with pytest.raises(Gs1Error) as caught:
        parse_element_string("01" + corrupted)
    assert caught.value.problem is Gs1Problem.CHECK_DIGIT


@given(st.text(max_size=60))
def test_any_text_parses_or_raises_gs1_error_only(text: str) -> None:
    for parse in (parse_element_string, parse_hri):
        with contextlib.suppress(Gs1Error):
            parse(text)
