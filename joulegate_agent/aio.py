"""asyncio helpers that behave the same on every Python the agent runs on (3.10 and newer)."""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `event`; True if it was set.

    Not asyncio.wait_for: before Python 3.12 it swallows a cancellation that arrives while the
    event is being set, so a loop that waits this way outlives the task.cancel() meant to end it
    (the agent's shutdown then waited for it forever on Python 3.10).
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return bool(done)
