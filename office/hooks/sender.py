"""Send the webhooks' outbox: one POST per row, signed, with a deadline per attempt.

2xx: done. 4xx other than 408 and 429: given up at once (the receiver refuses this body; it
will refuse it again) and recorded. 408, 429, 5xx, a timeout or a refused connection: tried
again after ``first_retry_s``, doubled each time up to ``max_retry_s`` (a ``Retry-After`` in
seconds, when longer, is honoured up to that cap); after ``max_attempts`` given up and
recorded. Each stream (a hook and a line) goes in its own task, its rows one after the
other, so a slow receiver holds back only its own stream, and the receive path never waits
for any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from office.hooks import outbox
from office.hooks.outbox import Delivery, State
from office.hooks.sign import SIGNATURE_HEADER, sign
from office.hooks.spec import HookSpec
from office.store import Store, StoreUnavailable

__all__ = ["HookTally", "Sender"]

log = logging.getLogger(__name__)
_PRUNE_EVERY_S = 3600.0


@dataclass
class HookTally:
    """What this instance's sender did since it started, by hook (metrics)."""

    sent: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    given_up: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Outcome:
    state: State
    status: int | None
    error: str | None
    wait_s: float | None = None  # a Retry-After the receiver asked for


class Sender:
    def __init__(
        self,
        store: Store,
        hooks: Sequence[HookSpec],
        now: Callable[[], datetime],
        wake: asyncio.Event | None = None,
        poll_s: float = 1.0,
        batch: int = 32,
        per_stream: int = 16,
        keep_done_days: float = 7.0,
        keep_failed_days: float = 30.0,
    ) -> None:
        self._store = store
        self._hooks = {hook.name: hook for hook in hooks}
        self._now = now
        self.wake = wake or asyncio.Event()
        self._poll_s = poll_s
        self._batch = batch  # streams per round
        self._per_stream = per_stream  # rows of one stream per round, sent one by one
        # Longer than a stream's round can take: a live sender's rows are never taken from it.
        self._lease_s = max((h.timeout_s for h in hooks), default=10.0) * per_stream + 30.0
        self._keep = (keep_done_days, keep_failed_days)
        self.tally = HookTally()
        self.instance = uuid.uuid4().hex[:8]

    async def run(self) -> None:
        """Until cancelled."""
        if not self._hooks:
            return
        pruned_at = -_PRUNE_EVERY_S
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while True:
                try:
                    if time.monotonic() - pruned_at >= _PRUNE_EVERY_S:
                        await self.prune()
                        pruned_at = time.monotonic()
                    sent = await self.send_due(client)
                except StoreUnavailable as exc:
                    log.warning("webhooks: %s; trying again", exc)
                    sent = 0
                if sent == 0:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll_s):
                            await self.wake.wait()

    async def prune(self) -> int:
        """Delete the rows sent or given up long enough ago; how many went."""
        async with self._store.transaction() as conn:
            return await outbox.prune(conn, self._now(), *self._keep)

    async def send_due(self, client: httpx.AsyncClient) -> int:
        """One round: claim the due streams, send each in its own task (its rows one after
        the other); how many attempts were made."""
        async with self._store.transaction() as conn:
            streams = await outbox.claim(
                conn, list(self._hooks), self._now(), self._lease_s, self._batch, self._per_stream
            )
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._stream(client, rows)) for rows in streams]
        return sum(task.result() for task in tasks)

    async def _stream(self, client: httpx.AsyncClient, rows: list[Delivery]) -> int:
        """Send in order until a row is to be tried again (the rest wait behind it); the
        outcomes go in one transaction."""
        hook = self._hooks[rows[0].hook]
        finished: list[tuple[Delivery, State, datetime, _Outcome, datetime | None]] = []
        for delivery in rows:
            result = await self._attempt(client, hook, delivery)
            now = self._now()
            attempts = delivery.attempts + 1
            state, next_at = result.state, None
            if state is State.PENDING and attempts >= hook.max_attempts:
                state = State.FAILED
            elif state is State.PENDING:
                wait = hook.retry_after(attempts)
                if result.wait_s is not None:
                    wait = min(max(wait, result.wait_s), hook.max_retry_s)
                next_at = now + timedelta(seconds=wait)
            finished.append((delivery, state, now, result, next_at))
            if state is State.PENDING:
                break
        try:
            async with self._store.transaction() as conn:
                for delivery, state, now, result, next_at in finished:
                    await outbox.finish(
                        conn, delivery.id, state, now, result.status, result.error, next_at
                    )
                await outbox.release(conn, [d.id for d in rows[len(finished) :]])
        except StoreUnavailable as exc:
            # The leases run out and the rows are sent again: the receiver has their keys.
            log.warning("webhook %s: outcomes not recorded: %s", hook.name, exc)
            return len(finished)
        for delivery, state, _, result, _ in finished:
            self._count(hook, delivery, state, result)
        return len(finished)

    def _count(self, hook: HookSpec, delivery: Delivery, state: State, result: _Outcome) -> None:
        if state is State.DONE:
            self.tally.sent[hook.name] += 1
        elif state is State.FAILED:
            self.tally.given_up[hook.name] += 1
            log.warning(
                "webhook %s gave up %s (%s) after %d attempt(s): %s",
                hook.name, delivery.key, delivery.type, delivery.attempts + 1, result.error,
            )  # fmt: skip
        else:
            self.tally.retried[hook.name] += 1

    async def _attempt(
        self, client: httpx.AsyncClient, hook: HookSpec, delivery: Delivery
    ) -> _Outcome:
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery.key,
            "X-Linegate-Event": delivery.type,
            "X-Linegate-Hook": hook.name,
            "X-Linegate-Attempt": str(delivery.attempts + 1),
            SIGNATURE_HEADER: sign(hook.secret, int(self._now().timestamp()), body),
        }
        try:
            # The deadline covers the whole attempt, a receiver that trickles its answer too.
            async with asyncio.timeout(hook.timeout_s):
                response = await client.post(
                    hook.url, content=body, headers=headers, timeout=hook.timeout_s
                )
        except (TimeoutError, httpx.TimeoutException):
            return _Outcome(State.PENDING, None, f"no answer within {hook.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return _Outcome(State.PENDING, None, f"{type(exc).__name__}: {exc}"[:300])
        code = response.status_code
        if 200 <= code < 300:
            return _Outcome(State.DONE, code, None)
        error = f"HTTP {code}: {response.text[:300]}"
        if 400 <= code < 500 and code not in (408, 429):
            return _Outcome(State.FAILED, code, error)
        retry_after = response.headers.get("retry-after", "")
        wait = float(retry_after) if retry_after.isdigit() else None
        return _Outcome(State.PENDING, code, error, wait)
