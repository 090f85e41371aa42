"""The office's tests' parts: a real PostgreSQL from Debian's packages, in a temporary folder
on a free loopback port, and a store on either database.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as ``nobody``
(its folder is handed to that user). Trust authentication on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from office.store import Store
from tests.conftest import free_port, missing

__all__ = ["PostgreSQL", "now"]


def now() -> datetime:
    return datetime(2026, 11, 11, 2, 0, tzinfo=UTC)


def _pg_bin() -> Path | None:
    # Debian's versioned folder; the newest when several are installed.
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: p.parts[-3])
    return found[-1].parent if found else None


class PostgreSQL:
    """A postgres child process that can be stopped and started again on the same port."""

    def __init__(self, bindir: Path) -> None:
        self._bindir = bindir
        self.port = free_port()
        # Not under pytest's tmp folder: its 0700 parents keep ``nobody`` out.
        self._dir = Path(tempfile.mkdtemp(prefix="office-pg-"))
        self._data = self._dir / "data"
        self._log = self._dir / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": grp.getgrgid(nobody.pw_gid).gr_gid}
            os.chown(self._dir, nobody.pw_uid, nobody.pw_gid)
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(self._data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, cwd=self._dir, **self._as,
        )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self._bindir / "postgres"), "-D", str(self._data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                 "-c", "fsync=off", "-c", "max_connections=50"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self._dir, **self._as,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=1):
                    return
            except psycopg.OperationalError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"postgres did not come up: {self._log.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are cut, as a restarted server would."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(2)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def postgresql_server() -> PostgreSQL:
    bindir = _pg_bin()
    if bindir is None:
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgreSQL(bindir)
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgreSQL]:
    """One server for the session; each test gets a database of its own (pg_url)."""
    server = postgresql_server()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres_own() -> Iterator[PostgreSQL]:
    """A server of the test's own, for a test that stops and starts it."""
    server = postgresql_server()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_url(postgres: PostgreSQL) -> str:
    return postgres.url(postgres.create_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'office.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url, now)
    try:
        yield opened
    finally:
        with contextlib.suppress(Exception):
            await opened.close()
