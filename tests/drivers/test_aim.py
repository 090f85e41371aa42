"""AIM symbology identifiers and the normalisation every scanner's codes go through."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.aim import (
    GS,
    add_aim_id,
    code_preview,
    is_gs1,
    normalise_scan,
    split_aim_id,
    symbology_name,
)
from drivers.base import ScannedCode

GS1_128 = "01095011015300031726013110ABC123"


@pytest.mark.parametrize(
    ("raw", "aim_id", "rest"),
    [
        ("]C1" + GS1_128, "]C1", GS1_128),
        ("]d20104006381333931", "]d2", "0104006381333931"),
        ("]E04006381333931", "]E0", "4006381333931"),
        ("]Q1https://example.com", "]Q1", "https://example.com"),
        ("]Q3010950110153000", "]Q3", "010950110153000"),
        ("]A0ABC-123", "]A0", "ABC-123"),
        ("]C0LG-000123", "]C0", "LG-000123"),
        ("]e0010950110153000", "]e0", "010950110153000"),
        ("]C1", "]C1", ""),
        ("LG-000123", None, "LG-000123"),
        ("]C", None, "]C"),  # too short to be an identifier
        ("]1C123", None, "]1C123"),  # the symbology is a letter
        ("]C!12", None, "]C!12"),  # the modifier is a letter or digit
        ("x]C1", None, "x]C1"),  # only at the start
        ("", None, ""),
    ],
)
def test_split_aim_id(raw: str, aim_id: str | None, rest: str) -> None:
    assert split_aim_id(raw) == (aim_id, rest)


@pytest.mark.parametrize(
    ("aim_id", "name", "gs1"),
    [
        ("]C1", "Code 128", True),
        ("]C0", "Code 128", False),
        ("]d2", "Data Matrix", True),
        ("]d1", "Data Matrix", False),
        ("]Q3", "QR Code", True),
        ("]Q1", "QR Code", False),
        ("]e0", "GS1 DataBar", True),
        ("]J1", "DotCode", True),
        ("]E0", "EAN/UPC", False),
        ("]E4", "EAN/UPC", False),
        ("]A0", "Code 39", False),
        ("]I1", "Interleaved 2 of 5", False),
        ("]z0", "Aztec", False),
        ("]W0", "unknown", False),
    ],
)
def test_symbology_and_gs1(aim_id: str, name: str, gs1: bool) -> None:
    assert symbology_name(aim_id) == name
    assert is_gs1(aim_id) is gs1


def test_no_identifier_is_not_gs1() -> None:
    assert is_gs1(None) is False


@pytest.mark.parametrize("bad", ["C1", "]C", "]C12", "[C1", ""])
def test_malformed_identifiers_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="AIM"):
        symbology_name(bad)
    with pytest.raises(ValueError, match="AIM"):
        add_aim_id("123", bad)


@pytest.mark.parametrize(
    ("raw", "aim_ids", "gs_substitute", "expected"),
    [
        ("]C1" + GS1_128 + GS + "21X", True, "", ScannedCode(GS1_128 + GS + "21X", "]C1")),
        ("]C1" + GS1_128 + "<GS>21X", True, "<GS>", ScannedCode(GS1_128 + GS + "21X", "]C1")),
        (
            "]d2" + "0104006381333931^]10L1^]21S",
            True,
            "^]",
            ScannedCode("0104006381333931" + GS + "10L1" + GS + "21S", "]d2"),
        ),
        # The leading FNC1 sent as GS as well as the identifier: the identifier says it.
        ("]C1" + GS + GS1_128, True, "", ScannedCode(GS1_128, "]C1")),
        ("]C1<GS>" + GS1_128, True, "<GS>", ScannedCode(GS1_128, "]C1")),
        # Without identifiers a leading GS is the only GS1 marker there is: kept.
        (GS + GS1_128, False, "", ScannedCode(GS + GS1_128, None)),
        # A GS after a non-GS1 identifier is data.
        ("]C0" + GS + "ABC", True, "", ScannedCode(GS + "ABC", "]C0")),
        # aim_ids off: a code that starts like an identifier is data.
        ("]C1ABC", False, "", ScannedCode("]C1ABC", None)),
        # aim_ids on but none sent: delivered without a symbology.
        ("LG-000123", True, "", ScannedCode("LG-000123", None)),
        ("]E04006381333931", True, "", ScannedCode("4006381333931", "]E0")),
        ("", True, "", ScannedCode("", None)),
    ],
)
def test_normalise_scan(raw: str, aim_ids: bool, gs_substitute: str, expected: ScannedCode) -> None:
    assert normalise_scan(raw, aim_ids=aim_ids, gs_substitute=gs_substitute) == expected


@given(
    text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just(GS)),
    aim_id=st.sampled_from(["]C0", "]C1", "]d2", "]E0", "]Q1", "]A0"]),
)
def test_identifier_round_trip(text: str, aim_id: str) -> None:
    sent = add_aim_id(text, aim_id)
    assert split_aim_id(sent) == (aim_id, text)
    code = normalise_scan(sent, aim_ids=True)
    assert code.symbology == aim_id
    expected = text[1:] if is_gs1(aim_id) and text.startswith(GS) else text
    assert code.text == expected


@pytest.mark.parametrize(
    ("raw", "preview"),
    [
        ("OP-1001", "'OP-100'…(7 chars)"),
        ("]C1" + GS1_128, "']C1010'…(35 chars)"),
        ("A1", "'A1'"),
        ("a\x1db", "'a\\x1db'"),
    ],
)
def test_code_preview(raw: str, preview: str) -> None:
    assert code_preview(raw) == preview
