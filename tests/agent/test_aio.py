"""Waiting for an event with a time limit, the same on Python 3.10 and 3.13."""

from __future__ import annotations

import asyncio

import pytest

from joulegate_agent.aio import wait_set


async def test_a_cancel_that_arrives_as_the_event_is_set_still_cancels() -> None:
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_set(event, 10))
    await asyncio.sleep(0)
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_it_says_whether_the_event_was_set_in_time() -> None:
    event = asyncio.Event()
    assert not await wait_set(event, 0.01)
    event.set()
    assert await wait_set(event, 0.01)
