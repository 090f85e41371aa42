"""HID barcode scanner: key maps against xkb, the recorded corpus, the decoder, and the
driver against its event-stream simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.aim import GS, normalise_scan
from drivers.barcode_hid import HidScanner, HidScannerConfig
from drivers.barcode_hid.decoder import EV_KEY, EV_MSC, EV_SYN, SYN_DROPPED, SYN_REPORT, KeyDecoder
from drivers.barcode_hid.events import EVENT_SIZE, EventStreamParser, InputEvent, pack_events
from drivers.barcode_hid.keymaps import LAYOUT_NAMES, Dead, Key, LayoutName, layout
from drivers.base import DeviceRejected, DeviceUnavailable, Driver, DriverError, ScannedCode
from simulators.barcode_hid import SimulatedHidScanner, typing_table
from simulators.faults import Faults, SimulatedDevice
from tests.conftest import need
from tests.drivers.corpus.hid import xkb

NAME = "qc-1/scanner"
CORPUS = Path(__file__).parent / "corpus" / "hid"
GS1_128 = "01095011015300031726013110ABC123"
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
K = Key


# --- key maps --------------------------------------------------------------------------


def test_key_codes_match_evdev() -> None:
    from evdev import ecodes

    assert {key.name: key.value for key in Key} == {
        key.name: getattr(ecodes, key.name) for key in Key
    }


def xkb_key_names() -> dict[int, str]:
    return {code: name for name, code in xkb.evdev_codes().items()}


def expected_xkb(symbol: str | Dead) -> str:
    return f"dead_{symbol.name}" if isinstance(symbol, Dead) else symbol


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_keymaps_agree_with_xkb(name: LayoutName) -> None:
    need(
        xkb.available(),
        "xkb-data / X11 keysymdef.h not installed (apt-get install xkb-data x11proto-dev)",
    )
    ours = layout(name)
    theirs = xkb.XkbLayout.load(name)
    names = xkb_key_names()
    differences = []
    for code, levels in ours.keys.items():
        for level, symbol in ((1, levels.plain), (2, levels.shift), (3, levels.altgr)):
            if symbol is None:
                continue
            found = theirs.char(names[code], level)
            if found != expected_xkb(symbol):
                differences.append((Key(code).name, level, symbol, found))
    for code, char in ours.keypad.items():
        # Level 2 of a keypad key is its NumLock level.
        found = theirs.char(names[code], 2)
        if found != char:
            differences.append((Key(code).name, 2, char, found))
    assert differences == []


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_every_printable_ascii_character_can_be_typed(name: LayoutName) -> None:
    assert set(ASCII) <= set(typing_table(layout(name)))


def test_unknown_layout_refused() -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        layout("dvorak")  # type: ignore[arg-type]


# --- the recorded corpus ---------------------------------------------------------------


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    layout: LayoutName
    terminator: Any
    codes: list[str]
    events: list[list[int]]


def corpus() -> Iterator[CorpusEntry]:
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            yield CorpusEntry(
                doc["name"], doc["layout"], doc["terminator"], doc["codes"], doc["events"]
            )


ENTRIES = list(corpus())


def test_corpus_covers_every_layout_gs_and_aim() -> None:
    assert {entry.layout for entry in ENTRIES} == set(LAYOUT_NAMES)
    for name in LAYOUT_NAMES:
        codes = [code for entry in ENTRIES if entry.layout == name for code in entry.codes]
        assert any(GS in code and code.startswith("]C1") for code in codes)
        assert any(GS in code and code.startswith("]d2") for code in codes)
        assert ASCII in codes
    events = [tuple(e[2:4]) for entry in ENTRIES for e in entry.events]
    assert (EV_MSC, 4) in events and (EV_SYN, SYN_REPORT) in events
    assert any(e[2] == EV_KEY and e[4] == 2 for entry in ENTRIES for e in entry.events)


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.layout}: {e.name}" for e in ENTRIES])
def test_corpus_decodes_exactly(entry: CorpusEntry) -> None:
    decoder = KeyDecoder(layout(entry.layout), terminator=entry.terminator, max_length=4096)
    codes = [text for _, _, t, c, v in entry.events if (text := decoder.feed(t, c, v)) is not None]
    assert codes == entry.codes
    assert decoder.counters.unknown_keys == 0
    assert not decoder.pending


# --- decoder (pure) --------------------------------------------------------------------


def key(code: int, value: int) -> tuple[int, int, int]:
    return (EV_KEY, code, value)


def tap(code: int, *modifiers: int) -> list[tuple[int, int, int]]:
    return [
        *(key(m, 1) for m in modifiers),
        key(code, 1),
        (EV_SYN, SYN_REPORT, 0),
        key(code, 0),
        *(key(m, 0) for m in reversed(modifiers)),
        (EV_SYN, SYN_REPORT, 0),
    ]


def alt_code(digits: str) -> list[tuple[int, int, int]]:
    pads = [Key[f"KEY_KP{d}"] for d in digits]
    return [key(K.KEY_LEFTALT, 1), *(e for p in pads for e in tap(p)), key(K.KEY_LEFTALT, 0)]


def decode(
    events: list[tuple[int, int, int]], name: LayoutName = "us", **options: Any
) -> tuple[list[str], KeyDecoder]:
    decoder = KeyDecoder(
        layout(name),
        terminator=options.pop("terminator", "enter"),
        max_length=options.pop("max_length", 64),
    )
    return [text for e in events if (text := decoder.feed(*e)) is not None], decoder


ENTER = tap(K.KEY_ENTER)
SHIFT = K.KEY_LEFTSHIFT
ALTGR = K.KEY_RIGHTALT
CTRL = K.KEY_LEFTCTRL

DECODER_CASES: dict[str, tuple[LayoutName, list[tuple[int, int, int]], list[str]]] = {
    "shift for capitals": ("us", [*tap(K.KEY_A, SHIFT), *tap(K.KEY_A), *ENTER], ["Aa"]),
    "right shift too": ("us", [*tap(K.KEY_1, K.KEY_RIGHTSHIFT), *ENTER], ["!"]),
    "autorepeat ignored": (
        "us",
        [key(K.KEY_B, 1), key(K.KEY_B, 2), key(K.KEY_B, 2), key(K.KEY_B, 0), *ENTER],
        ["b"],
    ),
    "keypad digits and Enter": (
        "us",
        [*tap(K.KEY_KP4), *tap(K.KEY_KP2), *tap(K.KEY_KPDOT), *tap(K.KEY_KPENTER)],
        ["42."],
    ),
    "German keypad dot is a comma": (
        "de",
        [*tap(K.KEY_KP1), *tap(K.KEY_KPDOT), *tap(K.KEY_KP5), *ENTER],
        ["1,5"],
    ),
    "Ctrl+] is GS": (
        "us",
        [*tap(K.KEY_1), *tap(K.KEY_RIGHTBRACE, CTRL), *tap(K.KEY_2), *ENTER],
        ["1\x1d2"],
    ),
    "German Ctrl+AltGr+9 is GS": ("de", [*tap(K.KEY_9, CTRL, ALTGR), *ENTER], ["\x1d"]),
    "German Ctrl at the US ] position is GS": (
        "de",
        [*tap(K.KEY_RIGHTBRACE, CTRL), *ENTER],
        ["\x1d"],
    ),
    "French Ctrl+AltGr+) is GS": ("fr", [*tap(K.KEY_MINUS, CTRL, ALTGR), *ENTER], ["\x1d"]),
    "Ctrl+letter is a control character": ("us", [*tap(K.KEY_D, CTRL), *ENTER], ["\x04"]),
    "Alt+0029 is GS": ("us", [*alt_code("0029"), *ENTER], ["\x1d"]),
    "Alt+0233 is cp1252": ("us", [*alt_code("0233"), *ENTER], ["é"]),
    "Alt+130 is cp437": ("us", [*alt_code("130"), *ENTER], ["é"]),
    "Alt+20320 is Unicode": ("us", [*alt_code("20320"), *alt_code("0338"), *ENTER], ["你Œ"]),
    "US right Alt is Alt": (
        "us",
        [key(ALTGR, 1), *tap(K.KEY_KP6), *tap(K.KEY_KP5), key(ALTGR, 0), *ENTER],
        ["A"],
    ),
    "UK swaps quote and at": (
        "uk",
        [*tap(K.KEY_2, SHIFT), *tap(K.KEY_APOSTROPHE, SHIFT), *ENTER],
        ['"@'],
    ),
    "German AltGr+Q is @": (
        "de",
        [*tap(K.KEY_Q, ALTGR), *tap(K.KEY_Y), *tap(K.KEY_Z), *ENTER],
        ["@zy"],
    ),
    "French digits need Shift": (
        "fr",
        [*tap(K.KEY_1), *tap(K.KEY_1, SHIFT), *tap(K.KEY_Q), *ENTER],
        ["&1a"],
    ),
    "dead key + space": (
        "de",
        [*tap(K.KEY_GRAVE), *tap(K.KEY_SPACE), *tap(K.KEY_EQUAL, SHIFT), *tap(K.KEY_SPACE), *ENTER],
        ["^`"],
    ),
    "dead key composes": (
        "fr",
        [*tap(K.KEY_LEFTBRACE), *tap(K.KEY_E), *tap(K.KEY_LEFTBRACE, SHIFT), *tap(K.KEY_U), *ENTER],
        ["êü"],
    ),
    "dead key twice": ("de", [*tap(K.KEY_GRAVE), *tap(K.KEY_GRAVE), *ENTER], ["^"]),
    "dead key then a letter it cannot accent": (
        "de",
        [*tap(K.KEY_GRAVE), *tap(K.KEY_X), *ENTER],
        ["^x"],
    ),
    "dead key before the terminator": ("de", [*tap(K.KEY_A), *tap(K.KEY_GRAVE), *ENTER], ["a^"]),
    "CapsLock applies to letters only": (
        "us",
        [*tap(K.KEY_CAPSLOCK), *tap(K.KEY_A), *tap(K.KEY_1), *tap(K.KEY_A, SHIFT), *ENTER],
        ["A1a"],
    ),
    "CapsLock on German umlauts": (
        "de",
        [*tap(K.KEY_CAPSLOCK), *tap(K.KEY_SEMICOLON), *ENTER],
        ["Ö"],
    ),
    "empty codes are not codes": ("us", [*ENTER, *ENTER], []),
    "MSC and SYN ignored": (
        "us",
        [(EV_MSC, 4, 0x70004), *tap(K.KEY_A), (EV_SYN, SYN_REPORT, 0), *ENTER],
        ["a"],
    ),
    "unmatched release ignored": ("us", [key(K.KEY_X, 0), *tap(K.KEY_A), *ENTER], ["a"]),
}


@pytest.mark.parametrize(
    ("name", "events", "codes"), DECODER_CASES.values(), ids=DECODER_CASES.keys()
)
def test_decoder(name: LayoutName, events: list[tuple[int, int, int]], codes: list[str]) -> None:
    got, decoder = decode(events, name)
    assert got == codes
    assert decoder.counters.unknown_keys == 0


def test_tab_terminator_and_enter_inside_a_code() -> None:
    events = [*tap(K.KEY_A), *tap(K.KEY_ENTER), *tap(K.KEY_B), *tap(K.KEY_TAB)]
    assert decode(events, terminator="tab")[0] == ["a\nb"]


def test_unknown_keys_become_replacement_characters() -> None:
    f13, undefined_in_cp1252, surrogate = 183, "0129", "55296"
    events = [
        *tap(K.KEY_A),
        *tap(f13),
        *alt_code(undefined_in_cp1252),
        *alt_code(surrogate),
        *tap(K.KEY_1, CTRL),
        *ENTER,
    ]
    got, decoder = decode(events)
    assert got == ["a\ufffd\ufffd\ufffd\ufffd"]
    assert decoder.counters.unknown_keys == 4


def test_level_without_a_character_is_unknown() -> None:
    got, decoder = decode([*tap(K.KEY_A, ALTGR), *ENTER], "uk")
    assert got == ["\ufffd"]
    assert decoder.counters.unknown_keys == 1


def test_syn_dropped_loses_the_code_and_resets_modifiers() -> None:
    events = [
        key(SHIFT, 1),
        *tap(K.KEY_A),
        (EV_SYN, SYN_DROPPED, 0),
        key(K.KEY_B, 1),  # still inside the dropped report: ignored
        (EV_SYN, SYN_REPORT, 0),
        # Shift's release was lost with the dropped events.
        *tap(K.KEY_C),
        *ENTER,
    ]
    got, decoder = decode(events)
    assert got == ["c"]
    assert decoder.counters.events_lost == 1


def test_overlong_code_dropped_whole() -> None:
    events = [*(e for _ in range(10) for e in tap(K.KEY_A)), *ENTER, *tap(K.KEY_B), *ENTER]
    got, decoder = decode(events, max_length=8)
    assert got == ["b"]
    assert decoder.counters.overlong == 1


def test_drop_partial() -> None:
    decoder = KeyDecoder(layout("us"), terminator="enter", max_length=64)
    for event in [*tap(K.KEY_A), key(SHIFT, 1), key(K.KEY_LEFTALT, 1), *tap(K.KEY_KP6)]:
        decoder.feed(*event)
    assert decoder.pending
    assert decoder.drop_partial()
    assert not decoder.pending and not decoder.drop_partial()
    assert decoder.counters.partial == 1
    # Modifiers are physical state: Shift is still held, the Alt code was dropped.
    for event in [key(K.KEY_LEFTALT, 0), *tap(K.KEY_B), key(SHIFT, 0), *ENTER]:
        assert decoder.feed(*event) in (None, "B")


def test_decoder_refuses_zero_max_length() -> None:
    with pytest.raises(ValueError, match="max_length"):
        KeyDecoder(layout("us"), terminator="enter", max_length=0)


# --- raw input_event records -----------------------------------------------------------


def test_event_records_split_across_reads() -> None:
    events = [
        InputEvent(1764000000, 123456, EV_KEY, K.KEY_A, 1),
        InputEvent(1764000000, 123457, EV_SYN, SYN_REPORT, 0),
    ]
    data = pack_events(events)
    assert EVENT_SIZE == len(data) // 2 == 24
    parser = EventStreamParser()
    got = [*parser.feed(data[:5]), *parser.feed(data[5:30]), *parser.feed(data[30:])]
    assert got == events
    assert parser.feed(b"") == []


# --- config ----------------------------------------------------------------------------


def config(path: str, **values: Any) -> HidScannerConfig:
    return HidScannerConfig.model_validate(
        {"kind": "barcode_hid", "path": path, "partial_timeout_s": 0.2, **values}
    )


def test_config_defaults() -> None:
    cfg = HidScannerConfig.model_validate(
        {"kind": "barcode_hid", "path": "/dev/input/by-id/usb-Honeywell-event-kbd"}
    )
    assert (cfg.layout, cfg.grab, cfg.terminator, cfg.aim_ids) == ("us", True, "enter", False)
    assert (cfg.gs_substitute, cfg.partial_timeout_s, cfg.max_length) == ("", 1.0, 2048)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"path": "event3"}, "absolute path"),
        ({"layout": "dvorak"}, "'us', 'uk', 'de' or 'fr'"),
        ({"terminator": "space"}, "'enter' or 'tab'"),
        ({"grab": "yes"}, "valid boolean"),
        ({"partial_timeout_s": -1}, "greater than 0"),
        ({"device": "/dev/input/event3"}, "Extra inputs are not permitted"),
    ],
)
def test_config_refuses(values: dict[str, Any], message: str) -> None:
    raw = {"kind": "barcode_hid", "path": "/dev/input/by-id/x", **values}
    with pytest.raises(ValidationError, match=message):
        HidScannerConfig.model_validate(raw)


# --- driver against the simulator ------------------------------------------------------


@dataclass
class Rig:
    sim: SimulatedHidScanner
    driver: HidScanner
    received: asyncio.Queue[ScannedCode]
    run: asyncio.Task[None] | None = None

    async def start_run(self) -> None:
        self.run = asyncio.create_task(self.driver.run())

    async def stop_run(self) -> None:
        task, self.run = self.run, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, DriverError):
                await task

    async def next_code(self, timeout_s: float = 2.0) -> ScannedCode:
        async with asyncio.timeout(timeout_s):
            return await self.received.get()


async def eventually(check: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Wait until ``check()`` holds (polling; the driver has no hook for each counter)."""
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 (a counter, not an event, is awaited)
            await asyncio.sleep(0.01)


@pytest.fixture
def path() -> Iterator[str]:
    # A Unix socket path must be short (108 bytes), which pytest's tmp_path may not be.
    folder = tempfile.mkdtemp(prefix="lg-hid-", dir="/tmp")
    yield f"{folder}/by-id/usb-Honeywell_1902-event-kbd"
    shutil.rmtree(folder)


@contextlib.asynccontextmanager
async def rig(
    cfg: HidScannerConfig, faults: Faults | None = None, **sim_options: Any
) -> AsyncIterator[Rig]:
    sim = SimulatedHidScanner(NAME, cfg, faults, **sim_options)
    await sim.start()
    received: asyncio.Queue[ScannedCode] = asyncio.Queue()
    driver = HidScanner(NAME, cfg, received.put_nowait)
    setup = Rig(sim, driver, received)
    try:
        await driver.connect()
        await sim.wait_connected()
        await setup.start_run()
        yield setup
    finally:
        await setup.stop_run()
        await driver.close()
        await sim.stop()


async def test_driver_and_simulator_fit_the_protocols() -> None:
    cfg = config("/dev/input/by-id/x")
    driver: Driver = HidScanner(NAME, cfg, lambda code: None)  # mypy checks the protocol
    # The protocol's promise: close is safe before any connect, and twice.
    await driver.close()
    await driver.close()
    assert driver.kind == cfg.kind == "barcode_hid"
    assert driver.name == NAME
    sim: SimulatedDevice = SimulatedHidScanner(NAME, cfg)
    assert sim.name == NAME


HAPPY_SCANS = [
    (GS1_128 + GS + "21SN0042", "]C1"),
    ("0104006381333931" + GS + "10LOT7" + GS + "21X9", "]d2"),
    ("4006381333931", "]E0"),
    ("OP-1001", "]A0"),
    (ASCII, "]Q1"),
]


@pytest.mark.parametrize("name", LAYOUT_NAMES)
@pytest.mark.parametrize("gs_keys", ["ctrl", "alt_numpad"])
async def test_happy_path_every_layout(path: str, name: LayoutName, gs_keys: str) -> None:
    cfg = config(path, layout=name, aim_ids=True)
    async with rig(cfg, gs_keys=gs_keys, keypad_digits=gs_keys == "alt_numpad") as r:
        for text, symbology in HAPPY_SCANS:
            assert await r.sim.scan(text, symbology)
        got = [await r.next_code() for _ in HAPPY_SCANS]
        diagnostics = r.driver.diagnostics()
    assert got == [ScannedCode(text, symbology) for text, symbology in HAPPY_SCANS]
    assert diagnostics["codes"] == len(HAPPY_SCANS)
    assert diagnostics["unknown_keys"] == 0
    assert diagnostics["source"] == "socket" and diagnostics["reading"]


async def test_text_beyond_the_layout_typed_as_alt_codes(path: str) -> None:
    async with rig(config(path, layout="fr")) as r:
        await r.sim.scan("张伟 Zoë ß €")
        assert await r.next_code() == ScannedCode("张伟 Zoë ß €")


async def test_gs_substitute_and_tab_terminator(path: str) -> None:
    cfg = config(path, layout="de", aim_ids=True, gs_substitute="<GS>", terminator="tab")
    async with rig(cfg) as r:
        await r.sim.scan(GS1_128 + GS + "21X", "]C1")
        await r.sim.scan("Größe")
        assert await r.next_code() == ScannedCode(GS1_128 + GS + "21X", "]C1")
        assert await r.next_code() == ScannedCode("Größe", "]C0")


async def test_corpus_replayed_through_the_driver(path: str) -> None:
    entries = [entry for entry in ENTRIES if entry.layout == "fr"]
    async with rig(config(path, layout="fr", aim_ids=True)) as r:
        for entry in entries:
            await r.sim.replay(InputEvent(*e) for e in entry.events)
        expected = [normalise_scan(c, aim_ids=True) for entry in entries for c in entry.codes]
        got = [await r.next_code() for _ in expected]
    assert got == expected


async def test_partial_code_dropped_after_timeout(path: str) -> None:
    async with rig(config(path, partial_timeout_s=0.1)) as r:
        await r.sim.scan_partial("LG-000999")
        await eventually(lambda: r.driver.diagnostics()["partial"] == 1)
        await r.sim.scan("LG-000123")
        assert await r.next_code() == ScannedCode("LG-000123")
        assert r.received.empty()


async def test_garbled_keys_counted_not_crashing(path: str) -> None:
    faults = Faults(garble=1.0, rng=random.Random(3))
    async with rig(config(path, layout="uk"), faults) as r:
        assert await r.sim.scan("LG-000123")
        faults.set(garble=0)
        await r.sim.scan("CLEAN-1")
        garbled = await r.next_code()
        assert (await r.next_code()).text == "CLEAN-1"
    assert "\ufffd" in garbled.text and garbled.text.replace("\ufffd", "") != "LG-000123"
    assert len(garbled.text) == len("LG-000123")
    assert r.driver.diagnostics()["unknown_keys"] == 1


async def test_dropped_and_delayed_scans(path: str) -> None:
    faults = Faults(drop=1.0)
    async with rig(config(path), faults) as r:
        assert not await r.sim.scan("LOST")
        faults.set(drop=0, delay_s=0.05)
        assert await r.sim.scan("LATE")
        assert await r.next_code() == ScannedCode("LATE")


async def test_unplug_fails_run_and_replug_reconnects(path: str) -> None:
    async with rig(config(path)) as r:
        await r.sim.scan("BEFORE")
        assert (await r.next_code()).text == "BEFORE"
        assert r.run is not None
        await r.sim.stop()
        assert not await r.sim.scan("WHILE-UNPLUGGED")  # lost, as with a real scanner
        assert r.sim.status()["lost"] == 1
        with pytest.raises(DeviceUnavailable, match="end of the event stream"):
            async with asyncio.timeout(2):
                await r.run
        r.run = None
        diagnostics = r.driver.diagnostics()
        # The dead fd is no longer watched, so it cannot spin the loop.
        assert not diagnostics["reading"] and not diagnostics["connected"]
        await r.driver.close()
        with pytest.raises(DeviceUnavailable, match="absent"):
            await r.driver.connect()
        await r.sim.start()
        await r.driver.connect()
        await r.sim.wait_connected()
        await r.start_run()
        await r.sim.scan("AFTER")
        assert (await r.next_code()).text == "AFTER"
        assert r.driver.diagnostics()["connects"] == 2


async def test_disconnect_blip_then_reconnect(path: str) -> None:
    async with rig(config(path)) as r:
        assert r.run is not None
        await r.sim.disconnect()
        with pytest.raises(DeviceUnavailable):
            async with asyncio.timeout(2):
                await r.run
        r.run = None
        await r.driver.connect()
        await r.sim.wait_connected()
        await r.start_run()
        await r.sim.scan("AGAIN")
        assert (await r.next_code()).text == "AGAIN"


async def test_connect_while_absent(path: str) -> None:
    driver = HidScanner(NAME, config(path), lambda code: None)
    with pytest.raises(DeviceUnavailable, match="absent"):
        await driver.connect()
    with pytest.raises(DeviceUnavailable, match="not connected"):
        await driver.run()
    await driver.close()


def make_stale_socket(where: str) -> None:
    Path(where).parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(where)  # bound, never listening: what a killed simulator leaves


async def test_socket_nobody_listens_on(path: str) -> None:
    make_stale_socket(path)
    driver = HidScanner(NAME, config(path), lambda code: None)
    with pytest.raises(DeviceUnavailable):
        await driver.connect()
    await driver.close()


def make_file(where: str, kind: str) -> None:
    Path(where).parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(where)
    else:
        Path(where).write_text("not events")


@pytest.mark.parametrize("kind", ["regular file", "fifo"])
async def test_path_of_the_wrong_type_is_rejected(path: str, kind: str) -> None:
    make_file(path, kind)
    driver = HidScanner(NAME, config(path), lambda code: None)
    with pytest.raises(DeviceRejected, match="neither an input device nor a Unix socket"):
        await driver.connect()
    await driver.close()


async def test_character_device_that_is_not_an_input_device_is_rejected() -> None:
    driver = HidScanner(NAME, config("/dev/null"), lambda code: None)
    with pytest.raises(DeviceRejected, match="not an input device"):
        await driver.connect()
    await driver.close()
    assert driver.diagnostics()["grabbed"] is False


async def test_cancelled_run_propagates_and_close_is_idempotent(path: str) -> None:
    cfg = config(path)
    sim = SimulatedHidScanner(NAME, cfg)
    driver = HidScanner(NAME, cfg, lambda code: None)
    await driver.close()  # before connect
    await sim.start()
    try:
        await driver.connect()
        task = asyncio.create_task(driver.run())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await driver.close()
        await driver.close()
        assert not driver.diagnostics()["reading"]
    finally:
        await sim.stop()
        await sim.stop()
