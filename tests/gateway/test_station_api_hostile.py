"""The station API against hostile clients, over real HTTP: bodies too big (declared or
chunked), clients that trickle a request or say nothing (slowloris), invisible and control
characters in what a person types or a scanner sends, lone surrogates, loose JSON types,
and requests the app refuses by itself.

What each must get is the station API's contract (README, "The station API"): a body over
16 KiB is refused with 413 ``BODY_TOO_LARGE`` before it is read (by its Content-Length) or
once the count passes the limit (chunked); a request's head must be complete within 5 s of
the connection opening (or of its first byte on a kept-alive connection), its body within
5 s of the head, else the connection is closed (a late body answered 408 ``TIMEOUT``); a
reason (pause, fail, reprint) loses its control and format characters, lone surrogates and
line separators, its spaces collapse, and with no visible character left it is refused
``REASON_REQUIRED``; a badge or scan with such a character is a misread (``BAD_CODE``; a GS
in a GS1 code is FNC1 and fine); JSON types are strict (true is not 1, "yes" is not true,
5 is 5.0 g). Every refusal is ``{ok: false, code, message, next}`` (the gate's, who may
ask, also in Chinese: ``message_zh``, ``next_zh``), nothing refused is recorded, no event
ever carries a control character or a lone surrogate, and only actions the desk carried out
or refused count in ``/api/health``'s ``action_ms``.

The clients authenticate as real ones do (tests/keys.py): each station's paired terminal,
a token per role; only a test of an anonymous caller goes without.

Two real gateways: one in the test's loop (uvicorn on a free loopback port, its store a
SQLite file, the in-memory hub bringing orders) where the desk is exercised; one as its own
process (``linegate run``) where its memory and its answers to other stations are measured
while clients misbehave.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st

from gateway.app.root import Gateway
from gateway.config.load import load_line_config
from simulators.keys import LineKeys
from tests.clocks import line_clock_offset_s
from tests.conftest import free_port
from tests.gateway.test_station_api import LOT, Line, _config, served_line
from tests.keys import issue_keys_in

ROOT = Path(__file__).resolve().parents[2]
SHIP_BY = "2030-01-01T10:00:00+08:00"
LIMIT = 16 * 1024  # README: the largest body the station API reads
DEADLINE_S = 5.0  # README: for a request's head, then for its body
# The server's deadline starts a moment after the client's clock, and a loaded machine
# closes a little late: how far off the deadline a close may be and still be the deadline's.
EARLY_S, LATE_S = 0.3, 1.5
# Control, format, surrogate, line and paragraph separator: never in a stored text.
INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
REFUSAL_KEYS = {"ok", "code", "message", "next"}
# The gate's refusals (who may ask) say it in Chinese too.
GATE_REFUSAL_KEYS = REFUSAL_KEYS | {"message_zh", "next_zh"}


# --- what an answer must be ---------------------------------------------------------------


def refusal_of(
    status: int,
    body: bytes | str,
    want_status: int,
    want_code: str,
    what: object = "",
    *,
    gate: bool = False,
) -> None:
    """The answer (to ``what``) is the API's refusal with this status and code, in words,
    and says back no control character; ``gate``: the gate's refusal, in both languages."""
    assert status == want_status, f"{what}: {status} (wanted {want_status}): {body!r}"
    doc = json.loads(body)
    # The desk's refusals come in both languages too (gateway/i18n), like the gate's.
    keys = GATE_REFUSAL_KEYS if gate or "message_zh" in doc else REFUSAL_KEYS
    assert set(doc) == keys, f"{what}: {doc}"
    assert doc["ok"] is False and doc["code"] == want_code, f"{what}: {doc}"
    for key in sorted(keys - {"ok", "code"}):
        assert isinstance(doc[key], str) and doc[key].strip(), f"{what}: {doc}"
        assert not invisible_in(doc[key]), f"{what}: {doc}"


def invisible_in(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in INVISIBLE]


def strings_of(doc: Any) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for key, value in doc.items():
            yield str(key)
            yield from strings_of(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from strings_of(item)


def kept_reason(sent: str) -> str:
    """A reason as the README says it is kept: control and format characters, lone
    surrogates and line/paragraph separators out (those that are whitespace count as a
    space), spaces collapsed and trimmed; "" when no letter, digit, punctuation or symbol
    is left."""
    spaced = "".join(
        " " if c.isspace() else c
        for c in sent
        if c.isspace() or unicodedata.category(c) not in INVISIBLE
    )
    kept = " ".join(spaced.split())
    return kept if any(unicodedata.category(c)[0] in "LNPS" for c in kept) else ""


# --- a gateway in the test's loop -----------------------------------------------------------


@dataclass
class Api:
    ln: Line
    gw: Gateway
    port: int

    @property
    def http(self) -> httpx.AsyncClient:
        """The line's client: each request with the credential of who may make it."""
        return self.ln.api

    @property
    def keys(self) -> LineKeys:
        return self.ln.keys

    def bearer(self, station: str = "laser-1") -> str:
        """The ``Authorization`` header line of ``station``'s terminal, for a raw request."""
        return f"Authorization: Bearer {self.keys.terminal(station)}"

    async def send(self, path: str, body: bytes, ctype: str = "application/json") -> httpx.Response:
        return await self.http.post(path, content=body, headers={"content-type": ctype})

    def events(self) -> list[dict[str, Any]]:
        """Every event the gateway committed, once: those the hub has, those still waiting."""
        pending = [json.loads(r.payload) for r in self.gw.outbox.peek(0, 1_000_000)]
        by_seq = {e["seq"]: e for e in [*self.ln.hub.events, *pending]}
        return [by_seq[seq] for seq in sorted(by_seq)]

    def assert_nothing_recorded_since(self, seq: int) -> None:
        """No event after ``seq`` but the audit trail's record of a refused sign-in (a badge
        refused at login is kept in the trail on purpose, gateway/access/audit.py): nothing
        of the line's work was recorded."""
        for event in self.events():
            if event["seq"] > seq:
                assert event["type"] == "audit.recorded", event
                assert event["data"]["action"] == "sign_in", event
                assert event["data"]["outcome"] == "denied", event

    def assert_events_clean(self) -> None:
        for event in self.events():
            for text in strings_of(event):
                assert not invisible_in(text), f"{event['type']}: {text!r}"

    def count(self, sql: str) -> int:
        return self.gw.store.count(sql)

    async def running(self, order_id: str = "SO-1") -> dict[str, Any]:
        """An engraving running at laser-1; returns its task as the screen shows it."""
        await self.ln.order(order_id, SHIP_BY)
        task = await self.ln.take("laser-1")
        await self.ln.scan("laser-1", task["serial"])
        await self.ln.scan("laser-1", LOT)
        await self.ln.post("laser-1", "start")
        return task


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with served_line(tmp_path) as (ln, gw):
        assert gw.http_port is not None
        yield Api(ln, gw, gw.http_port)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer off a raw connection: status, headers, body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def post_head(path: str, framing: str, credential: str | None = None) -> bytes:
    """A POST's head; ``credential`` an ``Authorization`` header line, as a terminal sends."""
    auth = "" if credential is None else f"{credential}\r\n"
    return (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"{auth}{framing}\r\n\r\n"
    ).encode()


# --- refused before the desk, in the API's shape --------------------------------------------


# (method, path, body, content type, status, code)
APP_REFUSALS: list[tuple[str, str, bytes | None, str | None, int, str]] = [
    ("GET", "/nope", None, None, 404, "NOT_FOUND"),
    ("POST", "/api/nope", b"{}", "application/json", 404, "NOT_FOUND"),
    ("GET", "/api/plan/orders/SO-404", None, None, 404, "UNKNOWN_ORDER"),
    ("POST", "/api/plan/replan", None, None, 409, "PLANNER_OFF"),
    ("DELETE", "/api/health", None, None, 405, "METHOD_NOT_ALLOWED"),
    ("GET", "/api/stations/laser-1/login", None, None, 405, "METHOD_NOT_ALLOWED"),
    ("POST", "/api/stations/laser-1/login", b'{"badge": ', "application/json", 422,
     "BAD_REQUEST"),
    ("POST", "/api/stations/laser-1/login", b'{"badge": "OP-1006"}', "text/plain", 422,
     "BAD_REQUEST"),
    ("POST", "/api/stations/laser-1/login", b'["OP-1006"]', "application/json", 422,
     "BAD_REQUEST"),
    ("POST", "/api/stations/laser-1/login", b'{"badge": "\xff\xfe"}', "application/json",
     400, "BAD_REQUEST"),  # not UTF-8
    ("POST", "/api/stations/laser-1/login", b"[" * 10_000, "application/json", 400,
     "BAD_REQUEST"),  # deeper than a parser goes
    ("POST", "/api/stations/laser-1/login", b'{"badge": "OP-1006", "x": 1}',
     "application/json", 422, "BAD_REQUEST"),
    ("POST", "/api/stations/laser-1/login", b"{}", "application/json", 422, "BAD_REQUEST"),
]  # fmt: skip


# An unknown station, by who asks: (method, path, body, who, status, code); who is a role's
# token, a station's terminal or nobody (None). No terminal is paired with a station the
# line does not have, so only who may act at any station (a line lead) or read any (the
# board) gets past the gate to be told it is unknown; a terminal of another station, or
# an anonymous caller, is refused by the gate first.
UNKNOWN_STATION: list[tuple[str, str, bytes | None, str | None, int, str]] = [
    ("GET", "/api/stations/nope", None, "viewer", 404, "UNKNOWN_STATION"),
    ("POST", "/api/stations/nope/pause", b'{"reason": "jam"}', "line_lead", 404,
     "UNKNOWN_STATION"),
    ("POST", "/api/stations/nope/reprint", b'{"reason": "lost"}', "line_lead", 404,
     "UNKNOWN_STATION"),
    ("GET", "/api/stations/nope", None, "laser-1", 403, "WRONG_STATION"),
    ("POST", "/api/stations/nope/next", None, "laser-1", 403, "WRONG_STATION"),
    ("POST", "/api/stations/nope/next", None, "line_lead", 403, "FORBIDDEN_ROLE"),
    ("POST", "/api/stations/nope/next", None, None, 401, "NOT_SIGNED_IN"),
]  # fmt: skip


async def test_what_the_app_refuses_by_itself_answers_in_the_apis_shape(api: Api) -> None:
    for method, path, body, ctype, status, code in APP_REFUSALS:
        headers = {"content-type": ctype} if ctype else {}
        r = await api.http.request(method, path, content=body, headers=headers)
        refusal_of(r.status_code, r.content, status, code, f"{method} {path} {body!r:.40}")
        if status == 405:
            assert r.headers["allow"]  # what the path does take
    for method, path, body, who, status, code in UNKNOWN_STATION:
        headers = {"content-type": "application/json"}
        if who is not None:
            credential = api.keys.tokens.get(who) or api.keys.terminal(who)
            headers["authorization"] = f"Bearer {credential}"
        async with httpx.AsyncClient(base_url=api.http.base_url, timeout=10) as anyone:
            r = await anyone.request(method, path, content=body, headers=headers)
        what = f"{who}: {method} {path}"
        refusal_of(r.status_code, r.content, status, code, what, gate=status in (401, 403))
    assert api.count("SELECT count(*) FROM sessions WHERE operator IS NOT NULL") == 0


async def test_a_request_that_is_not_http_is_answered_in_the_apis_shape(api: Api) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(b"HELLO GATEWAY\r\n\r\n")
    async with asyncio.timeout(5):
        status, headers, body = await read_answer(reader)
        assert await reader.read() == b""  # and the connection is closed
    writer.close()
    refusal_of(status, body, 400, "BAD_REQUEST")
    assert headers["content-type"] == "application/json"


# --- bodies over the limit --------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_by_its_length_before_it_is_read(api: Api) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    # The head alone: an answer that comes now was given without the body.
    head = post_head("/api/stations/laser-1/login", f"Content-Length: {10 * 2**20}", api.bearer())
    writer.write(head)
    async with asyncio.timeout(5):
        status, headers, body = await read_answer(reader)
        assert await reader.read() == b""  # closed: the 10 MiB are never read
    writer.close()
    refusal_of(status, body, 413, "BODY_TOO_LARGE")
    assert headers["connection"] == "close"


def _chunked_until_answered(port: int, total: int, credential: str) -> tuple[int, bytes]:
    """Send a chunked body of ``total`` bytes, 4 KiB a chunk, until an answer is there;
    returns the bytes sent and the answer. Blocking (in a thread): what the gateway wrote
    before closing stays readable here even after a write of ours failed on the close."""
    chunk = b"x" * 4096
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = post_head("/api/stations/laser-1/login", "Transfer-Encoding: chunked", credential)
        sock.sendall(head)
        try:
            while sent < total and not select.select([sock], [], [], 0.001)[0]:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:
            pass  # closed after the answer: the rest is not read
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
    return sent, answer


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(api: Api) -> None:
    total = 10 * 2**20
    sent, answer = await asyncio.to_thread(_chunked_until_answered, api.port, total, api.bearer())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:200]
    refusal_of(413, body, 413, "BODY_TOO_LARGE")
    assert sent < total, "the whole body was read before the answer"


async def _in_two(body: bytes) -> AsyncIterator[bytes]:
    yield body[: len(body) // 2]
    yield body[len(body) // 2 :]


@pytest.mark.parametrize("chunked", [False, True])
async def test_the_limit_is_16_kib_to_the_byte(api: Api, chunked: bool) -> None:
    login = b'{"badge": "OP-1006"}'
    [name] = [o.name for o in _config().operators if o.badge == "OP-1006"]
    for size, status in ((LIMIT, 200), (LIMIT + 1, 413)):
        body = login + b" " * (size - len(login))  # JSON allows the padding
        if chunked:
            r = await api.http.post(
                "/api/stations/laser-1/login",
                content=_in_two(body),  # no Content-Length: chunked
                headers={"content-type": "application/json"},
            )
            assert "content-length" not in r.request.headers
        else:
            r = await api.send("/api/stations/laser-1/login", body)
        if status == 200:
            assert r.status_code == 200, r.text
            assert r.json()["message"] == f"Welcome, {name}."
        else:
            refusal_of(r.status_code, r.content, 413, "BODY_TOO_LARGE")


# --- reasons: nothing invisible kept, nothing invisible accepted --------------------------------

BLANK_REASONS = ["\u200b", "\u0000", "   ", "\u200b\u200d\ufeff\u2060", "\t\n\r", "\u2028\u2029",
                 "\u3000\u00a0", "\u0301", "\x1d\x1e\x04", "\u202e"]  # fmt: skip


async def test_a_reason_with_nothing_visible_is_refused_and_nothing_recorded(api: Api) -> None:
    await api.running()
    seq = api.gw.outbox.last_seq
    jobs = api.count("SELECT count(*) FROM print_jobs")
    for reason in BLANK_REASONS:
        for action, body in (
            ("pause", {"reason": reason}),
            ("fail", {"reason": reason, "disposition": "scrap"}),
            ("reprint", {"reason": reason}),
        ):
            r = await api.send(f"/api/stations/laser-1/{action}", json.dumps(body).encode())
            refusal_of(r.status_code, r.content, 409, "REASON_REQUIRED", f"{action} {reason!r}")
    assert api.gw.outbox.last_seq == seq  # no event
    assert api.count("SELECT count(*) FROM defects") == 0
    assert api.count("SELECT count(*) FROM print_jobs") == jobs
    assert (await api.ln.view("laser-1"))["task"]["status"] == "running"


async def test_a_reason_is_kept_without_its_invisible_characters(api: Api) -> None:
    task = await api.running()
    reply = await api.ln.post("laser-1", "pause", {"reason": " fixture\u0000 \u200bjammed\n\t"})
    assert reply["message"] == "Paused: fixture jammed."
    [paused] = await api.ln.events("task.paused")
    assert paused["data"]["reason"] == "fixture jammed"
    await api.ln.post("laser-1", "resume")
    reply = await api.ln.post("laser-1", "reprint", {"reason": "\ufeff标签\u3000\u3000破损\u2028"})
    [label] = [e for e in await api.ln.events("label.printed", 2) if e["data"]["reprint_reason"]]
    assert label["data"]["reprint_reason"] == "标签 破损"
    await api.ln.post("laser-1", "fail", {"reason": "burn\u00admark\u202e", "disposition": "scrap"})
    [defect] = await api.ln.events("defect.recorded")
    assert defect["data"]["reason"] == "burnmark"
    rows = api.gw.store.conn.execute("SELECT serial, reason FROM defects").fetchall()
    assert [tuple(r) for r in rows] == [(task["serial"], "burnmark")]
    api.assert_events_clean()


# --- codes: a control character is a misread ------------------------------------------------


async def test_a_badge_or_scan_with_a_control_character_is_a_misread(api: Api) -> None:
    await api.ln.order("SO-1", SHIP_BY)
    for badge in ("OP-1006\u0000", "OP-\u200b1006", "OP-1006\u2028"):
        r = await api.send("/api/stations/laser-1/login", json.dumps({"badge": badge}).encode())
        refusal_of(r.status_code, r.content, 409, "BAD_CODE")
    assert (await api.ln.view("laser-1"))["operator"] is None
    task = await api.ln.take("laser-1")
    await api.ln.scan("laser-1", task["serial"])
    seq = api.gw.outbox.last_seq
    for code in (LOT + "\u0000", "\u200b" + LOT, "PEN-BRASS\x1eL2611A", f"10{LOT}\x1d\x04"):
        r = await api.send("/api/stations/laser-1/scan", json.dumps({"code": code}).encode())
        refusal_of(r.status_code, r.content, 409, "BAD_CODE")
    assert api.gw.outbox.last_seq == seq
    assert (await api.ln.view("laser-1"))["task"]["materials"][0]["scanned"] is None
    # A GS between a GS1 code's fields is FNC1: the lot label (lot in AI 10, material in
    # AI 240) is read, as a scanner sends it, with and without the padding it adds.
    reply = await api.ln.post(
        "laser-1", "scan", {"code": f"10{LOT}\x1d240PEN-BRASS\r\n", "symbology": "]C1"}
    )
    assert reply["message"] == f"{LOT} accepted for PEN-BRASS (1)."


async def test_other_fields_never_say_back_a_control_character(api: Api) -> None:
    await api.running()
    for action, body, code in (
        ("fail", {"reason": "smear", "disposition": "rework\u0000"}, "BAD_DISPOSITION"),
        ("checklist", {"item": "Text\u0000", "passed": True}, "UNKNOWN_ITEM"),
        ("reprint", {"reason": "lost", "label_id": "TRV-\u0000"}, "UNKNOWN_LABEL"),
    ):
        r = await api.send(f"/api/stations/laser-1/{action}", json.dumps(body).encode())
        refusal_of(r.status_code, r.content, 409, code)
    assert api.count("SELECT count(*) FROM defects") == 0


# --- strict JSON types ---------------------------------------------------------------------------


LOOSE_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("checklist", {"item": True, "passed": True}),  # not item 1
    ("checklist", {"item": 0, "passed": "yes"}),
    ("checklist", {"item": 0, "passed": 1}),
    ("checklist", {"item": 0.0, "passed": True}),
    ("checklist", {"item": 0, "passed": None}),
    ("weight", {"grams": True}),  # not 1 g
    ("weight", {"grams": "150"}),
    ("weight", {"grams": [150]}),
    ("login", {"badge": 1006}),
    ("scan", {"code": 123456}),
    ("pause", {"reason": ["jammed"]}),
    ("fail", {"reason": "smear", "disposition": 1}),
    ("reprint", {"reason": "lost", "label_id": 7}),
]


async def test_loose_json_types_are_refused(api: Api) -> None:
    await api.running()
    seq = api.gw.outbox.last_seq
    for action, body in LOOSE_TYPES:
        r = await api.send(f"/api/stations/laser-1/{action}", json.dumps(body).encode())
        refusal_of(r.status_code, r.content, 422, "BAD_REQUEST", f"{action} {body}")
    assert api.gw.outbox.last_seq == seq
    assert (await api.ln.view("laser-1"))["task"]["status"] == "running"


async def test_a_whole_number_of_grams_is_still_a_weight(api: Api) -> None:
    """A PEN-ENG through engraving, inspection and boxing to packing, where the parcel is
    weighed: 148 g (the catalog's unit weight, ± 8 g) sent as the integer 148."""
    ln = api.ln
    await ln.order("SO-1", SHIP_BY)
    unit = await ln.take("laser-1")
    serial = unit["serial"]
    for station, materials in (("laser-1", [LOT]), ("qc-1", []), ("kit-1", ["GIFTBOX-S"])):
        if station != "laser-1":
            await ln.take(station)
        await ln.scan(station, serial)
        for code in materials:
            await ln.scan(station, code)
        await ln.post(station, "start")
        for i, _ in enumerate((await ln.view(station))["task"]["checklist"]):
            await ln.post(station, "checklist", {"item": i, "passed": True})
        await ln.post(station, "complete")
    await ln.take("pack-1")
    await ln.scan("pack-1", serial)
    await ln.scan("pack-1", "CARTON-S")
    r = await api.send("/api/stations/pack-1/weight", b'{"grams": true}')
    refusal_of(r.status_code, r.content, 422, "BAD_REQUEST")
    assert (await ln.view("pack-1"))["task"]["weight_g"] is None
    reply = await ln.post("pack-1", "weight", {"grams": 148})
    assert reply["ok"] is True and reply["label_id"]
    assert (await ln.view("pack-1"))["task"]["weight_g"] == 148.0


# --- action_ms --------------------------------------------------------------------------------


async def test_only_what_the_desk_did_or_refused_counts_in_action_ms(api: Api) -> None:
    ln = api.ln
    await ln.post("laser-1", "login", {"badge": "OP-1006"})  # carried out
    r = await api.http.post("/api/stations/laser-1/resume")  # refused by the desk
    refusal_of(r.status_code, r.content, 409, "NO_TASK")
    for path, body in (  # refused before the desk
        ("/api/stations/laser-1/login", b"x" * (LIMIT + 1)),
        ("/api/stations/laser-1/login", b'{"badge": '),
        ("/api/stations/laser-1/login", b'{"badge": 1006}'),
        # No terminal is paired with an unknown station: refused by the gate (401), which
        # counts no more than the other refusals before the desk.
        ("/api/stations/nope/login", b'{"badge": "OP-1006"}'),
        # Nobody signed in at qc-1: its terminal is refused by the gate (403 NO_OPERATOR).
        ("/api/stations/qc-1/next", b""),
        ("/api/nope", b"{}"),
    ):
        r = await api.send(path, body)
        assert r.status_code in (401, 403, 404, 413, 422), r.text
    health = (await api.http.get("/api/health")).json()
    assert health["action_ms"]["n"] == 2


# --- hypothesis: any text, any type, in any field ---------------------------------------------

# What a person or a tablet may put in a text: visible characters of every kind, spaces of
# every kind, control and format characters, lone surrogates.
_visible = st.characters(categories=["L", "N", "P", "S"])
_invisible = st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Zs", "Mn"])
_texts = st.one_of(
    st.text(_invisible, min_size=1, max_size=12),
    st.text(st.one_of(_visible, _invisible), min_size=1, max_size=40),
    st.text(st.one_of(_visible, _invisible), min_size=190, max_size=260),  # around max_length
    st.integers(LIMIT, 3 * LIMIT).map(lambda n: "x" * n),  # over the body limit
)


def _encode(body: dict[str, Any], ascii_only: bool) -> bytes:
    # Escaped (\ud800 …) or raw UTF-8; a lone surrogate in raw form is not UTF-8 at all.
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _received(payload: bytes, field: str) -> str:
    """The field as the server decodes it (RFC 8259 and Python's json: \\ud83d\\ude00 is one
    character, a lone \\ud800 stays a lone surrogate)."""
    value: str = json.loads(payload)[field]
    return value


_hyp = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_hyp
@given(
    action=st.sampled_from(["pause", "fail", "reprint"]),
    reason=_texts,
    ascii_only=st.booleans(),
)
@example(action="pause", reason="\ud800", ascii_only=True)
@example(action="fail", reason="\u0000", ascii_only=False)
@example(action="reprint", reason="   ", ascii_only=True)
@example(action="pause", reason="x" * (LIMIT * 2), ascii_only=True)
async def test_any_reason_is_refused_clearly_or_kept_visible(
    api: Api, action: str, reason: str, ascii_only: bool
) -> None:
    if (await api.ln.view("laser-1"))["task"] is None:
        await api.running(f"SO-{api.gw.outbox.last_seq}")
    body = {"reason": reason} if action != "fail" else {"reason": reason, "disposition": "rework"}
    payload = _encode(body, ascii_only)
    seq = api.gw.outbox.last_seq
    r = await api.send(f"/api/stations/laser-1/{action}", payload)
    tally(f"{action}: {r.status_code}")
    if len(payload) > LIMIT:
        refusal_of(r.status_code, r.content, 413, "BODY_TOO_LARGE")
    else:
        sent = _received(payload, "reason")
        if not 1 <= len(sent) <= 200 or any(unicodedata.category(c) == "Cs" for c in sent):
            refusal_of(r.status_code, r.content, 422, "BAD_REQUEST")
        elif not kept_reason(sent):
            refusal_of(r.status_code, r.content, 409, "REASON_REQUIRED")
        else:
            assert r.status_code == 200, r.text
            await _check_kept_and_go_on(api, action, kept_reason(sent), seq)
    if r.status_code != 200:
        assert api.gw.outbox.last_seq == seq  # nothing recorded
    api.assert_events_clean()


async def _check_kept_and_go_on(api: Api, action: str, kept: str, seq: int) -> None:
    """The reason went into the event as the README says it is kept; the engraving is put
    back to running for the next example."""
    new = [e for e in api.events() if e["seq"] > seq]
    if action == "pause":
        [event] = [e for e in new if e["type"] == "task.paused"]
        assert event["data"]["reason"] == kept
        await api.ln.post("laser-1", "resume")
    elif action == "reprint":
        [event] = [e for e in new if e["type"] == "label.printed"]
        assert event["data"]["reprint_reason"] == kept
    else:
        [event] = [e for e in new if e["type"] == "defect.recorded"]
        assert event["data"]["reason"] == kept
        await api.ln.scan("laser-1", LOT)  # rework: the same unit again, from the start
        await api.ln.post("laser-1", "start")


_code_fields = st.sampled_from(
    [
        ("login", "badge", {}),
        ("scan", "code", {}),
        ("reprint", "label_id", {"reason": "damaged"}),
        ("fail", "disposition", {"reason": "smear"}),
        ("checklist", "item", {"passed": True}),
    ]
)


@_hyp
@given(field=_code_fields, value=_texts, ascii_only=st.booleans())
@example(field=("login", "badge", {}), value="OP-1006\u0000", ascii_only=True)
@example(field=("scan", "code", {}), value=f"\ud800{LOT}", ascii_only=False)
async def test_any_code_is_refused_clearly(
    api: Api, field: tuple[str, str, dict[str, Any]], value: str, ascii_only: bool
) -> None:
    action, name, rest = field
    if (await api.ln.view("laser-1"))["task"] is None:
        await api.running(f"SO-{api.gw.outbox.last_seq}")
    payload = _encode({name: value, **rest}, ascii_only)
    seq = api.gw.outbox.last_seq
    r = await api.send(f"/api/stations/laser-1/{action}", payload)
    tally(f"{action}: {r.status_code} {r.json().get('code')}")
    # Text drawn at random is no badge, code, label, disposition or checklist item of this
    # line: whatever it is, a refusal, of the request (4xx) or by the desk (409).
    assert 400 <= r.status_code < 500, r.text
    doc = r.json()
    refusal_of(r.status_code, r.content, r.status_code, doc["code"])
    if len(payload) <= LIMIT and r.status_code == 409 and action in ("login", "scan"):
        sent = _received(payload, name)
        # A scan loses the padding a scanner adds, and a GS in it is FNC1.
        judged = sent if action == "login" else sent.strip(" \t\r\n").replace("\x1d", "")
        if invisible_in(judged):
            assert doc["code"] == "BAD_CODE", doc
    # A refused login is a refused sign-in: the audit trail keeps it (an event), nothing else.
    api.assert_nothing_recorded_since(seq)
    api.assert_events_clean()


_not_a_bool = st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=5), st.lists(st.booleans(), max_size=2)
)
_not_a_number = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
_not_an_item = st.one_of(st.none(), st.booleans(), st.floats(), st.lists(st.integers(), max_size=2))


@_hyp
@given(
    case=st.one_of(
        st.builds(lambda v: ("weight", {"grams": v}, False), _not_a_number),
        st.builds(lambda v: ("checklist", {"item": 0, "passed": v}, False), _not_a_bool),
        st.builds(lambda v: ("checklist", {"item": v, "passed": True}, False), _not_an_item),
        st.builds(
            lambda v: ("weight", {"grams": v}, True),
            st.integers(0, 1_000_000) | st.floats(0, 1_000_000),
        ),
        st.builds(
            lambda i, p: ("checklist", {"item": i, "passed": p}, True),
            st.integers()
            | st.text(min_size=1, max_size=20, alphabet=st.characters(categories=["L", "N"])),
            st.booleans(),
        ),
    )
)
async def test_json_types_are_taken_strictly(
    api: Api, case: tuple[str, dict[str, Any], bool]
) -> None:
    action, body, well_typed = case
    if (await api.ln.view("laser-1"))["task"] is None:
        await api.running(f"SO-{api.gw.outbox.last_seq}")
    seq = api.gw.outbox.last_seq
    r = await api.send(f"/api/stations/laser-1/{action}", json.dumps(body).encode())
    if well_typed:
        # Engraving weighs nothing and has no checklist: the desk refuses what it got.
        want = "NO_WEIGHT_CHECK" if action == "weight" else "UNKNOWN_ITEM"
        refusal_of(r.status_code, r.content, 409, want)
    else:
        refusal_of(r.status_code, r.content, 422, "BAD_REQUEST")
    assert api.gw.outbox.last_seq == seq


# --- a gateway process, its memory and its other stations --------------------------------------

LINE_TOML = """\
[line]
site = "t1"
line = "l1"
timezone = "Asia/Shanghai"

[hub]
transport = "none"

[[operators]]
badge = "OP-0001"
name = "op 1"

[[operators]]
badge = "OP-0002"
name = "op 2"
"""


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    keys: LineKeys  # st-1's and st-2's terminals, paired in the gateway's database

    def bearer(self, station: str) -> str:
        """The ``Authorization`` header line of ``station``'s terminal, for a raw request."""
        return f"Authorization: Bearer {self.keys.terminal(station)}"

    def hwm_kib(self) -> int:
        """The process's peak resident memory so far (VmHWM), KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    tmp = tmp_path_factory.mktemp("hostile-http")
    config = tmp / "line"
    config.mkdir()
    (config / "line.toml").write_text(LINE_TOML)
    for station in ("st-1", "st-2"):
        (config / f"{station}.toml").write_text(
            f'[station]\nid = "{station}"\ncapabilities = ["pack"]\n'
        )
    port = free_port()
    log = tmp / "gateway.log"
    offset_s = line_clock_offset_s()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config), "--data-dir",
             str(tmp), "--http-port", str(port), "--clock-offset-s", str(offset_s)],
            cwd=ROOT, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the gateway did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        # The stations' terminals paired in the running gateway's database, as an admin
        # pairs them (at the line's time).
        line = load_line_config(config)
        now = datetime.now(UTC) + timedelta(seconds=offset_s)
        keys = issue_keys_in(line.store_path(tmp), line, now)
        yield Process(proc, port, log, keys)
    finally:
        proc.terminate()
        proc.wait(10)


def _push(port: int, head: bytes, body: bytes) -> None:
    """Send a request and its whole body as fast as the gateway takes it (it may stop
    reading and close), then read whatever answer came."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head)
            view = memoryview(body)
            for at in range(0, len(body), 2**16):
                sock.sendall(view[at : at + 2**16])
            sock.recv(4096)
        except OSError:
            pass  # reset by the gateway: what it did not read it never held


def _chunked(body: bytes) -> bytes:
    step = 2**16
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + step]), body[i : i + step])
             for i in range(0, len(body), step)]  # fmt: skip
    return b"".join(parts) + b"0\r\n\r\n"


def test_a_refused_body_costs_the_gateway_nothing_like_its_size(process: Process) -> None:
    # Valid JSON, dear to parse (millions of short strings): 16 MiB cost the old gateway
    # some 250 MB at its peak.
    body = b'{"badge": [' + b'"ab",' * (16 * 2**20 // 5) + b'"ab"]}'
    size = len(body)
    login = "/api/stations/st-1/login"
    # Warm every path first (imports, buffers), so the peak after is the bodies' alone.
    small = b'{"badge": "' + b"x" * LIMIT + b'"}'
    auth = process.bearer("st-1")  # st-1's own terminal: the bodies are all that is wrong
    _push(process.port, post_head(login, f"Content-Length: {len(small)}", auth), small)
    _push(process.port, post_head(login, "Transfer-Encoding: chunked", auth), _chunked(small))
    before = process.hwm_kib()
    _push(process.port, post_head(login, f"Content-Length: {len(body)}", auth), body)
    _push(process.port, post_head(login, "Transfer-Encoding: chunked", auth), _chunked(body))
    r = httpx.post(
        f"http://127.0.0.1:{process.port}{login}", json={"badge": "OP-0001"}, auth=process.keys
    )
    assert r.status_code == 200, r.text  # and the gateway goes on
    grown = process.hwm_kib() - before
    assert grown < size // 4 // 1024, f"peak memory grew {grown} KiB for {size >> 20} MiB bodies"


async def _closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        trickle: bytes, every_s: float) -> float:  # fmt: skip
    """Send ``trickle`` a byte every ``every_s`` (then nothing) until the gateway closes the
    connection; seconds from the first byte to the close (inf if it never does)."""
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() < t0 + 3 * DEADLINE_S:
        if sent < len(trickle):
            writer.write(trickle[sent : sent + 1])
            sent += 1
        try:
            async with asyncio.timeout(every_s):
                if await reader.read(4096) == b"":
                    return time.monotonic() - t0
        except TimeoutError:
            pass
        except ConnectionError:
            return time.monotonic() - t0
    return float("inf")


async def _silent(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _closed_after(reader, writer, b"", 0.2)
    finally:
        writer.close()


async def _slow_head(port: int, credential: str) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = post_head("/api/stations/st-1/login", "Content-Length: 20", credential)
        return await _closed_after(reader, writer, head, 0.2)
    finally:
        writer.close()


async def _slow_head_after_an_answer(port: int) -> float:
    """A kept-alive connection: one request answered, then the next head trickled."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        status, _, _ = await read_answer(reader)
        assert status == 200
        return await _closed_after(reader, writer, b"GET /api/health HTTP/1.1\r\n" * 10, 0.2)
    finally:
        writer.close()


async def _slow_body(port: int, credential: str) -> tuple[float, bytes]:
    """The head at once, then the body a byte at a time: 408, in the API's shape."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = b'{"badge": "OP-0001"}' + b" " * 80
        head = post_head("/api/stations/st-1/login", f"Content-Length: {len(body)}", credential)
        writer.write(head)
        answer = asyncio.create_task(read_answer(reader))
        t0 = time.monotonic()
        for i in range(len(body)):
            if answer.done():
                break
            writer.write(body[i : i + 1])
            await asyncio.sleep(0.2)
        async with asyncio.timeout(3 * DEADLINE_S):
            status, _, content = await answer
        elapsed = time.monotonic() - t0
        assert status == 408, content
        return elapsed, content
    finally:
        writer.close()


async def _other_station(port: int, keys: LineKeys, busy: list[asyncio.Task[Any]]) -> list[float]:
    """st-2's operator signing in again and again (at st-2's terminal) while the others
    misbehave: the time each answer took."""
    took: list[float] = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=10, auth=keys
    ) as http:
        while not all(t.done() for t in busy):
            t0 = time.monotonic()
            r = await http.post("/api/stations/st-2/login", json={"badge": "OP-0002"})
            took.append(time.monotonic() - t0)
            assert r.status_code == 200, r.text
            await asyncio.sleep(0.05)
    return took


async def test_slow_and_silent_clients_are_cut_off_while_other_stations_are_answered(
    process: Process,
) -> None:
    port = process.port
    silent = asyncio.create_task(_silent(port))
    head = asyncio.create_task(_slow_head(port, process.bearer("st-1")))
    kept_alive = asyncio.create_task(_slow_head_after_an_answer(port))
    body = asyncio.create_task(_slow_body(port, process.bearer("st-1")))
    took = await _other_station(port, process.keys, [silent, head, kept_alive, body])
    for name, elapsed in (
        ("silent", silent.result()),
        ("slow head", head.result()),
        ("slow head after an answer", kept_alive.result()),
        ("slow body", body.result()[0]),
    ):
        assert DEADLINE_S - EARLY_S <= elapsed <= DEADLINE_S + LATE_S, f"{name}: {elapsed:.2f} s"
    refusal_of(408, body.result()[1], 408, "TIMEOUT")
    # The other station was answered throughout, never held up until a deadline (how fast
    # it is answered meanwhile is measured in benchmarks/bench_hostile_http.py).
    slowest = max(took)
    assert len(took) >= 20 and slowest < DEADLINE_S / 2, f"{len(took)}, slowest {slowest:.3f} s"
