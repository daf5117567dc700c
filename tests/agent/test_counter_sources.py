"""Energy counters that move in steps (NVML about every 100 ms; RAPL here too), read at any rate.

The world is a RAPL tree on a fake clock (fakes/counter_world.py): its counter shows the energy
used up to its last step, so a change taken over less than a step is noise, and every window's
edges are blurred by a step and by the sampling interval.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from joulegate_agent.cli.measure import measure_command
from joulegate_agent.metering.meter import Meter
from joulegate_agent.metering.sampler import Sampler
from joulegate_agent.metering.sources.rapl import detect_rapl
from joulegate_agent.metering.sysfs import SysfsRoot
from tests.agent.fakes import counter_world
from tests.agent.fakes import sysfs_trees as trees
from tests.agent.fakes.counter_world import SteppingCounter

IDLE_W = 124.0
LOAD_W = 400.0
RATES_HZ = (10.0, 4.0, 7.0, 13.0, 30.0)
WAKE_LATE_S = 0.004
"""The sampler thread wakes up to this late, as a real one does (so 10 Hz is not phase-locked)."""
MAX_BOUND_OVER_MEAN_ERROR = 3.0
"""Measured: 2.98 at 10 Hz, 1.7 to 2.8 at the other rates. Where the error is mostly a step's lag
at each edge, uniformly spread, the worst case of their difference is already about 3 times its
mean: 10 Hz, where the readings say nothing of the counter's phase, sits at that limit (3.02 with
phases 0.01, 0.033, 0.067 and 0.09 s instead)."""


def world(
    tmp_path: Path, phase_s: float = 0.037, start_uj: int = counter_world.START_UJ
) -> SteppingCounter:
    return SteppingCounter(tmp_path, IDLE_W, phase_s=phase_s, start_uj=start_uj)


def test_a_counter_source_measures_how_often_its_counter_moves(tmp_path: Path) -> None:
    counter = world(tmp_path)
    source = detect_rapl(SysfsRoot(tmp_path), counter, counter.sleep)
    assert source.info.resolution_s == pytest.approx(0.1, abs=0.003)


def test_a_counter_that_does_not_move_states_the_kinds_typical_step(tmp_path: Path) -> None:
    trees.rapl(tmp_path, 10_000_000)
    clock = trees.Clock()

    def sleep(seconds: float) -> None:
        clock.t += seconds

    assert detect_rapl(SysfsRoot(tmp_path), clock, sleep).info.resolution_s == 0.001


@pytest.mark.parametrize("rate_hz", [10.0, 50.0, 200.0])
def test_a_counter_source_never_reports_a_power_from_less_than_a_step(
    tmp_path: Path, rate_hz: float
) -> None:
    counter = world(tmp_path)
    source = detect_rapl(SysfsRoot(tmp_path), counter, counter.sleep)
    watts = []
    for _ in range(int(2 * rate_hz)):
        counter.sleep(1.0 / rate_hz)
        watts.append(source.read().board_w)
    assert all(w is not None and IDLE_W / 2 <= w <= 2 * IDLE_W for w in watts), watts
    settled = watts[int(rate_hz) :]
    assert all(w == pytest.approx(IDLE_W, rel=0.11) for w in settled), settled


@pytest.mark.parametrize("after_s", [0.0, 0.003])
def test_a_counter_source_reports_power_on_its_first_read(tmp_path: Path, after_s: float) -> None:
    counter = world(tmp_path)
    source = detect_rapl(SysfsRoot(tmp_path), counter, counter.sleep)
    counter.sleep(after_s)
    assert source.read().board_w == pytest.approx(IDLE_W, rel=0.5)


def test_a_counter_that_wraps_keeps_its_power(tmp_path: Path) -> None:
    counter = world(tmp_path, start_uj=trees.RAPL_MAX_UJ - 30_000_000)
    source = detect_rapl(SysfsRoot(tmp_path), counter, counter.sleep)
    for _ in range(20):
        counter.sleep(0.1)
        assert source.read().board_w == pytest.approx(IDLE_W, rel=0.5)
    assert source.read().energy_j is not None


def test_the_idle_baseline_starts_from_its_whole_warm_up_not_its_last_interval() -> None:
    meter = Meter()
    meter.add_sample(0.0, 100.0)
    for i in range(1, 40):
        # 10 Hz reads of a 100-ms counter: an interval holds no step, or two
        meter.add_sample(i * 0.1, 100.0, segment_j=20.0 if i % 2 else 0.0)
    assert meter.idle_w == pytest.approx(100.0, rel=0.06)


@pytest.mark.parametrize("rate_hz", [*RATES_HZ, 6.3, 11.7])
@pytest.mark.parametrize("phase_s", [0.0, 0.013, 0.05, 0.097])
def test_measure_idle_is_within_two_percent_of_the_truth(
    tmp_path: Path, rate_hz: float, phase_s: float
) -> None:
    counter = SteppingCounter(tmp_path, IDLE_W, phase_s=phase_s, oversleep_s=0.004)
    source = detect_rapl(SysfsRoot(tmp_path), counter, counter.sleep)
    result = measure_command(
        source,
        Meter(counter),
        ["true"],
        interval_s=1.0 / rate_hz,
        clock=counter,
        sleep=counter.sleep,
    )
    assert result.idle_w == pytest.approx(IDLE_W, rel=0.02)


def sampled_windows(
    tmp_path: Path, rate_hz: float, phase_s: float, seed: int, count: int = 30
) -> list[tuple[float, float]]:
    """(metered - true, bound) for `count` load windows of different lengths."""
    rng = random.Random(seed)
    counter = world(tmp_path, phase_s=phase_s)
    source = detect_rapl(SysfsRoot(tmp_path), counter, counter.sleep)
    meter = Meter(counter)
    sampler = Sampler(source, meter, rate_hz, clock=counter)
    next_t = counter.t + rng.uniform(0.0, 1.0 / rate_hz)

    def sample_until(t: float) -> None:
        nonlocal next_t
        while next_t <= t:
            counter.advance_to(next_t)
            sampler.sample_once()
            next_t += 1.0 / rate_hz + rng.uniform(0.0, WAKE_LATE_S)
        counter.advance_to(t)

    found = []
    for _ in range(count):
        start = counter.t + rng.uniform(0.3, 1.5)
        end = start + rng.choice((0.2, 0.3, 0.5, 0.8, 1.0, 2.0, 3.0))
        sample_until(start)
        counter.set_power(start, LOAD_W * rng.uniform(0.8, 1.2))
        key = meter.open_window()
        sample_until(end)
        counter.set_power(end, IDLE_W)
        pending = meter.end_window(key)
        sample_until(end + 0.5)
        window = pending.wait(0)
        found.append((window.energy_j - counter.energy(start, end), window.error_j))
    return found


@pytest.mark.parametrize("rate_hz", [*RATES_HZ, 2.0, 20.0])
def test_the_error_bound_holds_for_every_window_and_is_near_the_mean_error(
    tmp_path: Path, rate_hz: float
) -> None:
    windows = []
    for seed, phase_s in enumerate((0.0, 0.021, 0.05, 0.083)):
        folder = tmp_path / str(seed)
        folder.mkdir()
        windows += sampled_windows(folder, rate_hz, phase_s, seed)
    assert all(abs(error) <= bound for error, bound in windows)
    mean_error = sum(abs(error) for error, _ in windows) / len(windows)
    mean_bound = sum(bound for _, bound in windows) / len(windows)
    assert mean_bound <= MAX_BOUND_OVER_MEAN_ERROR * mean_error
