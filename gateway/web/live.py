"""Live screens: what changed on the line, pushed to the browser as server-sent events.

A stream sends whole snapshots (a station's screen, the board), never deltas. A page that
reconnects sends its ``Last-Event-ID`` and gets the newest snapshot at once when anything
changed since the one it holds, so it misses nothing; a slow page skips intermediate
states instead of queueing them, and the gateway holds no backlog per page.

What wakes a stream: each commit that emitted events (the outbox tells :class:`Changes`,
after the commit, so a page never shows what could still roll back), and the floor's
changes that emit none (a device's last word, a scale reading, a device connecting).
An event that names a station wakes that station's screen at once and the others a little
later: their queue may have moved, which can wait half a second; the board is recomputed
once for every open board (gateway/web/board.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

# Events that change nothing a screen shows.
_QUIET = frozenset({"kpi.snapshot"})
# A comment line this often keeps proxies and the page's own watchdog from taking a quiet
# stream for a dead one.
HEARTBEAT_S = 15.0
# A commit with more events than this wakes every screen without reading them.
_READ_AT_MOST = 32


class Changes:
    """Counters of what changed: one for the line, one per station. A stream remembers
    the counters it has shown and sleeps until one of them moves."""

    def __init__(self) -> None:
        self.version = 0
        self.stations: dict[str, int] = {}  # station → the version of its last change
        # Changes once per process, so an id from before a restart is never taken for
        # one of this process's.
        self.boot = secrets.token_hex(3)
        self._wake = asyncio.Event()
        self.closing = False

    def touch(self, station: str | None = None) -> None:
        """Something changed at ``station`` (None: for every station)."""
        self.version += 1
        if station is not None:
            self.stations[station] = self.version
        self._wake.set()
        self._wake = asyncio.Event()

    def committed(self, events: Sequence[tuple[int, str, bytes]]) -> None:
        """The outbox's listener: the stations named by a commit's events."""
        if len(events) > _READ_AT_MOST:
            # A burst (intake): every screen looks again; reading each event would cost
            # intake more than it saves the screens.
            self.touch(None)
            return
        touched: set[str | None] = set()
        for _, type_, body in events:
            if type_ in _QUIET:
                continue
            station = json.loads(body).get("data", {}).get("station")
            touched.add(station if isinstance(station, str) else None)
        if None in touched:
            self.touch(None)
        for station in touched:
            if station is not None:
                self.touch(station)

    def close(self) -> None:
        """The gateway stops: end every stream, so the server need not wait for them."""
        self.closing = True
        self._wake.set()

    async def wait(self, seconds: float) -> None:
        """Until the next change, or ``seconds``."""
        wake = self._wake
        try:
            async with asyncio.timeout(seconds):
                await wake.wait()
        except TimeoutError:
            pass


# A snapshot as JSON text, and the outbox seq it reflects: text, so that one board
# serialised once is sent as it is to every board that shows it.
Snapshot = Callable[[], Awaitable[tuple[str, int]]]


def as_json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


async def _frames(
    changes: Changes,
    kind: str,
    snapshot: Snapshot,
    last_id: str | None,
    *,
    station: str | None,
    poll_s: Callable[[], float | None],
    own_gap_s: float,
    other_gap_s: float,
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    sent_body: str | None = None
    seen_own = seen_all = -1  # the versions the last snapshot shows
    last_at = 0.0
    quiet_until = loop.time() + HEARTBEAT_S
    first = True
    while not changes.closing:
        seen_all = changes.version
        seen_own = changes.stations.get(station, 0) if station is not None else seen_all
        body, seq = await snapshot()
        frame_id = f"{changes.boot}.{seq}.{changes.version}"
        # The page's copy is current when it names this snapshot's id: nothing to resend.
        if body != sent_body and not (first and last_id == frame_id):
            yield f"id: {frame_id}\nevent: {kind}\ndata: {body}\n\n"
            quiet_until = loop.time() + HEARTBEAT_S
        first = False
        sent_body = body
        last_at = loop.time()
        while not changes.closing:
            now = loop.time()
            if now >= quiet_until:
                yield ": keep-alive\n\n"
                quiet_until = now + HEARTBEAT_S
            # Coalesce: at most one snapshot per gap; a change of this station's own comes
            # through quicker than one elsewhere on the line.
            own = changes.stations.get(station, 0) if station is not None else changes.version
            poll = poll_s()
            due: float | None = None
            if own != seen_own:
                due = last_at + own_gap_s
            elif changes.version != seen_all:
                due = last_at + other_gap_s
            elif poll is not None:
                due = last_at + poll
            if due is not None and now >= due:
                break
            await changes.wait(min(quiet_until, due if due is not None else quiet_until) - now)


def stream(
    request: Request,
    changes: Changes,
    kind: str,
    snapshot: Snapshot,
    *,
    station: str | None = None,
    poll_s: Callable[[], float | None] = lambda: None,
    own_gap_s: float = 0.05,
    other_gap_s: float = 0.5,
) -> StreamingResponse:
    """A server-sent event stream of ``snapshot()`` of ``kind``: one now (unless the page's
    Last-Event-ID names it), then one after each change that alters it. ``station``: only
    that station's changes come quickly, the rest after ``other_gap_s``; ``poll_s``, when
    it gives a number, looks again that often whatever changed (a live scale)."""
    last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    frames = _frames(
        changes,
        kind,
        snapshot,
        last_id,
        station=station,
        poll_s=poll_s,
        own_gap_s=own_gap_s,
        other_gap_s=other_gap_s,
    )
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
