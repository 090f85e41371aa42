"""What a scan means: badges, plain codes, GS1 codes in every form they arrive in, junk;
and GS1 lot labels, travellers and SSCCs scanned at a station."""

from __future__ import annotations

import calendar
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.desk.barcodes import Scan, ScanKind, classify
from gateway.desk.gs1 import GS, Gs1Data
from gateway.desk.replies import Refused
from gateway.desk.service import StationService
from tests.gateway.conftest import Line, order, stock_doc
from tests.gateway.test_gs1 import gs1_data

GTIN = "09501101530003"
INK_LOT = "INK-DTG-CMYK-L2611A"  # reference stock: no expiry

# -- classify ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "symbology", "kind", "code"),
    [
        ("OP-1001\r\n", None, ScanKind.BADGE, "OP-1001"),
        ("LINE3-00000001", None, ScanKind.CODE, "LINE3-00000001"),
        ("  INK-DTG-CMYK-L2611A\n", None, ScanKind.CODE, INK_LOT),
        ("]C0SHP-0001", None, ScanKind.CODE, "SHP-0001"),  # plain Code 128, AIM id typed
        ("9501101530003", "]C0", ScanKind.CODE, "9501101530003"),
        # Digits alone, no symbology and no FNC1: nothing says GS1, so a plain code.
        (f"01{GTIN}", None, ScanKind.CODE, f"01{GTIN}"),
        # GS1, from a scanner driver (identifier apart) or typed with the identifier.
        (f"01{GTIN}10LOT42", "]C1", ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        (f"01{GTIN}10LOT42", "]d2", ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        (f"01{GTIN}10LOT42", "]Q3", ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        (f"01{GTIN}", "]e0", ScanKind.GS1, f"(01){GTIN}"),
        (f"]C101{GTIN}10LOT42\r\n", None, ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        (f"]d2{GS}01{GTIN}10LOT42", None, ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        # FNC1 as GS without an identifier: leading, or as a separator.
        (f"{GS}01{GTIN}10LOT42", None, ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        (f"10LOT42{GS}01{GTIN}", None, ScanKind.GS1, f"(10)LOT42(01){GTIN}"),
        # FNC1 written out.
        ("10LOT42<GS>21S1", "]C1", ScanKind.GS1, "(10)LOT42(21)S1"),
        ("]C110LOT42{GS}21S1", None, ScanKind.GS1, "(10)LOT42(21)S1"),
        ("10LOT42\u241d21S1", None, ScanKind.GS1, "(10)LOT42(21)S1"),
        # Human-readable, typed or (wrongly) encoded as plain text in a Code 128.
        (f"(01){GTIN}(10)LOT42", None, ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        (f"(01) {GTIN} (10) LOT42", None, ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        (f"]C1(01){GTIN}(10)LOT42", None, ScanKind.GS1, f"(01){GTIN}(10)LOT42"),
        (f"(01){GTIN}", "]C0", ScanKind.GS1, f"(01){GTIN}"),
        # EAN/UPC: a bare GTIN.
        ("9501101530003", "]E0", ScanKind.GS1, f"(01){GTIN}"),
        ("96385074", "]E4", ScanKind.GS1, "(01)00000096385074"),
    ],
)
def test_classify(raw: str, symbology: str | None, kind: ScanKind, code: str) -> None:
    scan = classify(raw, symbology)
    assert (scan.kind, scan.code) == (kind, code)
    assert scan.reason == scan.advice == ""
    assert (scan.gs1 is not None) is (kind is ScanKind.GS1)


def test_the_parsed_fields_of_a_gs1_scan() -> None:
    scan = classify(f"]d201{GTIN}17271100{GS}10L26-11{GS}21SN1{GS}240INK-DTG-CMYK")
    assert scan.symbology == "]d2"
    assert scan.gs1 is not None
    assert (scan.gs1.gtin, scan.gs1.lot, scan.gs1.serial, scan.gs1.additional_id) == (
        GTIN,
        "L26-11",
        "SN1",
        "INK-DTG-CMYK",
    )
    assert scan.gs1.expiry(date(2026, 11, 25)) == date(2027, 11, 30)


@pytest.mark.parametrize(
    ("raw", "symbology", "says"),
    [
        ("\x00\x01", None, "not readable"),
        ("", None, "not readable"),
        ("CODE WITH SPACES", None, "not readable"),
        (
            f"]C101{GTIN[:-1]}4",
            None,
            "check digit wrong (should end in 3) — the label is damaged or misprinted",
        ),
        ("0109501101530004", "]d2", "check digit wrong"),
        ("(01)09501101530004(10)LOT42", None, "check digit wrong"),
        ("(00)106141411234567890", None, "SSCC 106141411234567890: check digit wrong"),
        ("9501101530004", "]E0", "check digit wrong"),
        ("]C117271332", None, "not a date (YYMMDD) — the label is misprinted"),
        ("]C17003261125", None, "no application identifier this line reads"),
        ("(7003)2611251200", None, "(7003) is not one this line reads"),
        ("]C1", None, "no application identifier"),
        (f"]C110{'A' * 21}", None, "BATCH/LOT"),
        (f"10LOT 42{GS}21S", None, "not allowed in GS1"),
    ],
)
def test_invalid_scans_say_why(raw: str, symbology: str | None, says: str) -> None:
    scan = classify(raw, symbology)
    assert scan.kind is ScanKind.INVALID
    assert says in scan.reason
    assert scan.advice


def _check_scan(scan: Scan) -> None:
    if scan.kind is ScanKind.INVALID:
        assert scan.reason and scan.advice
    elif scan.kind is ScanKind.GS1:
        assert scan.gs1 is not None and scan.code == scan.gs1.hri()
    else:
        assert scan.code.isprintable() and scan.code.strip() == scan.code


_SYMBOLOGIES = st.none() | st.sampled_from(["]C1", "]d2", "]Q3", "]e0", "]E0", "]E4", "]C0"])
# Text that reaches the GS1 parsers often: digits, brackets, separators, AIM ids.
_GS1_ISH = st.text(alphabet="0123456789()\\]CdQ1<GS>{}\x1d\u241d LOT-", max_size=50)


@given(st.text(max_size=80), _SYMBOLOGIES | st.text(max_size=4))
def test_classify_never_raises_on_any_text(raw: str, symbology: str | None) -> None:
    _check_scan(classify(raw, symbology))


@given(_GS1_ISH, _SYMBOLOGIES)
def test_classify_never_raises_on_gs1_like_text(raw: str, symbology: str | None) -> None:
    _check_scan(classify(raw, symbology))


@given(gs1_data(), st.sampled_from(["]C1", "]d2", "]Q3", "]e0", "]J1"]))
def test_every_valid_gs1_code_classifies_as_itself(data: Gs1Data, symbology: str) -> None:
    for scan in (
        classify(data.element_string(), symbology),
        classify(symbology + data.element_string() + "\r\n"),
        classify(GS + data.element_string()),
        classify(data.hri()),
    ):
        assert scan.kind is ScanKind.GS1
        assert scan.gs1 == data


# -- at a station -------------------------------------------------------------------------


def _refused(
    svc: StationService, station: str, raw: str, code: str, symbology: str | None = None
) -> Refused:
    with pytest.raises(Refused) as caught:
        svc.scan(station, raw, symbology)
    assert caught.value.code == code, f"{caught.value.code}: {caught.value.message}"
    assert caught.value.message and caught.value.next
    return caught.value


def _end_of_month_next_year(today: date) -> date:
    year, month = today.year + 1, today.month
    return date(year, month, calendar.monthrange(year, month)[1])


def _at_dtg(line: Line, extra_stock: list[dict[str, object]] | None = None) -> StationService:
    """A TEE-WHT-M print task dispatched at dtg-1: it needs INK-DTG-CMYK, lot-tracked."""
    if extra_stock:
        stock = stock_doc()
        stock["items"].extend(extra_stock)
        line.send("in/masterdata/stock", stock)
    line.send("in/orders", order("SO-1", ("TEE-WHT-M", 1)))
    svc = line.svc
    svc.login("dtg-1", "OP-1001")
    svc.next_task("dtg-1")
    return svc


@pytest.mark.parametrize(
    ("raw", "symbology"),
    [
        (f"]C1240INK-DTG-CMYK{GS}10{INK_LOT}", None),
        (f"01{GTIN}240INK-DTG-CMYK{GS}10{INK_LOT}", "]d2"),
        (f"(01){GTIN}(240)INK-DTG-CMYK(10){INK_LOT}", None),
        (f"]C1240INK-DTG-CMYK<GS>10{INK_LOT}", None),
    ],
)
def test_a_gs1_lot_label_is_accepted_for_the_right_material(
    line: Line, raw: str, symbology: str | None
) -> None:
    svc = _at_dtg(line)
    reply = svc.scan("dtg-1", raw, symbology)
    assert reply.message.startswith(f"{INK_LOT} accepted for INK-DTG-CMYK")
    task = svc.view("dtg-1")["task"]
    assert task is not None
    ink = next(m for m in task["materials"] if m["material"] == "INK-DTG-CMYK")
    assert ink["scanned"]["lot"] == INK_LOT


def test_a_gs1_lot_label_with_its_expiry_checked_against_the_stock_record(line: Line) -> None:
    expires = _end_of_month_next_year(line.gateway.core.today())
    svc = _at_dtg(
        line,
        [
            {"material": "INK-DTG-CMYK", "lot": "INK-NEW", "qty": 900, "expires": str(expires)},
            {"material": "INK-DTG-CMYK", "lot": "INK-OLD", "qty": 900, "expires": "2021-01-01"},
        ],
    )
    yymm = expires.strftime("%y%m")
    wrong_day = _refused(
        svc, "dtg-1", f"(240)INK-DTG-CMYK(10)INK-NEW(17){yymm}15", "LABEL_MISMATCH"
    )
    assert str(expires) in wrong_day.message and "stock record" in wrong_day.message
    no_expiry_on_record = _refused(
        svc, "dtg-1", f"(240)INK-DTG-CMYK(10){INK_LOT}(17){yymm}00", "LABEL_MISMATCH"
    )
    assert "never" in no_expiry_on_record.message
    expired = _refused(svc, "dtg-1", "(240)INK-DTG-CMYK(10)INK-OLD(17)210101", "EXPIRED_LOT")
    assert "expired on 2021-01-01" in expired.message
    # DD = 00 is the end of the month, which is what the stock record says.
    reply = svc.scan("dtg-1", f"]C1240INK-DTG-CMYK{GS}17{yymm}0010INK-NEW")
    assert reply.message.startswith("INK-NEW accepted for INK-DTG-CMYK")


def test_gs1_lot_labels_refused_with_the_reason(line: Line) -> None:
    svc = _at_dtg(line)
    bad = _refused(svc, "dtg-1", f"]C101{GTIN[:-1]}9240INK-DTG-CMYK{GS}10{INK_LOT}", "BAD_CODE")
    assert "check digit wrong" in bad.message and "misprinted" in bad.message
    bad_date = _refused(svc, "dtg-1", f"(240)INK-DTG-CMYK(10){INK_LOT}(17)271340", "BAD_CODE")
    assert "not a date" in bad_date.message
    wrong = _refused(svc, "dtg-1", "(240)PEN-BRASS(10)PEN-BRASS-L2611A", "WRONG_MATERIAL")
    assert "PEN-BRASS" in wrong.message
    unknown_lot = _refused(svc, "dtg-1", "(240)INK-DTG-CMYK(10)INK-NOWHERE", "UNKNOWN_LOT")
    assert "INK-NOWHERE" in unknown_lot.message
    other = _refused(svc, "dtg-1", "(240)INK-DTG-CMYK(10)PEN-BRASS-L2611A", "LABEL_MISMATCH")
    assert "PEN-BRASS" in other.message
    no_material = _refused(svc, "dtg-1", f"(01){GTIN}(10){INK_LOT}", "MATERIAL_ID_MISSING")
    assert "(240)" in no_material.message
    not_ours = _refused(svc, "dtg-1", f"(240)INK-MAGENTA(10){INK_LOT}", "UNKNOWN_CODE")
    assert "INK-MAGENTA" in not_ours.message
    lot_required = _refused(svc, "dtg-1", "(240)INK-DTG-CMYK", "LOT_REQUIRED")
    assert "lot" in lot_required.message
    # Nothing of it was recorded: the right label is still accepted.
    assert svc.scan("dtg-1", f"(240)INK-DTG-CMYK(10){INK_LOT}").ok


def test_gs1_travellers_sscc_and_other_gs1_codes(line: Line) -> None:
    svc = _at_dtg(line)
    task = svc.view("dtg-1")["task"]
    assert task is not None
    serial = task["serial"]
    assert svc.scan("dtg-1", f"(21){serial}").message == f"Unit {serial} confirmed."
    assert svc.scan("dtg-1", f"21{serial}", "]d2").message == f"Unit {serial} confirmed."
    unknown = _refused(svc, "dtg-1", "(21)LINE3-99999999", "UNKNOWN_CODE")
    assert "LINE3-99999999" in unknown.message
    sscc = _refused(svc, "dtg-1", "(00)106141411234567897", "UNKNOWN_CODE")
    assert "SSCC 106141411234567897" in sscc.message
    gtin_only = _refused(svc, "dtg-1", "9501101530003", "UNKNOWN_CODE", "]E0")
    assert f"(01){GTIN}" in gtin_only.message


def test_a_gs1_scan_needs_a_logged_in_operator(line: Line) -> None:
    _refused(line.svc, "dtg-1", f"(240)INK-DTG-CMYK(10){INK_LOT}", "NOT_LOGGED_IN")
