"""The gateway's word to systemd: READY once it serves, WATCHDOG only while it is healthy.

systemd's notify protocol (sd_notify(3)): datagrams of ``KEY=value`` lines to the Unix
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace). With
``WatchdogSec=`` set, systemd passes ``$WATCHDOG_USEC`` and kills the service (then restarts
it) when no ``WATCHDOG=1`` came for that long. The ping is sent from the event loop, every
half of the period as sd_watchdog_enabled(3) recommends, and only after a write to the
store went through: a wedged loop or a store that cannot commit stops the pings, so
systemd restarts the gateway; a device or the hub being away does not (they degrade and
recover by themselves).

Without ``$NOTIFY_SOCKET`` (a terminal, the tests, the demo) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["Notifier", "watchdog"]

logger = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to systemd, if it asked for them."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        # The abstract namespace is spelt with a leading "@" and addressed with a NUL.
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self.interval_s: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.interval_s = int(usec) / 1e6 / 2
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, *lines: str) -> bool:
        """Send one message; False when there is no socket or it failed (never raises)."""
        if not self._address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            logger.warning("cannot notify systemd at %s: %s", self._address.lstrip("\0"), exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


async def watchdog(notifier: Notifier, healthy: Callable[[], str | None]) -> None:
    """Ping systemd's watchdog while ``healthy()`` says nothing is wrong (returns None);
    otherwise say what is wrong in STATUS and let the pings stop. Until cancelled."""
    interval = notifier.interval_s
    if interval is None:
        await asyncio.Event().wait()  # systemd set no watchdog: nothing to do
        return
    was_ok = True
    while True:
        started = time.monotonic()
        try:
            problem = healthy()
        except Exception as exc:  # noqa: BLE001 - the check failing is itself the problem
            problem = f"health check failed: {exc!r}"
        if problem is None:
            notifier.send("WATCHDOG=1", *(() if was_ok else ("STATUS=serving",)))
            if not was_ok:
                logger.info("healthy again: watchdog pings resume")
            was_ok = True
        else:
            if was_ok:
                logger.error("unhealthy, watchdog pings stop: %s", problem)
            notifier.send(f"STATUS=unhealthy: {problem}")
            was_ok = False
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
