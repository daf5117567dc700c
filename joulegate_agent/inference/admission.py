"""Admission: whether a metered request may run now, asked by the proxy and the batch runner.

An interactive request needs the gate open: without `X-Joulegate-Defer-Until` a closed gate
refuses it at once; with one it waits in the bounded deferral queue until the gate opens or its
deadline passes. Then it needs a slot under the optional concurrency limit (waiting for one until
the same deadline). Batch work runs only while the gate admits batch work and no interactive
request waits for a slot, and takes a slot only if one is free.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joulegate_agent.errors import JoulegateError
from joulegate_agent.inference.gate import Gate, GateSnapshot

RETRY_AFTER_S = 60


class QueueFullError(JoulegateError):
    """The deferral queue is at capacity."""


class Refusal(JoulegateError):
    """A request admission turned away: the answer's status, code and message, how long the
    client should wait before trying again, and the gate's reason when the gate refused it."""

    def __init__(
        self,
        http_status: int,
        code: str,
        message: str,
        *,
        retry_after_s: int,
        gate_open: bool,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.gate_open = gate_open
        self.reason = reason


@dataclass(slots=True, eq=False)
class _Waiter:
    enqueued_at: float
    future: asyncio.Future[bool]


class DeferralQueue:
    """Bounded FIFO of requests waiting for the gate to open, each with its own deadline.

    `wait(deadline)` returns True when the gate opens (waiters are released in arrival order) and
    False when the deadline passes first. It raises QueueFullError when `capacity` requests are
    already waiting.
    """

    def __init__(
        self, gate: Gate, capacity: int = 32, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self._gate = gate
        self._capacity = capacity
        self._clock = clock
        self._waiters: deque[_Waiter] = deque()
        self._remove_listener = gate.add_listener(self._on_gate)

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._waiters)

    @property
    def oldest_wait_s(self) -> float | None:
        if not self._waiters:
            return None
        return max(0.0, self._clock() - self._waiters[0].enqueued_at)

    def snapshot(self) -> dict[str, Any]:
        """The API's `queue` object."""
        oldest = self.oldest_wait_s
        return {
            "length": len(self._waiters),
            "capacity": self._capacity,
            "oldest_wait_s": round(oldest, 3) if oldest is not None else None,
        }

    async def wait(self, deadline: float) -> bool:
        """Wait until the gate opens (True) or the monotonic `deadline` passes (False)."""
        if self._gate.is_open:
            return True
        timeout = deadline - self._clock()
        if timeout <= 0:
            return False
        if len(self._waiters) >= self._capacity:
            raise QueueFullError(f"deferral queue is full ({self._capacity} waiting)")
        waiter = _Waiter(self._clock(), asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except asyncio.TimeoutError:
            return waiter.future.done() and waiter.future.result()
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not waiter.future.done():
                waiter.future.cancel()

    def close(self) -> None:
        """Release every waiter as not admitted and stop following the gate (shutdown)."""
        self._remove_listener()
        self.release_waiting()

    def release_waiting(self) -> None:
        """Release every waiter now as not admitted (the server shuts down)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(False)

    def _on_gate(self, state: GateSnapshot) -> None:
        if not state.open:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(True)


class ConcurrencyLimit:
    """At most `limit` inferences in flight (None: no limit). Waiters are served in FIFO order:
    a released slot passes straight to the oldest waiter, so newcomers cannot jump the queue."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot (batch work lets them go first)."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        if self.limit is not None and (self.in_use >= self.limit or self._waiters):
            return False
        self.in_use += 1
        return True

    async def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a slot."""
        if self.try_acquire():
            return True
        if timeout <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        granted = False
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            granted = True
        except asyncio.TimeoutError:
            granted = future.done() and not future.cancelled()  # granted at the last instant
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was passed to us as we were cancelled: hand it on
            raise
        finally:
            if future in self._waiters:
                self._waiters.remove(future)
            if not future.done():
                future.cancel()
        return granted

    def set_limit(self, limit: int | None) -> None:
        """A new limit (the concurrency power level); waiters it makes room for go at once."""
        self.limit = limit
        while self._waiters and (limit is None or self.in_use < limit):
            future = self._waiters.popleft()
            if not future.done():
                self.in_use += 1
                future.set_result(None)

    def release(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes to this waiter
                return
        self.in_use = max(0, self.in_use - 1)


class Admission:
    """The gate, the deferral queue and the concurrency limit, asked as one: `admit` before a
    proxied request runs, `try_admit_batch` before a batch request does, `release` after."""

    def __init__(self, gate: Gate, queue: DeferralQueue, limit: ConcurrencyLimit) -> None:
        self.gate = gate
        self.queue = queue
        self.limit = limit

    async def admit(self, deadline: float | None) -> None:
        """Return holding a slot once the gate and the limit let the request run; raise Refusal
        when they do not by the monotonic `deadline` (None: the request does not wait)."""
        if not self.gate.is_open:
            if deadline is None:
                raise self._gate_closed("The inference gate is closed.")
            try:
                opened = await self.queue.wait(deadline)
            except QueueFullError:
                raise self._gate_closed(
                    f"The inference gate is closed and the deferral queue is full "
                    f"({self.queue.capacity} waiting).",
                    code="queue_full",
                ) from None
            if not opened:
                raise self._gate_closed(
                    "The inference gate stayed closed until the request's deadline."
                )
        if not self.limit.try_acquire():
            remaining = 0.0 if deadline is None else deadline - time.monotonic()
            if not await self.limit.acquire(remaining):
                raise Refusal(
                    429,
                    "too_many_inferences",
                    f"{self.limit.limit} inferences are already running; try again shortly.",
                    retry_after_s=1,
                    gate_open=True,
                )

    @property
    def admits_batch(self) -> bool:
        """Batch work may start: the gate admits it and no interactive request waits for a slot
        (requests waiting for the gate itself wait for the sun, which a batch-only lease is not)."""
        return self.gate.admits_batch and self.limit.waiting == 0

    def try_admit_batch(self) -> bool:
        """Take a slot for a batch request if one is free now (`release` it after)."""
        return self.limit.try_acquire()

    def release(self) -> None:
        self.limit.release()

    def _gate_closed(self, message: str, code: str = "gate_closed") -> Refusal:
        state = self.gate.state()
        retry_after = RETRY_AFTER_S
        remaining = state.lease_remaining_s
        if state.fallback_open and remaining is not None:
            retry_after = max(1, min(RETRY_AFTER_S, math.ceil(remaining)))
        return Refusal(
            503, code, message, retry_after_s=retry_after, gate_open=False, reason=state.reason
        )
