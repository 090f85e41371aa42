"""``keep_cancellation``: a stop is not lost when a device's reply arrives at the same
moment (Python 3.11's ``asyncio.wait_for``, which pymodbus and asyncua wait through,
returns the reply then; CPython gh-86296)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from drivers.base import keep_cancellation

LOSES_CANCELLATIONS = sys.version_info < (3, 12)


async def _poll(reply: asyncio.Future[bytes], *, kept: bool) -> bytes:
    if kept:
        async with keep_cancellation(), asyncio.timeout(5.0):
            return await asyncio.wait_for(reply, 5.0)  # noqa: TID251 - as the libraries do
    return await asyncio.wait_for(reply, 5.0)  # noqa: TID251 - as the libraries do


async def _reply_and_cancel(kept: bool) -> asyncio.Task[bytes]:
    reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_poll(reply, kept=kept))
    await asyncio.sleep(0)  # the task now waits for the reply
    reply.set_result(b"\x01\x03")
    task.cancel()
    await asyncio.wait([task])
    return task


async def test_a_cancellation_that_meets_a_reply_still_cancels() -> None:
    task = await _reply_and_cancel(kept=True)
    assert task.cancelled()


async def test_without_it_the_library_hands_back_the_reply() -> None:
    # The reason for the helper, on this interpreter.
    task = await _reply_and_cancel(kept=False)
    if LOSES_CANCELLATIONS:
        assert not task.cancelled() and task.result() == b"\x01\x03"
    else:
        assert task.cancelled()


async def test_its_own_timeout_meeting_a_reply_is_not_taken_for_a_stop() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[bytes] = loop.create_future()

    async def poll() -> bytes:
        async with keep_cancellation(), asyncio.timeout(None) as timeout:
            # The reply and the expiry land in the same loop turn.
            loop.call_soon(reply.set_result, b"\x01\x03")
            timeout.reschedule(loop.time())
            got = await asyncio.wait_for(reply, 5.0)  # noqa: TID251 - as the libraries do
        assert timeout.expired() == LOSES_CANCELLATIONS  # the race did happen
        return got

    assert await poll() == b"\x01\x03"


async def test_a_cancellation_without_a_reply_is_untouched() -> None:
    reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_poll(reply, kept=True))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
