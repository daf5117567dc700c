"""The event bus behind `GET /api/v1/events`: `inference`, `gate` and `power` events fanned out
to each SSE client's queue."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

_LOGGER = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 256


class Subscription:
    """One SSE client's queue of (event, data); None means the stream is over."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(
            EVENT_QUEUE_SIZE
        )

    async def get(self, timeout: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """The next event; raises asyncio.TimeoutError after `timeout` seconds without one."""
        return await asyncio.wait_for(self.queue.get(), timeout)

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    """Fan-out of `inference` and `gate` events to SSE subscribers. A subscriber that falls
    EVENT_QUEUE_SIZE events behind is dropped (its stream ends) rather than slowing the agent."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait((event, data))
            except asyncio.QueueFull:
                _LOGGER.warning("Dropping an event subscriber that fell behind")
                self._end(sub)

    def close(self) -> None:
        for sub in list(self._subscribers):
            self._end(sub)

    def _end(self, sub: Subscription) -> None:
        self.unsubscribe(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)
