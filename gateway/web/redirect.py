"""Plain HTTP beside the HTTPS station API (``[http] redirect_port``).

With ``[http.tls]`` the station API's port speaks TLS and nothing else: a plain request
sent there fails its handshake and the connection is closed without an answer (telling
the two apart on one port would mean reading a connection's first byte before TLS, which
asyncio cannot hand back to the TLS layer). So a terminal whose bookmark still says
``http://`` finds its way here instead, on a port of its own:

- a GET or a HEAD is answered 308 to the same path and query over HTTPS, on the host the
  client asked for (its ``Host``), so a browser follows it at once;
- anything else is refused (400 ``HTTPS_REQUIRED``, in the API's shape), not redirected:
  a client that sends an action over plain HTTP has already sent it in the clear, and a
  redirect would let it go on doing so unnoticed.

No request reaches the app here, and its body is never read. The head has the station
API's limits (gateway/web/limits.py): within :data:`HEAD_TIMEOUT_S`, at most
:data:`MAX_HEAD_BYTES`, else the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from functools import partial
from urllib.parse import urlsplit

import h11

from gateway.web.answers import refusal_bytes
from gateway.web.limits import HEAD_TIMEOUT_S, MAX_HEAD_BYTES

__all__ = ["serve_redirects"]

# A host as a Location may carry it: a name or an IPv4 address, or an IPv6 address.
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}")
_READ = 4096


async def serve_redirects(sock: socket.socket, https_port: int) -> None:
    """Answer plain HTTP on ``sock`` (bound and listening) until cancelled."""
    server = await asyncio.start_server(partial(_answer, https_port), sock=sock)
    async with server:
        await server.serve_forever()


async def _answer(
    https_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    try:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            request = await _head(conn, reader)
        if request is not None:
            writer.write(_response(conn, request, https_port))
            await writer.drain()
    except h11.RemoteProtocolError:
        writer.write(
            _send(
                conn,
                400,
                "BAD_REQUEST",
                "The request is not valid HTTP/1.1, or its head is too long.",
                "Nothing was recorded. Check the terminal's software.",
            )
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
    except (TimeoutError, ConnectionError):
        pass  # a silent, slow or departed client: nobody to answer
    finally:
        writer.close()


async def _head(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
    """The request's head, or None when the client left without sending one."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(_READ))  # b"": the client closed
            continue
        return event if isinstance(event, h11.Request) else None


def _response(conn: h11.Connection, request: h11.Request, https_port: int) -> bytes:
    base = _https_base(request, https_port)
    if base is None:
        return _send(
            conn,
            400,
            "BAD_REQUEST",
            "The request names no host this gateway can send it on to.",
            "Open the station API's https:// address.",
        )
    if request.method not in (b"GET", b"HEAD"):
        return _send(
            conn,
            400,
            "HTTPS_REQUIRED",
            "This gateway takes actions over HTTPS only. Nothing was recorded.",
            f"Set the terminal's address to {base} and do it again.",
        )
    # h11 let only a visible-ASCII target through; a proxy's absolute form goes to "/".
    target = request.target.decode("ascii") if request.target.startswith(b"/") else "/"
    headers = [
        (b"location", f"{base}{target}".encode("ascii")),
        (b"content-length", b"0"),
        (b"connection", b"close"),
    ]
    out = conn.send(h11.Response(status_code=308, headers=headers, reason=b"Permanent Redirect"))
    return (out or b"") + (conn.send(h11.EndOfMessage()) or b"")


def _https_base(request: h11.Request, https_port: int) -> str | None:
    """``https://HOST[:PORT]`` for the host the client asked for; None for a request
    without a usable Host."""
    host = next((value for name, value in request.headers if name == b"host"), None)
    if host is None:
        return None
    try:
        name = urlsplit("//" + host.decode("ascii")).hostname
    except (UnicodeDecodeError, ValueError):
        return None
    if not name or not _HOST.fullmatch(name):
        return None
    if ":" in name:
        name = f"[{name}]"
    return f"https://{name}" if https_port == 443 else f"https://{name}:{https_port}"


def _send(conn: h11.Connection, status: int, code: str, message: str, next_step: str) -> bytes:
    body = refusal_bytes(code, message, next_step)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    out = [
        conn.send(h11.Response(status_code=status, headers=headers, reason=b"Bad Request")),
        conn.send(h11.Data(data=body)),
        conn.send(h11.EndOfMessage()),
    ]
    return b"".join(part or b"" for part in out)
