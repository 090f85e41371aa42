"""A Mosquitto of the demo's own on a free loopback port, in a folder of the run's own."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["Broker", "BrokerError", "find_mosquitto", "free_port"]

# Mosquitto tells its subscription count on $SYS every sys_interval seconds.
_SUBSCRIPTIONS = "$SYS/broker/subscriptions/count"

_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0


class BrokerError(Exception):
    """Mosquitto is missing or did not come up; the message says what to do."""


def find_mosquitto() -> str | None:
    # Debian installs the broker in /usr/sbin, which is not on every user's PATH.
    found = shutil.which("mosquitto")
    if found is not None:
        return found
    fallback = Path("/usr/sbin/mosquitto")
    return str(fallback) if fallback.is_file() else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Broker:
    """``start()`` returns once the broker accepts connections; ``stop()`` ends it."""

    folder: Path
    host: str = "127.0.0.1"
    port: int = 0
    _proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError(
                "the site demo needs Mosquitto: run 'sudo apt-get install mosquitto' "
                "(make test installs it when run as root)"
            )
        self.port = self.port or free_port(self.host)
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        # No persistence: a demo's broker lives as long as the demo. Started as root,
        # mosquitto switches to the user "mosquitto" unless told to stay who we are.
        conf.write_text(
            f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n"
            f"user {getpass.getuser()}\nsys_interval 1\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n",
            encoding="utf-8",
        )
        log = (self.folder / "mosquitto.log").open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                binary,
                "-c",
                str(conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C goes to the demo, which stops it last
            )
        finally:
            log.close()
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                while not await self._accepts():
                    if self._proc.returncode is not None:
                        break
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pass
        if self._proc.returncode is not None or not await self._accepts():
            await self.stop()
            text = (self.folder / "mosquitto.log").read_text(errors="replace").strip()
            raise BrokerError(f"mosquitto did not come up on {self.url}: {text or 'no output'}")

    async def wait_subscriptions(self, at_least: int, timeout_s: float = 10.0) -> bool:
        """Until the broker holds ``at_least`` subscriptions besides this probe's own (the
        office subscribed: a line's first events must not pass before it listens)."""
        loop = asyncio.get_running_loop()
        enough = asyncio.Event()

        def heard(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            with contextlib.suppress(ValueError):
                if int(message.payload) - 1 >= at_least:
                    loop.call_soon_threadsafe(enough.set)

        def connected(client: mqtt.Client, *_args: object) -> None:
            client.subscribe(_SUBSCRIPTIONS, qos=0)

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
        client.on_connect = connected
        client.on_message = heard
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()  # paho's thread; it only hops the news onto the loop
        try:
            async with asyncio.timeout(timeout_s):
                await enough.wait()
        except TimeoutError:
            return False
        finally:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        return True

    async def _accepts(self) -> bool:
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
