"""The e-SOP's pictures and documents: fetched once from the hub, checked, served from here.

A routing operation of the catalog may carry ``media``: ``{url, sha256, kind, …}``
(contract v1.1). The station screens never go to the hub: the gateway fetches each file
once, keeps it in its data folder under its SHA-256 and serves that copy at
``/media/{sha256}`` (gateway/web/media_routes.py). A file is kept only after its bytes
hash to what the catalog says: a file that does not (or is bigger than the limit) is
refused with an alarm, and tried again only when another catalog comes in force. A hub
that cannot be reached is tried again, with a growing pause, for as long as the catalog
names the file.

The folder is the truth, and survives restarts: a file is written under a temporary name
and renamed once checked, so a file named by its hash was whole and right when written;
at start-up each one is hashed again (a power cut can leave a renamed file empty), and a
file that still matches is not fetched again. Files the catalog no longer names stay:
a work order keeps the routing of the catalog it was made under, and its tasks still
show that routing's pictures (a folder of pictures is small; nothing prunes it).

What the station screens may link is ``core.catalog.media_held`` (the desk is below this
layer and reads only that): the hashes of the files held.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import re
import sqlite3
import ssl
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx

from cloud_sync.backoff import Backoff
from cloud_sync.contract import Media
from gateway.config.line import HubSection
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.store.rows import AlarmRow, Severity

logger = logging.getLogger(__name__)

__all__ = [
    "ALARM_KIND",
    "ClientFactory",
    "MediaCache",
    "MediaSettings",
    "MediaState",
    "MediaStatus",
    "content_type_of",
    "hub_client",
    "sniff",
]

MIB = 1024 * 1024
ALARM_KIND = "media"
MediaKind = Literal["image", "pdf", "video"]
ClientFactory = Callable[[], httpx.AsyncClient]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PART = ".part"  # a download being written; left over only by a crash
_HEAD = 1024  # bytes read to tell a file's type


class MediaState(StrEnum):
    FETCHED = "fetched"
    PENDING = "pending"  # not fetched yet, or the hub could not be reached: tried again
    FAILED = "failed"  # refused (wrong hash, too big, no http URL): tried on the next catalog


@dataclass(frozen=True, slots=True)
class MediaSettings:
    max_bytes: int = 20 * MIB  # per file; a bigger one is refused
    timeout_s: float = 30.0  # per request (connect, and each read)
    deadline_s: float = 600.0  # per file, whole: a hub that sends a byte a minute gives up
    parallel: int = 2  # downloads at a time: the hub and the line's uplink are shared
    retry_initial_s: float = 2.0
    retry_max_s: float = 300.0
    # Failed attempts to reach a file before an alarm says so (it is still tried again).
    alarm_after: int = 5
    # How often the catalog in force is looked at (a look is a comparison of versions).
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.parallel < 1 or self.alarm_after < 1:
            raise ValueError("max_bytes, parallel and alarm_after must be at least 1")
        if not 0 < self.retry_initial_s <= self.retry_max_s:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s")
        if min(self.poll_s, self.timeout_s, self.deadline_s) <= 0:
            raise ValueError("poll_s, timeout_s and deadline_s must be positive")


@dataclass(frozen=True, slots=True)
class MediaStatus:
    """Where one file the catalog in force names stands."""

    sha256: str
    url: str
    kind: MediaKind
    state: MediaState
    why: str | None = None  # the last problem, while pending or failed
    attempts: int = 0  # fetches tried since the catalog came in force


@dataclass(frozen=True, slots=True)
class _Got:
    content_type: str | None


@dataclass(frozen=True, slots=True)
class _Problem:
    why: str
    final: bool  # True: the file itself is wrong (no retry helps until the catalog changes)


def hub_client(hub: HubSection, token: str | None = None, timeout_s: float = 30.0) -> ClientFactory:
    """Clients that fetch from the hub as the hub link does: its CA, its client certificate,
    and (``token``, for an HTTP hub) its bearer token, sent only to the hub's own origin so
    that a file elsewhere never receives it."""

    def make() -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = hub.verify
        if hub.verify and hub.ca_file is not None:
            verify = ssl.create_default_context(cafile=hub.ca_file)
        if hub.cert_file is not None and hub.key_file is not None:
            if not isinstance(verify, ssl.SSLContext):
                verify = ssl.create_default_context() if hub.verify else _unverified()
            verify.load_cert_chain(hub.cert_file, hub.key_file)
        auth = _HubToken(hub.url, token) if token is not None else None
        return httpx.AsyncClient(
            verify=verify,
            auth=auth,
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=True,
        )

    return make


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _HubToken(httpx.Auth):
    """The hub's bearer token on requests to the hub's origin only (httpx drops it from
    a redirect to another origin by itself)."""

    def __init__(self, hub_url: str, token: str) -> None:
        hub = httpx.URL(hub_url)
        self._origin = (hub.scheme, hub.host, hub.port)
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        if (url.scheme, url.host, url.port) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _plain_client(settings: MediaSettings) -> ClientFactory:
    def make() -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=httpx.Timeout(settings.timeout_s), follow_redirects=True)

    return make


class MediaCache:
    """The e-SOP files of the catalog in force, fetched into ``folder``; see the module.

    ``client`` makes the HTTP client the downloads share (:func:`hub_client` for a hub with
    its own CA or token); ``rng`` jitters the pauses between retries.
    """

    def __init__(
        self,
        core: LineContext,
        folder: Path,
        *,
        settings: MediaSettings | None = None,
        client: ClientFactory | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._core = core
        self.folder = folder
        self.settings = settings or MediaSettings()
        self._client_factory = client or _plain_client(self.settings)
        self._rng = rng or random.Random()
        self._held: dict[str, str | None] = {}  # sha256 -> the type its first bytes tell
        self._wanted: dict[str, list[Media]] = {}  # the catalog's entries, by sha256
        self._status: dict[str, MediaStatus] = {}
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._version: str | None = None  # the catalog version last looked at
        self._look = asyncio.Event()
        self._slots = asyncio.Semaphore(self.settings.parallel)
        self.downloads = 0  # GET requests made, for the tests and the curious

    # -- what others read -------------------------------------------------------------

    def path(self, sha256: str) -> Path | None:
        """The checked copy of the file with this hash, or None when the gateway has none."""
        if sha256 not in self._held:
            return None
        return self.folder / sha256

    def content_type(self, sha256: str) -> str | None:
        """What to serve a held file as: by its first bytes, else by its kind in the catalog."""
        if sha256 not in self._held:
            return None
        entries = self._wanted.get(sha256)
        return content_type_of(self._held[sha256], entries[0].kind if entries else None)

    def status(self, sha256: str) -> MediaStatus | None:
        """Where a file the catalog in force names stands; None for one it does not name."""
        return self._status.get(sha256)

    def statuses(self) -> list[MediaStatus]:
        """Every file the catalog in force names, by hash."""
        return [self._status[sha] for sha in sorted(self._status)]

    @property
    def catalog_version(self) -> str | None:
        """The version of the catalog whose files are being kept (the last one looked at)."""
        return self._version

    def wake(self) -> None:
        """Look at the catalog now rather than at the next poll (after a catalog came in)."""
        self._look.set()

    # -- the background task ----------------------------------------------------------

    async def run(self) -> None:
        """Keep the folder in step with the catalog in force until cancelled."""
        try:
            found = await asyncio.to_thread(_index, self.folder)
        except OSError as exc:
            # The line works without its pictures: say so rather than stop the gateway.
            problem = f"the e-SOP media folder {self.folder} cannot be used: {exc}"
            logger.error("%s", problem)
            self._alarm("folder", problem, Severity.MAJOR, source="gateway")
            return
        for sha, head_type in found.items():
            self._hold(sha, head_type)
        logger.info("e-SOP media: %d file(s) checked in %s", len(found), self.folder)
        async with self._client_factory() as client, asyncio.TaskGroup() as tg:
            try:
                while True:
                    if self._core.catalog.version != self._version:
                        self._take_catalog(client, tg)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.poll_s):
                            await self._look.wait()
                    self._look.clear()
            finally:
                for task in self._fetching.values():
                    task.cancel()

    def _take_catalog(self, client: httpx.AsyncClient, tg: asyncio.TaskGroup) -> None:
        catalog = self._core.catalog
        self._version = catalog.version
        wanted: dict[str, list[Media]] = {}
        for routing in catalog.routings.values():
            for op in routing.operations:
                for media in op.media:
                    entries = wanted.setdefault(media.sha256, [])
                    if all(e.url != media.url for e in entries):
                        entries.append(media)
        self._wanted = wanted
        # A new catalog is a new start for every file not held: one refused may have been
        # put right, one waiting out a long pause may have a new URL.
        for task in self._fetching.values():
            task.cancel()
        self._fetching = {}
        self._status = {}
        for sha, entries in wanted.items():
            first = entries[0]
            state = MediaState.FETCHED if sha in self._held else MediaState.PENDING
            self._status[sha] = MediaStatus(sha, first.url, first.kind, state)
            if state is MediaState.PENDING:
                task = tg.create_task(self._fetch(client, sha), name=f"media {sha[:12]}")
                self._fetching[sha] = task
        self._settle_alarms()
        pending = sum(s.state is MediaState.PENDING for s in self._status.values())
        logger.info(
            "e-SOP media of catalog %s: %d file(s), %d to fetch",
            catalog.version,
            len(wanted),
            pending,
        )

    def _settle_alarms(self) -> None:
        """Clear the alarms of files the catalog no longer names, or that are held now."""
        try:
            raised = self._core.store.fetch_all(
                AlarmRow,
                "SELECT * FROM alarms WHERE kind = ? AND cleared_at IS NULL",
                (ALARM_KIND,),
            )
            settled = [
                (a.alarm_id, sha)
                for a in raised
                if (sha := a.alarm_id.removeprefix(f"{ALARM_KIND}:")) in self._held
                or sha not in self._wanted
            ]
            if not settled:
                return
            with self._core.store.transaction():
                for alarm_id, sha in settled:
                    why = "fetched" if sha in self._held else "no longer in the catalog"
                    clear_alarm(self._core, alarm_id, f"e-SOP file {sha[:12]}… {why}")
        except sqlite3.Error as exc:
            logger.error("e-SOP media: the alarms could not be cleared: %s", exc)

    async def _fetch(self, client: httpx.AsyncClient, sha: str) -> None:
        """Fetch one file until it is held or refused, or the catalog no longer names it."""
        backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s, rng=self._rng)
        attempts = 0
        try:
            while True:
                entries = self._wanted.get(sha)
                if not entries:
                    return
                async with self._slots:
                    outcome = await self._attempt(client, sha, entries)
                attempts += 1
                status = self._status[sha]
                if isinstance(outcome, _Got):
                    self._hold(sha, outcome.content_type)
                    self._status[sha] = replace(
                        status, state=MediaState.FETCHED, why=None, attempts=attempts
                    )
                    self._alarm(sha, None, Severity.WARNING)
                    logger.info("e-SOP file %s fetched", status.url)
                    return
                state = MediaState.FAILED if outcome.final else MediaState.PENDING
                self._status[sha] = replace(status, state=state, why=outcome.why, attempts=attempts)
                if outcome.final:
                    self._alarm(sha, outcome.why, Severity.MAJOR)
                    return
                if attempts == self.settings.alarm_after:
                    self._alarm(
                        sha,
                        f"e-SOP file {status.url} could not be fetched in {attempts} attempts "
                        f"({outcome.why}); the gateway keeps trying",
                        Severity.WARNING,
                    )
                delay = backoff.next()
                logger.warning(
                    "e-SOP file %s: %s; trying again in %.1f s", status.url, outcome.why, delay
                )
                await asyncio.sleep(delay)
        except Exception:  # a bug here must not stop the gateway's other tasks
            logger.exception("e-SOP media: fetching %s failed", sha)
        finally:
            if self._fetching.get(sha) is asyncio.current_task():
                del self._fetching[sha]

    async def _attempt(
        self, client: httpx.AsyncClient, sha: str, entries: list[Media]
    ) -> _Got | _Problem:
        """Each URL the catalog gives for this hash in turn, until one gives the file."""
        problems: list[_Problem] = []
        for media in entries:
            outcome = await self._download(client, media.url, sha)
            if isinstance(outcome, _Got):
                return outcome
            problems.append(outcome)
        retried = [p for p in problems if not p.final]
        return retried[0] if retried else problems[0]

    async def _download(self, client: httpx.AsyncClient, url: str, sha: str) -> _Got | _Problem:
        limit = self.settings.max_bytes
        if urlsplit(url).scheme not in ("http", "https"):
            return _Problem(f"{url} is not an http or https URL", final=True)
        digest = hashlib.sha256()
        body = bytearray()
        self.downloads += 1
        try:
            async with (
                asyncio.timeout(self.settings.deadline_s),
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    return _Problem(f"the hub answered HTTP {response.status_code}", final=False)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    return _Problem(_too_big(url, int(declared), limit), final=True)
                async for chunk in response.aiter_bytes():
                    if len(body) + len(chunk) > limit:
                        return _Problem(_too_big(url, None, limit), final=True)
                    body += chunk
                    digest.update(chunk)
        except httpx.InvalidURL as exc:
            return _Problem(f"{url} is not a URL the gateway can fetch: {exc}", final=True)
        except httpx.HTTPError as exc:
            return _Problem(f"{type(exc).__name__}: {str(exc) or 'no answer'}", final=False)
        except TimeoutError:
            return _Problem(f"not whole within {self.settings.deadline_s:g} s", final=False)
        actual = digest.hexdigest()
        if actual != sha:
            return _Problem(
                f"e-SOP file {url} refused: its SHA-256 is {actual}, the catalog says {sha}; "
                "it is not kept or shown",
                final=True,
            )
        try:
            await asyncio.to_thread(_keep, self.folder, sha, bytes(body))
        except OSError as exc:
            return _Problem(f"it could not be written to {self.folder}: {exc}", final=False)
        return _Got(sniff(bytes(body[:_HEAD])))

    def _hold(self, sha: str, head_type: str | None) -> None:
        self._held[sha] = head_type
        self._core.catalog.media_held.add(sha)

    def _alarm(
        self, sha: str, problem: str | None, severity: Severity, source: str = "hub"
    ) -> None:
        """Raise (``problem``) or clear the file's alarm; a store that cannot write is
        logged, not fatal: the file's status says the same."""
        alarm_id = f"{ALARM_KIND}:{sha}"
        try:
            with self._core.store.transaction():
                if problem is None:
                    clear_alarm(self._core, alarm_id, f"e-SOP file {sha[:12]}… fetched")
                else:
                    raise_alarm(self._core, alarm_id, ALARM_KIND, source, severity, problem)
        except sqlite3.Error as exc:
            logger.error("e-SOP media: alarm %s not recorded: %s", alarm_id, exc)


def _too_big(url: str, size: int | None, limit: int) -> str:
    told = f"{size} bytes" if size is not None else "more"
    return f"e-SOP file {url} refused: {told}, above the limit of {limit} bytes"


def _keep(folder: Path, sha: str, data: bytes) -> None:
    """Write the file under a temporary name, then rename it to its hash: a file named by
    a hash is always a whole one."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{sha[:12]}.", suffix=_PART)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(folder / sha)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _index(folder: Path) -> dict[str, str | None]:
    """The files of ``folder`` that hash to their name, with the type their first bytes
    tell. Downloads a crash cut short are removed, and so is a file whose bytes no longer
    match its name (it is fetched again if the catalog names it)."""
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[str, str | None] = {}
    for path in folder.iterdir():
        name = path.name
        if name.startswith(".") and name.endswith(_PART):
            path.unlink(missing_ok=True)
            continue
        if not _SHA256.match(name) or not path.is_file():
            continue
        digest = hashlib.sha256()
        with path.open("rb") as f:
            head = f.read(_HEAD)
            digest.update(head)
            while block := f.read(MIB):
                digest.update(block)
        if digest.hexdigest() == name:
            found[name] = sniff(head)
        else:
            logger.warning("e-SOP media: %s no longer matches its hash; removed", path)
            path.unlink(missing_ok=True)
    return found


def sniff(head: bytes) -> str | None:
    """The content type the first bytes of a file show, or None when they show none."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<") and b"<svg" in text.lower():
        return "image/svg+xml"
    return None


def content_type_of(head_type: str | None, kind: MediaKind | None) -> str:
    """What to serve a file as: what its bytes show, else what its kind says."""
    if head_type is not None:
        return head_type
    return "application/pdf" if kind == "pdf" else "application/octet-stream"
