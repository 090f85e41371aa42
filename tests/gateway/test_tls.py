"""The station API over TLS, for real: a gateway in the test's loop serving HTTPS on a free
loopback port with a certificate made by ``linegate certs make``'s code, and plain HTTP
on its redirect port.

What README ("Security") promises: a terminal that trusts the lab CA gets its answers
(through the same body limits and answer shapes as without TLS); a client that trusts
another CA, or asks for a name the certificate does not carry, gets no connection; the
TLS port answers no plain HTTP at all; the redirect port sends a GET on to the same path
over HTTPS and refuses an action; a client that never finishes its handshake, or never
finishes its request's head after it, is cut off at the head's deadline (5 s), as without
TLS; ``linegate devices``/``plan`` reach their own gateway over TLS.

The certificates are made at the system's time, not the line's: the clients check them
against the system's clock, whatever it says (make test-clock runs this a year ahead).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_sync.memory import MemoryHub, MemoryLink
from gateway.access.accounts import add_user
from gateway.access.passwords import hash_password, random_password
from gateway.app.root import Gateway
from gateway.cli.http import ask_gateway
from gateway.cli.lab_certs import LabCerts, make_lab_certs
from gateway.config.line import HttpTls, LineConfig
from gateway.config.tls import TlsFileError, cert_path, key_path, server_context
from gateway.store.rows import Role
from simulators.keys import LineKeys
from tests.gateway.test_station_api import ManualClock, _config
from tests.keys import issue_keys

DEADLINE_S = 5.0  # README: a request's head (and now a TLS handshake) within this
EARLY_S, LATE_S = 0.3, 1.5  # as in test_station_api_hostile.py
LOOPBACK = ipaddress.ip_address("127.0.0.1")
REFUSAL_KEYS = {"ok", "code", "message", "next"}


@dataclass
class Tls:
    gw: Gateway
    certs: LabCerts
    trusting: ssl.SSLContext  # a client that trusts the lab CA
    keys: LineKeys  # the stations' paired terminals and a token per role

    @property
    def port(self) -> int:
        assert self.gw.http_port is not None
        return self.gw.http_port

    @property
    def redirect_port(self) -> int:
        assert self.gw.redirect_port is not None
        return self.gw.redirect_port

    def client(self, verify: ssl.SSLContext | None = None) -> httpx.AsyncClient:
        """A terminal's (or a lead's) client: it authenticates as a real one does."""
        return httpx.AsyncClient(
            base_url=f"https://localhost:{self.port}",
            verify=verify or self.trusting,
            timeout=10,
            auth=self.keys,
        )


def lab_certs(folder: Path) -> LabCerts:
    return make_lab_certs(folder, ["localhost"], [LOOPBACK], 30, datetime.now(UTC))


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def with_tls(config: LineConfig, certs: LabCerts, **http: Any) -> LineConfig:
    tls = HttpTls(cert_file=str(certs.server_cert), key_file=str(certs.server_key))
    return config.model_copy(update={"http": config.http.model_copy(update={"tls": tls, **http})})


@pytest.fixture
async def tls(tmp_path: Path) -> AsyncIterator[Tls]:
    certs = lab_certs(tmp_path / "pki")
    config = with_tls(_config(), certs, redirect_port=0)
    clock = ManualClock()
    link = MemoryLink(MemoryHub(), config.line.site, config.line.line, clock.now)
    gw = Gateway(config, data_dir=tmp_path, clock=clock, link=link, http_port=0)
    task = asyncio.create_task(gw.run())
    try:
        async with asyncio.timeout(20):
            await gw.started.wait()
        keys = issue_keys(gw.store, config, clock.now())
        yield Tls(gw, certs, trusting(certs.ca_cert), keys)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def refusal(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    doc: dict[str, Any] = response.json()
    assert set(doc) == REFUSAL_KEYS and doc["ok"] is False and doc["code"] == code, doc
    return doc


async def test_a_terminal_that_trusts_the_lab_ca_is_answered_over_tls(tls: Tls) -> None:
    async with tls.client() as https:
        health = await https.get("/api/health")
        assert health.status_code == 200, health.text
        assert health.json()["gateway_id"] == "hz01/line3"
        login = await https.post("/api/stations/pack-1/login", json={"badge": "OP-1008"})
        assert login.status_code == 200, login.text
        assert (await https.get("/api/stations/pack-1")).json()["operator"] is not None
        # The body guard and the answer shapes hold inside TLS as outside.
        too_big = await https.post(
            "/api/stations/pack-1/scan",
            content=b'{"code": "' + b"x" * 20_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        refusal(too_big, 413, "BODY_TOO_LARGE")
    async with tls.client() as https:
        refusal(await https.get("/api/nowhere"), 404, "NOT_FOUND")
    # By its address too: the certificate carries 127.0.0.1.
    async with httpx.AsyncClient(verify=tls.trusting, timeout=10) as https:
        assert (await https.get(f"https://127.0.0.1:{tls.port}/api/health")).status_code == 200


async def test_tls_is_1_2_at_least_and_says_http_1_1(tls: Tls) -> None:
    tls12 = trusting(tls.certs.ca_cert)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.set_alpn_protocols(["h2", "http/1.1"])
    _, writer = await asyncio.open_connection(
        "127.0.0.1", tls.port, ssl=tls12, server_hostname="localhost"
    )
    try:
        conn = writer.get_extra_info("ssl_object")
        assert conn.version() == "TLSv1.2"
        assert conn.selected_alpn_protocol() == "http/1.1"
    finally:
        writer.close()
        await writer.wait_closed()
    served = server_context(
        cert_path(_tls_of(tls), tls.gw.config.config_dir),
        key_path(_tls_of(tls), tls.gw.config.config_dir),
    )
    assert served.minimum_version == ssl.TLSVersion.TLSv1_2


def _tls_of(tls: Tls) -> HttpTls:
    assert tls.gw.config.http.tls is not None
    return tls.gw.config.http.tls


async def test_a_client_that_does_not_trust_the_lab_ca_gets_no_connection(
    tls: Tls, tmp_path: Path
) -> None:
    other = lab_certs(tmp_path / "other")  # another lab's CA, for the same names
    async with tls.client(verify=trusting(other.ca_cert)) as https:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await https.get("/api/health")
    # Trusting the right CA but asking for a name the certificate does not carry.
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        await asyncio.open_connection(
            "127.0.0.1", tls.port, ssl=tls.trusting, server_hostname="gateway.example"
        )
    # And the gateway serves the next terminal as before.
    async with tls.client() as https:
        assert (await https.get("/api/health")).status_code == 200


def _plain_request(port: int, request: bytes) -> bytes:
    """What comes back for a plain HTTP request (b"" for a closed connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
        return received


async def test_plain_http_on_the_tls_port_gets_no_answer(tls: Tls) -> None:
    # A terminal set up for http by mistake, sending its credential (in the clear).
    credential = f"Authorization: Bearer {tls.keys.terminal('pack-1')}\r\n".encode()
    request = b"POST /api/stations/pack-1/login HTTP/1.1\r\nHost: localhost\r\n" + (
        credential
        + b'Content-Type: application/json\r\nContent-Length: 19\r\n\r\n{"badge":"OP-1008"}'
    )
    answer = await asyncio.to_thread(_plain_request, tls.port, request)
    assert not answer.startswith(b"HTTP/"), answer
    async with tls.client() as https:
        assert (await https.get("/api/stations/pack-1")).json()["operator"] is None


async def test_the_redirect_port_sends_a_get_to_https_and_refuses_an_action(tls: Tls) -> None:
    async with httpx.AsyncClient(
        base_url=f"http://localhost:{tls.redirect_port}", timeout=10
    ) as plain:
        moved = await plain.get("/api/stations/pack-1?view=full")
        assert moved.status_code == 308, moved.text
        assert moved.headers["location"] == (
            f"https://localhost:{tls.port}/api/stations/pack-1?view=full"
        )
        head = await plain.head("/api/health")
        assert head.status_code == 308
        assert head.headers["location"] == f"https://localhost:{tls.port}/api/health"
        # An action is not sent on: it already crossed the network in the clear.
        action = await plain.post("/api/stations/pack-1/login", json={"badge": "OP-1008"})
        doc = refusal(action, 400, "HTTPS_REQUIRED")
        assert f"https://localhost:{tls.port}" in doc["next"]
    # A browser follows the redirect to the answer. It is signed in (the session cookie
    # it got over HTTPS, Secure: not sent on the plain request, sent on the redirected one).
    password = random_password()
    gw = tls.gw
    hashed = await asyncio.to_thread(hash_password, password, "viewer")
    add_user(gw.store, "viewer", Role.VIEWER, hashed, gw.core.clock.now())
    async with httpx.AsyncClient(verify=tls.trusting, follow_redirects=True, timeout=10) as web:
        signed = await web.post(
            f"https://localhost:{tls.port}/api/session",
            json={"username": "viewer", "password": password},
        )
        assert signed.status_code == 200, signed.text
        followed = await web.get(f"http://localhost:{tls.redirect_port}/api/stations/pack-1")
        assert "cookie" not in followed.history[0].request.headers  # not in the clear
        assert followed.status_code == 200, followed.text
        assert str(followed.url) == f"https://localhost:{tls.port}/api/stations/pack-1"
        assert followed.json()["operator"] is None  # the refused action changed nothing
    # The host asked for, by address; IPv6 in brackets; a request that is no HTTP.
    by_address = await asyncio.to_thread(
        _plain_request, tls.redirect_port, b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    )
    assert f"location: https://127.0.0.1:{tls.port}/x\r\n".encode() in by_address
    v6 = await asyncio.to_thread(
        _plain_request, tls.redirect_port, b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"
    )
    assert f"location: https://[::1]:{tls.port}/\r\n".encode() in v6
    for bad in (
        b"GET / HTTP/1.0\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    ):
        answer = await asyncio.to_thread(_plain_request, tls.redirect_port, bad)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert set(body) == REFUSAL_KEYS and body["code"] == "BAD_REQUEST", body


async def _closed_after(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trickle: bytes
) -> float:
    """Send ``trickle`` a byte every 0.2 s (then nothing) until the gateway closes the
    connection; seconds until it did (inf if it never does)."""
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() < t0 + 3 * DEADLINE_S:
        if sent < len(trickle):
            writer.write(trickle[sent : sent + 1])
            sent += 1
        try:
            async with asyncio.timeout(0.2):
                if await reader.read(4096) == b"":
                    return time.monotonic() - t0
        except TimeoutError:
            pass
        except (ConnectionError, ssl.SSLError):
            return time.monotonic() - t0
    return float("inf")


async def _silent(port: int) -> float:
    """A TCP connection that never says hello (no TLS handshake, no request)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _closed_after(reader, writer, b"")
    finally:
        writer.close()


async def _slow_head_over_tls(port: int, context: ssl.SSLContext) -> float:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    try:
        return await _closed_after(reader, writer, b"GET /api/health HTTP/1.1\r\n" * 4)
    finally:
        writer.close()


async def test_silent_and_slow_clients_are_cut_off_at_the_heads_deadline(tls: Tls) -> None:
    no_hello = asyncio.create_task(_silent(tls.port))
    slow_head = asyncio.create_task(_slow_head_over_tls(tls.port, tls.trusting))
    silent_plain = asyncio.create_task(_silent(tls.redirect_port))
    async with tls.client() as https:
        while not all(t.done() for t in (no_hello, slow_head, silent_plain)):
            t0 = time.monotonic()
            assert (await https.get("/api/health")).status_code == 200
            assert time.monotonic() - t0 < DEADLINE_S / 2
            await asyncio.sleep(0.1)
    for name, task in (
        ("no TLS handshake", no_hello),
        ("a head trickled over TLS", slow_head),
        ("silent on the redirect port", silent_plain),
    ):
        elapsed = task.result()
        assert DEADLINE_S - EARLY_S <= elapsed <= DEADLINE_S + LATE_S, f"{name}: {elapsed:.2f} s"


async def test_linegate_devices_reaches_its_own_gateway_over_tls(tls: Tls) -> None:
    # The command trusts the certificate its config names, whatever CA signed it and
    # whatever address it asks by (127.0.0.1 here).
    config = tls.gw.config
    here = config.model_copy(
        update={"http": config.http.model_copy(update={"port": tls.port, "host": "0.0.0.0"})}
    )
    answer = await asyncio.to_thread(
        ask_gateway, "devices", here, None, "/api/health", otherwise="nothing"
    )
    assert answer is not None
    health, base = answer
    assert base == f"https://127.0.0.1:{tls.port}"
    assert health["gateway_id"] == "hz01/line3"


async def test_a_gateway_whose_key_went_missing_does_not_start(tmp_path: Path) -> None:
    certs = lab_certs(tmp_path / "pki")
    config = with_tls(_config(), certs)
    certs.server_key.unlink()  # after check-config passed, before the start
    gw = Gateway(config, data_dir=tmp_path, clock=ManualClock(), http_port=0)
    with pytest.raises(TlsFileError, match=r"station-api\.key"):
        await gw.run()
    assert not gw.started.is_set()
