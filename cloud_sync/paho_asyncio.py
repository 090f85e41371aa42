"""paho-mqtt 2.x driven from the asyncio event loop: paho runs no thread of its own.

The loop calls ``loop_read()`` when the socket is readable, ``loop_write()`` when paho has
bytes queued (its on_socket_register_write asked for it) and ``loop_misc()`` from
:func:`keep_alive`. So every paho callback runs on the loop thread, inside one of those
calls, and acts at once: no hop, no lock, no self-pipe. One plumbing for every MQTT end
(the gateway's hub link, the office's receiver and its feed publisher), so a fix to it
(TLS records left in the SSL object, a dead peer noticed) reaches all three.

A user subclasses :class:`PahoConnection`: ``bind`` sets its paho callbacks (each counts
``self.packets += 1``, which tells a read that did something), ``hold_reading`` says when
back-pressure leaves the socket unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Coroutine, Iterable
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

__all__ = ["PahoConnection", "cancel_all", "connect", "first", "keep_alive"]

# The loop calls paho's loop_misc() (keepalive: PINGREQ, and a dead peer's timeout) this often.
_MISC_INTERVAL_S = 1.0
# At most this many loop_read() calls per readable event, so one wake-up cannot hog the loop.
_READS_PER_WAKE = 1024


class PahoConnection:
    """One paho client's connection, its socket watched by the loop.

    Nothing here refers back to the client (it comes in as an argument), so no reference
    cycle keeps a finished client alive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._sock: mqtt.SocketLike | None = None  # the socket the loop watches, while open
        self._reading = False
        self.packets = 0  # packets paho handed to a callback
        self.closed = asyncio.Event()
        self.socket_closed = asyncio.Event()
        self.reason = ""
        self.last_in = time.monotonic()  # when bytes last came from the broker

    def close(self, reason: str) -> None:
        if not self.closed.is_set():
            self.reason = reason
            self.closed.set()

    # --- what a user overrides ------------------------------------------------------------

    def bind(self, client: mqtt.Client) -> None:
        """Set the user's paho callbacks (on_connect, on_message, ...)."""

    def hold_reading(self) -> bool:
        """True: leave the socket unread (back-pressure); ``resume`` when it is False again."""
        return False

    def socket_gone(self) -> None:
        """paho closed the socket (after its on_disconnect, if it knew why)."""

    # --- the socket -------------------------------------------------------------------------

    def attach(self, client: mqtt.Client) -> None:
        """Hand the connected client's socket to the loop. On the loop thread, after connect().

        The callbacks are set only now, so none of them can run on the executor thread that
        ran connect() (paho calls on_socket_open, and on a failed send on_disconnect, there).
        """
        sock = client.socket()
        if sock is None:
            self.close("connection lost during connect")
            self.socket_closed.set()
            return
        self.bind(client)
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._socket_register_write
        client.on_socket_unregister_write = self._socket_unregister_write
        self._sock = sock
        self.resume(client)
        if client.want_write():  # connect() could not send all of CONNECT at once
            self._loop.add_writer(sock, self._writable, client)

    def resume(self, client: mqtt.Client) -> None:
        """Read the socket again (unless back-pressure still holds it)."""
        if self._reading or self._sock is None or self.hold_reading():
            return
        self._loop.add_reader(self._sock, self._readable, client)
        self._reading = True

    def _pause(self) -> None:
        if self._reading and self._sock is not None:
            self._loop.remove_reader(self._sock)
        self._reading = False

    def _readable(self, client: mqtt.Client) -> None:
        self.last_in = time.monotonic()
        # loop_read() reads at most one packet per message in flight (at least one), and
        # cannot tell "nothing left" from "done": read again while a call did something.
        # Back-pressure leaves the socket unread, so a burst waits in the broker (on disk
        # there), not in our memory: TCP flow control always works, whatever the broker
        # does with Receive Maximum.
        for _ in range(_READS_PER_WAKE):
            if self.hold_reading():
                self._pause()
                return
            before = self.packets
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # the connection is lost: paho closed the socket and said so
            if self.packets == before:
                break
        # TLS decrypts whole records: bytes already read from the socket can wait in the
        # SSL object, and the socket will not say "readable" for them again.
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            self._loop.call_soon(self._readable, client)

    def _writable(self, client: mqtt.Client) -> None:
        client.loop_write()
        # paho says so through on_socket_unregister_write; this only makes sure a writable
        # socket with nothing to send never spins the loop.
        if not client.want_write() and self._sock is not None:
            self._loop.remove_writer(self._sock)

    def _socket_register_write(
        self, client: mqtt.Client, userdata: object, sock: mqtt.SocketLike
    ) -> None:
        self._loop.add_writer(sock, self._writable, client)

    def _socket_unregister_write(
        self, client: mqtt.Client, userdata: object, sock: mqtt.SocketLike
    ) -> None:
        self._loop.remove_writer(sock)

    def _socket_close(self, client: mqtt.Client, userdata: object, sock: mqtt.SocketLike) -> None:
        # paho closes the socket right after this: the loop must forget it first.
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._reading = False
        self._sock = None
        self.socket_closed.set()
        self.socket_gone()


async def connect(
    client: mqtt.Client, host: str, port: int, keepalive_s: int, **kwargs: Any
) -> MQTTErrorCode:
    """``client.connect`` on an executor thread, before ``attach``.

    connect() resolves the name (DNS for a real broker) and opens the TCP connection with a
    blocking socket.create_connection (up to paho's 5 s connect timeout against a dead
    network), then sends CONNECT: neither step can be made non-blocking through paho's
    public API. The client has no callbacks yet, so none runs on that thread; a CONNACK
    that comes meanwhile waits in the socket. Raises OSError when the broker is away."""
    call = partial(client.connect, host, port, keepalive_s, **kwargs)
    connecting = asyncio.get_running_loop().run_in_executor(None, call)
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        # The thread carries on regardless: let it finish so its socket can be closed.
        with contextlib.suppress(Exception):
            await connecting
        raise


async def keep_alive(client: mqtt.Client, conn: PahoConnection, keepalive_s: float) -> None:
    """paho's timers without its thread, and a dead link noticed within 1.5 × keep-alive.

    paho alone notices a silent broker only after two keep-alives (a PINGREQ once idle for
    one, then a whole one more for the PINGRESP). Here the link asks with a PINGREQ once
    the broker has been silent for half a keep-alive, and gives the connection up when it
    has been silent for one and a half: a healthy broker answers a PINGREQ in a round trip,
    so only a dead link (a blackhole, a pulled cable behind a switch) stays silent that long.
    Ends (having closed ``conn``) when the connection is lost.
    """
    tick = min(_MISC_INTERVAL_S, keepalive_s / 10) if keepalive_s > 0 else _MISC_INTERVAL_S
    ping = getattr(client, "_send_pingreq", None)  # paho's own; absent, paho's timing only
    asked_at = 0.0
    while True:
        await asyncio.sleep(tick)
        if client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
            conn.close("connection lost")  # paho has said why, if it knew
            return
        if keepalive_s <= 0:
            continue  # no keep-alive asked for: paho's misc only
        now = time.monotonic()
        silent = now - conn.last_in
        # Checked every tick, with a tick of margin for a busy loop: noticed by 1.5 × it.
        if silent > 1.5 * keepalive_s - 2 * tick:
            conn.close(f"no word from the broker for {silent:.1f} s (1.5 × keep-alive)")
            return
        if silent > keepalive_s / 2 and asked_at < conn.last_in and callable(ping):
            ping()
            asked_at = now


async def first(*waits: Coroutine[Any, Any, object]) -> None:
    """Return once the first of ``waits`` is done (re-raising its error); cancel the rest."""
    tasks = [asyncio.create_task(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_all(tasks)
    for task in done:
        task.result()


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
