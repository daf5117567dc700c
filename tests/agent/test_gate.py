"""The gate's lease state machine and its deferral queue."""

from __future__ import annotations

import asyncio

import pytest

from joulegate_agent.inference.admission import ConcurrencyLimit, DeferralQueue, QueueFullError
from joulegate_agent.inference.gate import Gate, GateSnapshot


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_gate_starts_closed_at_its_fallback_and_says_why() -> None:
    state = Gate().state()
    assert (state.open, state.source, state.fallback_open) == (False, "fallback", False)
    assert "no lease" in state.reason
    assert state.lease_expires_at is None
    assert state.lease_remaining_s is None


def test_a_gate_configured_to_fall_back_open_starts_open() -> None:
    state = Gate(fallback_open=True).state()
    assert (state.open, state.source) == (True, "fallback")


def test_a_lease_opens_the_gate_for_its_duration() -> None:
    clock = FakeClock()
    gate = Gate(clock=clock)
    gate.set(open=True, lease_s=60, reason="surplus 250 W")
    clock.now += 59.5
    state = gate.state()
    assert (state.open, state.source, state.reason) == (True, "lease", "surplus 250 W")
    assert state.lease_remaining_s == pytest.approx(0.5)
    assert state.lease_expires_at is not None


def test_an_expired_lease_falls_back_closed_and_says_the_lease_ran_out() -> None:
    clock = FakeClock()
    gate = Gate(clock=clock)
    gate.set(open=True, lease_s=60, reason="surplus")
    clock.now += 60
    state = gate.state()
    assert (state.open, state.source) == (False, "fallback")
    assert "lease ran out" in state.reason
    assert "fallback closed" in state.reason
    assert state.lease_remaining_s is None


def test_an_expired_closing_lease_falls_back_open_when_so_configured() -> None:
    clock = FakeClock()
    gate = Gate(fallback_open=True, clock=clock)
    gate.set(open=False, lease_s=10, reason="battery first")
    assert gate.is_open is False
    clock.now += 10
    assert gate.is_open is True
    assert "fallback open" in gate.state().reason


def test_renewing_a_lease_extends_it() -> None:
    clock = FakeClock()
    gate = Gate(clock=clock)
    gate.set(open=True, lease_s=60, reason="surplus")
    clock.now += 50
    gate.set(open=True, lease_s=60, reason="surplus")
    clock.now += 50
    assert gate.is_open is True


async def test_the_expiry_timer_notifies_listeners_without_anyone_reading() -> None:
    gate = Gate()
    changes: list[GateSnapshot] = []
    gate.add_listener(changes.append)
    gate.set(open=True, lease_s=0.05, reason="surplus")
    await asyncio.sleep(0.15)
    assert [(c.open, c.source) for c in changes] == [(True, "lease"), (False, "fallback")]
    assert "lease ran out" in changes[-1].reason
    gate.close()


def test_listeners_hear_changes_but_not_identical_renewals() -> None:
    gate = Gate()
    changes: list[GateSnapshot] = []
    remove = gate.add_listener(changes.append)
    gate.set(open=True, lease_s=60, reason="surplus")
    gate.set(open=True, lease_s=60, reason="surplus")
    gate.set(open=False, lease_s=60, reason="cloud")
    remove()
    gate.set(open=True, lease_s=60, reason="sun again")
    assert [(c.open, c.reason) for c in changes] == [(True, "surplus"), (False, "cloud")]


def test_changed_at_moves_only_when_open_changes() -> None:
    gate = Gate()
    gate.set(open=True, lease_s=60, reason="a")
    first = gate.state().changed_at
    gate.set(open=True, lease_s=60, reason="b")
    assert gate.state().changed_at == first


def test_a_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Gate().set(open=True, lease_s=0)


def test_gate_json_has_the_contract_fields() -> None:
    gate = Gate()
    gate.set(open=True, lease_s=30, reason="surplus")
    assert set(gate.state().to_json()) == {
        "open",
        "source",
        "reason",
        "lease_expires_at",
        "lease_remaining_s",
        "fallback_open",
        "changed_at",
        "scope",
        "batch_open",
    }


# -- deferral queue ------------------------------------------------------------------------------


async def test_a_waiter_is_released_when_the_gate_opens() -> None:
    gate = Gate()
    queue = DeferralQueue(gate, capacity=4)
    waiter = asyncio.ensure_future(queue.wait(asyncio.get_running_loop().time() + 5))
    await asyncio.sleep(0.01)
    assert len(queue) == 1
    gate.set(open=True, lease_s=60)
    assert await waiter is True
    assert len(queue) == 0


async def test_a_waiter_times_out_at_its_deadline() -> None:
    queue = DeferralQueue(Gate(), capacity=4)
    started = asyncio.get_running_loop().time()
    assert await queue.wait(started + 0.1) is False
    assert asyncio.get_running_loop().time() - started == pytest.approx(0.1, abs=0.05)
    assert len(queue) == 0


async def test_an_open_gate_admits_without_queueing() -> None:
    queue = DeferralQueue(Gate(fallback_open=True), capacity=0)
    assert await queue.wait(asyncio.get_running_loop().time() + 1) is True


async def test_a_deadline_already_past_is_refused_at_once() -> None:
    queue = DeferralQueue(Gate(), capacity=4)
    assert await queue.wait(asyncio.get_running_loop().time() - 1) is False


async def test_waiters_are_released_in_arrival_order() -> None:
    gate = Gate()
    queue = DeferralQueue(gate, capacity=8)
    order: list[int] = []
    deadline = asyncio.get_running_loop().time() + 5

    async def wait(n: int) -> None:
        await queue.wait(deadline)
        order.append(n)

    tasks = []
    for n in range(5):
        tasks.append(asyncio.ensure_future(wait(n)))
        await asyncio.sleep(0.001)
    gate.set(open=True, lease_s=60)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_a_full_queue_refuses_another_waiter() -> None:
    queue = DeferralQueue(Gate(), capacity=2)
    deadline = asyncio.get_running_loop().time() + 5
    waiters = [asyncio.ensure_future(queue.wait(deadline)) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFullError):
        await queue.wait(deadline)
    queue.close()
    assert await asyncio.gather(*waiters) == [False, False]


async def test_queue_reports_its_length_and_oldest_wait() -> None:
    clock = FakeClock()
    queue = DeferralQueue(Gate(), capacity=3, clock=clock)
    assert queue.snapshot() == {"length": 0, "capacity": 3, "oldest_wait_s": None}
    waiter = asyncio.ensure_future(queue.wait(clock.now + 100))
    await asyncio.sleep(0)
    clock.now += 2.5
    assert queue.snapshot() == {"length": 1, "capacity": 3, "oldest_wait_s": 2.5}
    queue.close()
    assert await waiter is False


# -- concurrency limit ---------------------------------------------------------------------------


def test_no_limit_admits_everything() -> None:
    limit = ConcurrencyLimit(None)
    assert all(limit.try_acquire() for _ in range(100))


async def test_a_released_slot_passes_to_the_oldest_waiter_first() -> None:
    limit = ConcurrencyLimit(1)
    assert limit.try_acquire()
    first = asyncio.ensure_future(limit.acquire(5))
    await asyncio.sleep(0.01)
    assert limit.try_acquire() is False  # a waiter is ahead of newcomers
    second = asyncio.ensure_future(limit.acquire(5))
    await asyncio.sleep(0.01)
    limit.release()
    assert await first is True
    assert not second.done()
    limit.release()
    assert await second is True
    limit.release()
    assert limit.in_use == 0


async def test_a_slot_waiter_gives_up_at_its_timeout() -> None:
    limit = ConcurrencyLimit(1)
    assert limit.try_acquire()
    assert await limit.acquire(0.05) is False
    limit.release()
    assert limit.try_acquire() is True


async def test_a_raised_concurrency_limit_lets_waiters_in_at_once() -> None:
    limit = ConcurrencyLimit(1)
    assert limit.try_acquire()
    waiting = asyncio.ensure_future(limit.acquire(timeout=5.0))
    await asyncio.sleep(0)
    assert not waiting.done()
    limit.set_limit(2)
    assert await asyncio.wait_for(waiting, 1.0)
    assert limit.in_use == 2
