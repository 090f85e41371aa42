"""Shared fixtures: a throwaway Mosquitto broker on a free loopback port; and what a test
does when a real part it needs (the broker, ../shared, root for a tmpfs …) is missing."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """CI=true, as CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(what: str) -> NoReturn:
    """A real part this test needs is not here: skip on a developer's machine, but fail under
    CI=true, so that a green CI means every such test ran. ``what`` says what to install."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: a missing part fails the test, it does not skip it)")
    pytest.skip(what)


def need(present: bool, what: str) -> None:
    """:func:`missing` unless ``present``."""
    if not present:
        missing(what)


def beside_checkout(path: Path) -> Path:
    """A file of ``../shared``, the normative folder whose copies this repository vendors
    (the contract, the benchmark data). Only the tests that compare a vendored copy with
    its original use it, and they skip, also under CI=true, when the folder is not beside
    the checkout (a clean clone has none): what the code and every other test need is
    vendored, so those always run."""
    if not path.exists():
        pytest.skip(f"{path} is not beside this checkout: the vendored copy is what is tested")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_mosquitto() -> str | None:
    """The broker's binary, or None."""
    # Debian installs the broker in /usr/sbin, which is not on every user's PATH.
    found = shutil.which("mosquitto")
    if found is not None:
        return found
    fallback = Path("/usr/sbin/mosquitto")
    return str(fallback) if fallback.is_file() else None


def mosquitto_binary() -> str:
    """The broker's binary; the test is skipped (failed under CI=true) when there is none."""
    found = find_mosquitto()
    if found is None:
        missing("mosquitto is not installed (apt-get install mosquitto)")
    return found


class Mosquitto:
    """A mosquitto child process on a fixed loopback port that can be stopped and restarted.

    ``listener`` is the listener's own settings (TLS files, authentication)."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        persistence: bool = False,
        listener: str = "allow_anonymous true\n",
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._binary = binary
        self._log = workdir / "mosquitto.log"
        self._conf = workdir / "mosquitto.conf"
        # Persistence keeps sessions, subscriptions and queued messages across a restart,
        # as a hub's broker would; saved every second, so a broker killed with SIGKILL
        # comes back with its sessions (what it held for less than that is gone).
        # Started as root, mosquitto switches to the user "mosquitto", which may not write
        # in the test's folder: stay the user we are (ignored when not root).
        keep = (
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\n"
            f"user {getpass.getuser()}\n"
            if persistence
            else "persistence false\n"
        )
        self._conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"{listener}"
            f"{keep}"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        """Start the broker (again, on the same port) and wait until it accepts connections."""
        if self.running:
            return
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self._binary, "-c", str(self._conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mosquitto did not come up on port {self.port}: "
                        f"{self._log.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.01)

    def stop(self) -> None:
        """Terminate the broker and wait for it to exit."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh broker for one test (see :func:`mosquitto_binary` when there is none)."""
    broker = Mosquitto(mosquitto_binary(), tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
