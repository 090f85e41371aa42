"""The label printer's pure parts: config, host status (~HS), job framing and the ZPL reader
the simulator prints with, including what customer text can and cannot do to a format."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.label_printer.config import LabelPrinterConfig, PrinterAddress, parse_printer_url
from drivers.label_printer.render import ShippingLabel, render_shipping, render_traveller
from drivers.label_printer.status import (
    HostStatus,
    HostStatusError,
    format_host_status,
    host_status_reply_length,
    parse_host_status,
)
from drivers.label_printer.zpl import (
    Command,
    PrintedLabel,
    ZplFormat,
    ZplReader,
    decode_code128,
    frame_job,
    read_label,
)
from tests.drivers.test_label_render import SHIPPING, TRAVELLER

ELLIPSIS = "…"


def reply(one: str, two: str, three: str = "1234,0") -> bytes:
    return b"".join(b"\x02" + s.encode() + b"\x03\r\n" for s in (one, two, three))


READY = reply("030,0,0,1218,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000")

# --- config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("tcp://10.0.3.21", PrinterAddress("tcp", host="10.0.3.21", port=9100)),
        (
            "tcp://zt411-pack1.local:6101",
            PrinterAddress("tcp", host="zt411-pack1.local", port=6101),
        ),
        ("tcp://[fd00::21]:9100", PrinterAddress("tcp", host="fd00::21", port=9100)),
        ("tcp://127.0.0.1:0", PrinterAddress("tcp", host="127.0.0.1", port=0)),
        (
            "serial:///dev/serial/by-id/usb-Zebra_ZD421-if00",
            PrinterAddress("serial", path="/dev/serial/by-id/usb-Zebra_ZD421-if00"),
        ),
    ],
)
def test_printer_urls(url: str, address: PrinterAddress) -> None:
    assert parse_printer_url(url) == address
    assert LabelPrinterConfig(kind="label_printer", url=url).address == address


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.3.21:9100", "unknown scheme"),
        ("10.0.3.21:9100", "unknown scheme"),
        ("tcp://:9100", "no host"),
        ("tcp://host:91000", "bad port"),
        ("tcp://host:port", "bad port"),
        ("tcp://host/queue", "no path"),
        ("tcp://user:secret@host", "extra parts"),
        ("tcp://host?timeout=3", "extra parts"),
        ("serial://dev/ttyUSB0", "no host"),
        ("serial:///dev/serial/by-id/", "absolute path to a file"),
        ("serial:dev/ttyUSB0", "absolute path"),
    ],
)
def test_bad_printer_urls_say_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        LabelPrinterConfig(kind="label_printer", url=url)


def test_the_example_station_file_has_a_valid_printer() -> None:
    example = Path(__file__).parents[2] / "station_configs/examples/label-printer.toml"
    device = tomllib.loads(example.read_text(encoding="utf-8"))["devices"]["printer"]
    config = LabelPrinterConfig.model_validate(device)
    assert config.address == PrinterAddress("tcp", host="192.168.10.31", port=9100)


def test_config_defaults() -> None:
    config = LabelPrinterConfig(kind="label_printer", url="tcp://printer")
    assert (config.dpi, config.check_status, config.baudrate) == (203, True, 9600)
    assert config.timeout_s == 2.0


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"baudrate": 19200}, "serial:// printer only"),
        ({"dpi": 250}, "203, 300 or 600"),
        ({"dpi": "300"}, "203, 300 or 600"),
        ({"timeout_s": "2"}, "valid number"),
        ({"check_status": 1}, "valid boolean"),
        ({"port": 9100}, "Extra inputs"),
        ({"status_interval_s": 0}, "greater than 0"),
    ],
)
def test_bad_config_values_are_refused(extra: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        LabelPrinterConfig.model_validate({"kind": "label_printer", "url": "tcp://p", **extra})


def test_serial_config_takes_a_standard_baudrate() -> None:
    url = "serial:///dev/ttyUSB0"
    assert LabelPrinterConfig(kind="label_printer", url=url, baudrate=115200).baudrate == 115200
    with pytest.raises(ValidationError, match="baudrate 12345"):
        LabelPrinterConfig(kind="label_printer", url=url, baudrate=12345)


# --- host status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            READY,
            HostStatus(
                communication_settings=30,
                label_length_dots=1218,
                function_settings=1,
                thermal_transfer=True,
                print_mode=2,
            ),
        ),
        (  # paper out, and the printer paused itself; one format waiting to print
            reply("030,1,1,1218,001,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000001,1,000"),
            HostStatus(
                communication_settings=30,
                paper_out=True,
                paused=True,
                label_length_dots=1218,
                formats_in_buffer=1,
                labels_remaining=1,
                function_settings=1,
                thermal_transfer=True,
                print_mode=2,
            ),
        ),
        (  # head open (string 2, third field: the second is unused), ribbon out, hot
            reply("030,0,0,0812,000,0,0,1,000,1,0,1", "000,1,1,1,0,1,6,1,00000012,1,003"),
            HostStatus(
                communication_settings=30,
                label_length_dots=812,
                partial_format=True,
                corrupt_ram=True,
                over_temperature=True,
                head_open=True,
                ribbon_out=True,
                print_mode=1,
                label_waiting=True,
                labels_remaining=12,
                graphics_stored=3,
            ),
        ),
        (  # receive buffer full, head cold
            reply("158,0,0,1218,042,1,0,0,000,0,1,0", "000,0,0,0,0,3,6,0,00000000,1,000", "0000,1"),
            HostStatus(
                communication_settings=158,
                label_length_dots=1218,
                formats_in_buffer=42,
                buffer_full=True,
                under_temperature=True,
                print_mode=3,
            ),
        ),
    ],
)
def test_parse_host_status(raw: bytes, expected: HostStatus) -> None:
    assert host_status_reply_length(raw) == len(raw)
    assert parse_host_status(raw) == expected


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        (HostStatus(), None),
        (HostStatus(paper_out=True), "paper out"),
        (HostStatus(head_open=True, paper_out=True, paused=True), "print head open"),
        (HostStatus(paper_out=True, paused=True), "paper out"),
        (HostStatus(paused=True), "printer paused"),
        (HostStatus(ribbon_out=True), None),  # direct thermal: no ribbon needed
        (HostStatus(ribbon_out=True, thermal_transfer=True), "ribbon out"),
        (HostStatus(over_temperature=True), "print head too hot"),
        (HostStatus(under_temperature=True, buffer_full=True, corrupt_ram=True), None),
    ],
)
def test_problem_in_operator_words(status: HostStatus, problem: str | None) -> None:
    assert status.problem == problem


def test_busy_while_a_label_is_on_its_way() -> None:
    assert not HostStatus().busy
    assert HostStatus(formats_in_buffer=1).busy
    assert HostStatus(labels_remaining=3).busy
    assert HostStatus(partial_format=True).busy


def test_reply_length_waits_for_all_three_strings() -> None:
    for cut in range(len(READY)):
        assert host_status_reply_length(READY[:cut]) is None
    assert host_status_reply_length(READY + b"\x02junk") == len(READY)


@pytest.mark.parametrize(
    "noise",
    [
        b"hello",  # no STX
        b"\x02" + b"0" * 80,  # a string without an end
        READY[:36] + b"X" + READY[37:],  # string 2 does not start with STX
    ],
)
def test_reply_length_refuses_noise_at_once(noise: bytes) -> None:
    with pytest.raises(HostStatusError):
        host_status_reply_length(noise)


@pytest.mark.parametrize(
    "garbled",
    [
        reply("030,0,0,1218,000,0,0,0,000,0,0", "001,0,0,0,1,2,6,0,00000000,1,000"),  # 11 fields
        reply("030,0,0,1218,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1"),  # 10 fields
        reply("030,0,0,1218,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000", "1234"),
        reply("030,2,0,1218,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000"),  # flag 2
        reply("030,0,0,1218,000,0,0,0,000,0,0,0", "001,0,9,0,1,2,6,0,00000000,1,000"),  # flag 9
        reply("030,0,0,12 8,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000"),
        reply("030,0,0,1218,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,0000000١,1,000"),  # Arabic 1
        READY + b"\x02",  # more than one reply
    ],
)
def test_parse_refuses_garbled_replies(garbled: bytes) -> None:
    with pytest.raises(HostStatusError):
        parse_host_status(garbled)


statuses = st.builds(
    HostStatus,
    paper_out=st.booleans(),
    paused=st.booleans(),
    head_open=st.booleans(),
    ribbon_out=st.booleans(),
    buffer_full=st.booleans(),
    partial_format=st.booleans(),
    corrupt_ram=st.booleans(),
    under_temperature=st.booleans(),
    over_temperature=st.booleans(),
    thermal_transfer=st.booleans(),
    label_waiting=st.booleans(),
    formats_in_buffer=st.integers(0, 999),
    labels_remaining=st.integers(0, 99_999_999),
    label_length_dots=st.integers(0, 9999),
    print_mode=st.integers(0, 9),
    communication_settings=st.integers(0, 255),
    function_settings=st.integers(0, 255),
    graphics_stored=st.integers(0, 999),
)


@given(statuses)
def test_status_round_trips_through_the_simulators_reply(status: HostStatus) -> None:
    raw = format_host_status(status)
    assert host_status_reply_length(raw) == len(raw)
    assert parse_host_status(raw) == status


# --- job framing ------------------------------------------------------------------------


def test_frame_job_puts_the_job_id_in_a_comment() -> None:
    zpl = render_shipping(SHIPPING)
    data = frame_job(zpl, "SHP-LINE3-0000042")
    assert data.startswith(b"^XA^FXjob=SHP-LINE3-0000042^FS\n^CI28")
    assert data.decode("utf-8") == "^XA^FXjob=SHP-LINE3-0000042^FS" + zpl[3:] + "\n"
    assert "王小明".encode() in data


@pytest.mark.parametrize(("dpi", "units"), [(300, b"^MUd,200,300"), (600, b"^MUd,200,600")])
def test_frame_job_scales_for_a_finer_head(dpi: int, units: bytes) -> None:
    data = frame_job(render_traveller(TRAVELLER), "TRV-1", dpi=dpi)
    assert data.startswith(b"^XA^FXjob=TRV-1^FS" + units + b"\n^CI28")
    assert b"^MU" not in frame_job(render_traveller(TRAVELLER), "TRV-1")


@pytest.mark.parametrize("job_id", ["", "a b", "x^XZ", "x~JA", "x\n", "ü", "-lead", "x" * 65])
def test_frame_job_refuses_a_job_id_a_comment_cannot_carry(job_id: str) -> None:
    with pytest.raises(ValueError, match="job id"):
        frame_job("^XA^FDx^FS^XZ", job_id)


@pytest.mark.parametrize(
    "zpl",
    [
        "",
        "^FDx^FS",
        "^XA^FDx^FS",
        "^XA^FDa^FS^XZ^XA^FDb^FS^XZ",  # two formats: one job is one label
        "^XA~JA^XZ",
        "^XA^FD\x03^FS^XZ",
        "^XA^FD王^FS^XZ",  # UTF-8 without ^CI28 prints as code page 850
    ],
)
def test_frame_job_refuses_what_is_not_one_clean_format(zpl: str) -> None:
    with pytest.raises(ValueError):
        frame_job(zpl, "J1")


# --- the ZPL reader ---------------------------------------------------------------------


def read_all(
    data: bytes, *, chunk: int | None = None
) -> tuple[list[Command | ZplFormat], ZplReader]:
    reader = ZplReader()
    items: list[Command | ZplFormat] = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        items += reader.feed(data[i : i + step])
    return items, reader


def labels_in(data: bytes) -> list[PrintedLabel]:
    items, _ = read_all(data)
    utf8 = False
    out: list[PrintedLabel] = []
    for item in items:
        if isinstance(item, ZplFormat):
            label, utf8 = read_label(item, utf8=utf8)
            out.append(label)
    return out


def test_reader_reads_a_rendered_label_exactly() -> None:
    data = frame_job(render_shipping(SHIPPING), "SHP-1")
    (label,) = labels_in(data)
    assert label.job_id == "SHP-1"
    assert label.utf8
    assert label.commands[:5] == ("^XA", "^FX", "^FS", "^CI", "^PW")
    assert label.commands[-1] == "^XZ"
    assert label.raw == data.rstrip(b"\n")
    assert label.texts[4] == "王小明"
    assert "浦东新区世纪大道100号" in label.texts
    assert label.fields[4].font == "@N,56,56,E:SIMSUN.TTF"
    (barcode,) = label.barcodes
    assert (barcode.code, barcode.data) == ("^BC", ">:PKG-000045")
    assert decode_code128(barcode.data) == "PKG-000045"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_reader_gives_the_same_result_however_the_bytes_arrive(chunk: int) -> None:
    data = (
        frame_job(render_traveller(TRAVELLER), "TRV-1")
        + b"~HS"
        + frame_job(render_shipping(SHIPPING), "SHP-1")
    )
    whole, _ = read_all(data)
    pieces, _ = read_all(data, chunk=chunk)
    assert pieces == whole
    assert [type(item).__name__ for item in whole] == ["ZplFormat", "Command", "ZplFormat"]


def test_control_commands_act_at_once_even_inside_a_format() -> None:
    reader = ZplReader()
    assert reader.feed(b"^XA^FO10,10^FDab") == []
    assert reader.in_format
    assert reader.feed(b"~HS") == [Command("~HS", b"")]
    (fmt,) = reader.feed(b"cd^FS^XZ")
    assert isinstance(fmt, ZplFormat)
    label, _ = read_label(fmt)
    # The field's data ended where the control command began; the rest is stray.
    assert label.texts == ["ab"]
    assert reader.ignored_bytes == 2


@pytest.mark.parametrize(
    ("data", "commands", "texts"),
    [
        (b"^XA\r\n^FO1,2^FDa\r\nb^FS\r\n^XZ", ("^XA", "^FO", "^FD", "^FS", "^XZ"), ["ab"]),
        (b"^xa^fo1,2^fdlow^fs^xz", ("^XA", "^FO", "^FD", "^FS", "^XZ"), ["low"]),
        (b"^XA^FO1,2^FDetx^FS\x03", ("^XA", "^FO", "^FD", "^FS", "^XZ"), ["etx"]),
        (b"^FO9,9^FDstray^FS^XA^FDin^FS^XZ", ("^XA", "^FD", "^FS", "^XZ"), ["in"]),
        (b"^XA^FDa^FS^XA^FDb^FS^XZ", ("^XA", "^FD", "^FS", "^XA", "^FD", "^FS", "^XZ"), ["a", "b"]),
    ],
)
def test_reader_table(data: bytes, commands: tuple[str, ...], texts: list[str]) -> None:
    (label,) = labels_in(data)
    assert label.commands == commands
    assert label.texts == texts


def test_reader_counts_what_it_ignores() -> None:
    _, reader = read_all(b"junk^FO9,9^FDstray^FS^XA^XZ")
    assert reader.ignored_bytes == 4
    assert reader.ignored_commands == 3


def test_field_hex_escapes_and_encodings() -> None:
    data = (
        b"^XA^FO0,0^FH^FD_5EXZ _e7_8e_8b^FS"  # ^FH: "_" by default, either case of hex
        b"^FO0,0^FH#^FD#41_41^FS"  # another indicator
        b"^FO0,0^FD_41^FS"  # no ^FH: the indicator is just a character
        b"^FO0,0^FH^FD_4^FS"  # half an escape stays as it is
        b"^XZ"
    )
    (label,) = labels_in(data)
    # Without ^CI28 bytes are code page 850: the UTF-8 of 王 prints as three other glyphs.
    assert label.texts == ["^XZ " + "王".encode().decode("cp850"), "A_41", "_41", "_4"]
    (utf8_label,) = labels_in(data.replace(b"^XA", b"^XA^CI28", 1))
    assert utf8_label.texts[0] == "^XZ 王"


def test_ci28_persists_to_the_next_format_as_on_a_printer() -> None:
    first, second, third = labels_in(
        b"^XA^CI28^FD\xe7\x8e\x8b^FS^XZ^XA^FD\xe7\x8e\x8b^FS^XZ^XA^CI0^FD\xe7\x8e\x8b^FS^XZ"
    )
    assert first.texts == second.texts == ["王"]
    assert third.texts != ["王"]
    assert (first.utf8, second.utf8, third.utf8) == (True, True, False)


def test_read_label_fields_fonts_barcodes_and_quantity() -> None:
    (label,) = labels_in(
        b"^XA^CF0,30^FO10,20^FDdefault^FS^FO30,40^A0N,50,50^FDown^FS"
        b"^FO50,60^BY3^BQN,2,5^FDQA,https://x^FS^FO1,1^GB10,10,2^FS^PQ3^XZ"
    )
    assert [(f.x, f.y, f.font, f.text) for f in label.fields] == [
        (10, 20, "0,30", "default"),
        (30, 40, "0N,50,50", "own"),
    ]
    (qr,) = label.barcodes
    assert (qr.x, qr.y, qr.code, qr.params, qr.data) == (50, 60, "^BQ", "N,2,5", "QA,https://x")
    assert label.quantity == 3


@pytest.mark.parametrize(
    ("data", "text"),
    [(">:PKG-1", "PKG-1"), (">:A>0B><C>=D", "A>B^C~D"), ("plain", "plain"), (">;1234", "1234")],
)
def test_decode_code128(data: str, text: str) -> None:
    assert decode_code128(data) == text


# --- ZPL injection: customer text stays field data -----------------------------------

HOSTILE = [
    "^XZ^XA^FDpwned^FS",
    "^XZ^XA^FO0,0^GB812,1218,812^FS^XZ",
    "~JA",
    "~HS",
    "~PP",
    "^FS~DGR:X.GRF,2,1,FF",
    "_41 _5E _7E",
    "a\nb\r\nc",
    "\x03end of format",
    "nul\x00here\x1b",
    "\x7f\x85\u2028",
    "^CI0^FD",
    "^" * 5000,
    "长" * 5000,
    "王小明 ^FS^XZ 上海",
]


def hostile_shipping(text: str) -> ShippingLabel:
    return dataclasses.replace(SHIPPING, name=text, city=text, carrier=text, order_id=text)


def shows(printed: str, original: str) -> bool:
    if printed == original:
        return True
    return printed.endswith(ELLIPSIS) and original.startswith(printed[:-1])


def controls_in(data: bytes) -> list[str]:
    items, _ = read_all(data)
    return [item.code for item in items if isinstance(item, Command)]


@pytest.mark.parametrize("text", HOSTILE)
def test_injection_attempts_end_up_as_field_data(text: str) -> None:
    plain = labels_in(frame_job(render_shipping(hostile_shipping("x")), "J1"))
    data = frame_job(render_shipping(hostile_shipping(text)), "J1")
    (label,) = labels_in(data)
    assert len(plain) == 1
    assert label.commands == plain[0].commands
    assert controls_in(data) == []
    for index in (0, 4, 8, 13):  # carrier, name, city, order id
        assert shows(label.texts[index], text), label.texts[index]


def test_unescaped_text_would_inject_which_the_reader_shows() -> None:
    # The same template with the name pasted in raw: the reader sees the attack, which is
    # what makes the test above meaningful.
    zpl = render_shipping(hostile_shipping("NAME")).replace(
        "^FDNAME^FS", "^FDx^FS^XZ^XA^FO0,0^GB812,1218,812^FS^XZ", 1
    )
    data = zpl.encode("utf-8") + b"~JA"
    labels = labels_in(data)
    assert len(labels) == 2
    assert controls_in(data) == ["~JA"]


@given(st.text())
def test_any_text_in_any_field_stays_field_data(text: str) -> None:
    plain = labels_in(frame_job(render_shipping(hostile_shipping("x")), "J1"))[0]
    data = frame_job(render_shipping(hostile_shipping(text)), "J1")
    (label,) = labels_in(data)
    assert label.commands == plain.commands
    assert controls_in(data) == []
    printed = label.texts[4]
    # Lone surrogates cannot be sent as UTF-8 and print as U+FFFD.
    expected = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    assert shows(printed, expected)


def test_a_formats_raw_bytes_are_the_format_only() -> None:
    first, second = labels_in(b"junk\r\n^XA^FDa^FS\n^XZ\r\n~HS\n^XA^FDb^FS^XZ")
    assert first.raw == b"^XA^FDa^FS\n^XZ"
    assert second.raw == b"^XA^FDb^FS^XZ"


def test_a_printed_label_as_plain_data() -> None:
    (label,) = labels_in(frame_job(render_shipping(SHIPPING), "SHP-1"))
    data = label.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["job_id"] == "SHP-1"
    assert {"x": 40, "y": 175, "font": "@N,56,56,E:SIMSUN.TTF", "text": "王小明"} in data["fields"]
    assert data["barcodes"][0]["data"] == ">:PKG-000045"
    assert "^FH_^FD王小明^FS" in data["zpl"]
