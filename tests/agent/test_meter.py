"""The meter: energy by trapezoid with interpolated edges, overlap sharing, idle baseline."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from itertools import pairwise

import pytest

from joulegate_agent.metering.meter import Meter
from tests.agent.fakes.power_traces import BUSY_W, IDLE_W, Trace, bursts, ramp, step

RATE_HZ = 10.0


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def metered_window(trace: Trace, start: float, end: float, phase: float) -> float:
    """Sample the trace at RATE_HZ (first sample at `phase`) with a window over [start, end]."""
    clock = ManualClock()
    meter = Meter(clock)
    key = None
    pending = None
    t = phase
    while pending is None or not pending.done.is_set():
        if key is None and t >= start:
            clock.now = start
            key = meter.open_window()
        if key is not None and pending is None and t >= end:
            clock.now = end
            pending = meter.end_window(key)
        clock.now = t
        meter.add_sample(t, trace.power(t))
        t += 1.0 / RATE_HZ
    return pending.wait(0).energy_j


TRACES = [step(3.0, 33.0), step(5.0, 6.5), bursts(2.0, 0.8, 30), ramp(2.0, 50.0)]


@pytest.mark.parametrize("trace", TRACES, ids=lambda t: t.name)
@pytest.mark.parametrize("length_s", [1.0, 2.0, 5.0, 20.0, 60.0])
def test_window_energy_is_within_one_percent_at_10_hz_for_windows_of_a_second_or_more(
    trace: Trace, length_s: float
) -> None:
    rng = random.Random(f"{trace.name}-{length_s}")
    for _ in range(20):
        start = rng.uniform(1.0, 5.0)
        phase = rng.uniform(0.0, 1.0 / RATE_HZ)
        exact = trace.energy(start, start + length_s)
        measured = metered_window(trace, start, start + length_s, phase)
        assert measured == pytest.approx(exact, rel=0.01)


def test_short_windows_are_metered_with_edges_interpolated_between_samples() -> None:
    trace = ramp(0.0, 10.0)
    exact = trace.energy(4.03, 4.23)
    assert metered_window(trace, 4.03, 4.23, 0.0) == pytest.approx(exact, rel=1e-6)


def test_lifetime_energy_is_the_trapezoid_of_all_samples() -> None:
    meter = Meter()
    meter.add_sample(0.0, 4.0)
    meter.add_sample(1.0, 6.0)
    meter.add_sample(2.0, 6.0)
    assert meter.total_j == pytest.approx(5.0 + 6.0)


def test_a_gap_longer_than_five_seconds_adds_no_energy() -> None:
    meter = Meter()
    meter.add_sample(0.0, 5.0)
    meter.add_sample(10.0, 5.0)
    assert meter.total_j == 0.0


def test_hardware_energy_counter_segments_are_taken_exactly() -> None:
    meter = Meter()
    meter.add_sample(0.0, 5.0)
    meter.add_sample(1.0, 99.0, segment_j=7.0)
    assert meter.total_j == pytest.approx(7.0)


def test_overlapping_windows_never_add_up_to_more_than_the_board_used() -> None:
    clock = ManualClock()
    meter = Meter(clock)
    rng = random.Random(7)
    open_keys: list[int] = []
    pending = []
    for step_index in range(300):
        clock.now = step_index * 0.1 + rng.uniform(0, 0.05)
        if rng.random() < 0.15:
            open_keys.append(meter.open_window())
        if open_keys and rng.random() < 0.1:
            pending.append(meter.end_window(open_keys.pop(rng.randrange(len(open_keys)))))
        clock.now = step_index * 0.1 + 0.05
        meter.add_sample(clock.now, BUSY_W + rng.gauss(0, 0.3))
    pending.extend(meter.end_window(key) for key in open_keys)
    clock.now += 0.1
    meter.add_sample(clock.now, BUSY_W)
    windows_total = sum(p.wait(0).energy_j for p in pending)
    assert len(pending) > 10
    assert windows_total <= meter.total_j + 1e-9


def test_two_fully_overlapping_windows_each_get_half_the_energy() -> None:
    clock = ManualClock()
    meter = Meter(clock)
    meter.add_sample(0.0, 10.0)
    first, second = meter.open_window(), meter.open_window()
    clock.now = 2.0
    meter.add_sample(2.0, 10.0)
    ended = [meter.end_window(first), meter.end_window(second)]
    meter.add_sample(2.1, 10.0)
    assert [p.wait(0).energy_j for p in ended] == pytest.approx([10.0, 10.0])


def test_sum_of_overlapping_window_energies_equals_board_energy_while_busy() -> None:
    clock = ManualClock()
    meter = Meter(clock)
    meter.add_sample(0.0, 9.0)
    clock.now = 0.05
    a = meter.open_window()
    meter.add_sample(0.1, 9.5)
    clock.now = 0.32
    b = meter.open_window()
    meter.add_sample(0.4, 10.5)
    clock.now = 0.61
    ended_a = meter.end_window(a)
    meter.add_sample(0.7, 10.0)
    clock.now = 0.77
    ended_b = meter.end_window(b)
    meter.add_sample(0.8, 9.0)
    points = [(0.0, 9.0), (0.1, 9.5), (0.4, 10.5), (0.7, 10.0), (0.8, 9.0)]
    board = ramp_integral(points, 0.05, 0.77)
    assert ended_a.wait(0).energy_j + ended_b.wait(0).energy_j == pytest.approx(board)


def ramp_integral(points: list[tuple[float, float]], a: float, b: float) -> float:
    """Exact integral of the piecewise-linear function through `points` over [a, b]."""
    total = 0.0
    for (t0, p0), (t1, p1) in pairwise(points):
        lo, hi = max(a, t0), min(b, t1)
        if hi <= lo:
            continue
        slope = (p1 - p0) / (t1 - t0)
        total += (p0 + slope * (lo - t0) + p0 + slope * (hi - t0)) / 2 * (hi - lo)
    return total


def test_idle_baseline_learns_power_with_no_inference_in_flight() -> None:
    meter = Meter()
    for i in range(100):
        meter.add_sample(i * 0.1, IDLE_W)
    assert meter.idle_w == pytest.approx(IDLE_W)


def test_idle_baseline_ignores_power_drawn_during_and_just_after_inference() -> None:
    clock = ManualClock()
    meter = Meter(clock)
    for i in range(60):
        clock.now = i * 0.1
        meter.add_sample(clock.now, IDLE_W)
    key = meter.open_window()
    for i in range(60, 200):
        clock.now = i * 0.1
        meter.add_sample(clock.now, BUSY_W)
    meter.end_window(key)
    for i in range(200, 215):
        clock.now = i * 0.1
        meter.add_sample(clock.now, BUSY_W)
    assert meter.idle_w == pytest.approx(IDLE_W)


def test_marginal_energy_is_energy_above_the_idle_baseline() -> None:
    clock = ManualClock()
    meter = Meter(clock)
    for i in range(50):
        clock.now = i * 0.1
        meter.add_sample(clock.now, IDLE_W)
    key = meter.open_window()
    for i in range(50, 71):
        clock.now = i * 0.1
        meter.add_sample(clock.now, BUSY_W)
    ended = meter.end_window(key)
    meter.add_sample(7.1, BUSY_W)
    window = ended.wait(0)
    assert window.marginal_j == pytest.approx((BUSY_W - IDLE_W) * 2.0, rel=0.03)


def test_marginal_energy_is_unknown_before_any_idle_baseline() -> None:
    clock = ManualClock()
    meter = Meter(clock)
    key = meter.open_window()
    meter.add_sample(0.0, BUSY_W)
    meter.add_sample(1.0, BUSY_W)
    clock.now = 1.0
    ended = meter.end_window(key)
    meter.add_sample(1.1, BUSY_W)
    assert ended.wait(0).marginal_j is None


def test_in_flight_counts_windows_not_yet_ended() -> None:
    meter = Meter()
    first = meter.open_window()
    meter.open_window()
    meter.end_window(first)
    assert meter.in_flight == 1


async def test_close_window_waits_for_the_sampler_to_pass_the_end() -> None:
    meter = Meter()
    meter.add_sample(time.monotonic() - 0.5, 5.0)
    key = meter.open_window()
    threading.Timer(0.2, lambda: meter.add_sample(time.monotonic(), 5.0)).start()
    result = await meter.finish_window(key, timeout=5.0)
    assert result.energy_j == pytest.approx(5.0 * result.duration_s, rel=1e-6)
    assert result.duration_s > 0


async def test_close_window_finishes_anyway_when_no_sample_arrives() -> None:
    meter = Meter()
    key = meter.open_window()
    result = await asyncio.wait_for(meter.finish_window(key, timeout=0.05), 2)
    assert result.energy_j == 0.0


def test_a_window_on_steady_power_read_by_a_power_sensor_has_no_error() -> None:
    clock = ManualClock()
    meter = Meter(clock, resolution_s=0.14)
    for i in range(40):
        clock.now = i * 0.1
        if i == 10:
            clock.now = 1.03
            key = meter.open_window()
        if i == 30:
            clock.now = 2.97
            ended = meter.end_window(key)
        clock.now = i * 0.1
        meter.add_sample(clock.now, 10.0)
    assert ended.wait(0).error_j == 0.0


def test_a_power_step_at_a_windows_edges_is_in_its_bound() -> None:
    clock = ManualClock()
    meter = Meter(clock, resolution_s=0.14)
    for i in range(10):
        meter.add_sample(i * 0.1, IDLE_W)
    clock.now = 0.95
    key = meter.open_window()
    for i in range(10, 30):
        meter.add_sample(i * 0.1, BUSY_W)
    clock.now = 2.95
    ended = meter.end_window(key)
    for i in range(30, 40):
        meter.add_sample(i * 0.1, IDLE_W)
    window = ended.wait(0)
    exact = BUSY_W * 2.0  # the board stepped at 0.95 s and back at 2.95 s
    assert abs(window.energy_j - exact) <= window.error_j
    assert window.error_j < 0.2 * exact


async def test_a_window_no_sample_reached_is_bounded_by_the_time_it_missed() -> None:
    meter = Meter()
    meter.add_sample(time.monotonic() - 0.5, 5.0)
    meter.add_sample(time.monotonic(), 5.0)
    key = meter.open_window()
    await asyncio.sleep(0.1)  # the sampler has stopped: nothing is counted from here on
    result = await asyncio.wait_for(meter.finish_window(key, timeout=0.1), 2)
    assert result.duration_s >= 0.1
    assert result.error_j >= 5.0 * result.duration_s


LENGTHS_S = (0.2, 0.3, 0.5, 0.8, 1.0, 2.0, 3.0)
"""Each at least one sampling interval long: a shorter one can fall between two readings of a
power sensor and leave no trace (a counter does see it)."""


def averaging_sensor_windows(
    rate_hz: float, update_s: float, seed: int
) -> list[tuple[float, float]]:
    """(metered - true, bound) for windows on a sensor whose reading averages its last update_s.

    The board steps between idle and a load at each window's edges; the sensor (an INA3221 with
    its averaging) shows the mean power over the update_s before each read.
    """
    rng = random.Random(seed)
    changes: list[tuple[float, float]] = [(-1e9, IDLE_W)]

    def energy(a: float, b: float) -> float:
        total = 0.0
        for (t, w), (t_next, _) in pairwise([*changes, (1e9, 0.0)]):
            total += w * max(0.0, min(b, t_next) - max(a, t))
        return total

    def power(t: float) -> float:
        return [w for at, w in changes if at <= t][-1]

    clock = ManualClock()
    meter = Meter(clock, resolution_s=update_s)
    next_t = rng.uniform(0.0, 1.0 / rate_hz)

    def sample_until(t: float) -> None:
        nonlocal next_t
        while next_t <= t:
            reading = energy(next_t - update_s, next_t) / update_s if update_s else power(next_t)
            meter.add_sample(next_t, reading)
            next_t += 1.0 / rate_hz + rng.uniform(0.0, 0.004)
        clock.now = t

    found = []
    for _ in range(30):
        start = clock.now + rng.uniform(0.3, 1.5)
        end = start + rng.choice([d for d in LENGTHS_S if d >= 1.0 / rate_hz])
        sample_until(start)
        changes.append((start, BUSY_W * rng.uniform(0.8, 1.2)))
        key = meter.open_window()
        sample_until(end)
        changes.append((end, IDLE_W))
        ended = meter.end_window(key)
        sample_until(end + 0.5)
        window = ended.wait(0)
        found.append((window.energy_j - energy(start, end), window.error_j))
    return found


@pytest.mark.parametrize("rate_hz", [2.0, 4.0, 10.0, 30.0])
@pytest.mark.parametrize("update_s", [0.0, 0.14, 0.5])
def test_the_error_bound_of_an_averaging_power_sensor_holds_for_every_window(
    rate_hz: float, update_s: float
) -> None:
    windows = [w for seed in range(4) for w in averaging_sensor_windows(rate_hz, update_s, seed)]
    assert all(abs(error) <= bound for error, bound in windows)
