"""The simulated Orin Nano: believable power and heat that follow the inferences in flight."""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

from joulegate_agent.metering.sources.base import MODULE_INPUT
from joulegate_agent.simulation.board import SimulatedOrinNano
from tests.agent.fakes.sysfs_trees import Clock


class Load:
    """How many inference windows are in flight; the test changes it."""

    def __init__(self) -> None:
        self.in_flight = 0

    def __call__(self) -> int:
        return self.in_flight


def board_after(board: SimulatedOrinNano, clock: Clock, seconds: float) -> float:
    clock.t += seconds
    watts = board.read().board_w
    assert watts is not None
    return watts


def mean_board_w(board: SimulatedOrinNano, clock: Clock, n: int = 200) -> float:
    return statistics.fmean(board_after(board, clock, 0.1) for _ in range(n))


def test_idle_board_draws_about_4_5_w() -> None:
    clock = Clock()
    board = SimulatedOrinNano(Load(), clock, seed=1)
    assert mean_board_w(board, clock) == pytest.approx(4.5, abs=0.05)


def test_one_inference_settles_near_10_w() -> None:
    clock, load = Clock(), Load()
    board = SimulatedOrinNano(load, clock, seed=2)
    load.in_flight = 1
    board_after(board, clock, 5.0)
    assert mean_board_w(board, clock) == pytest.approx(10.0, abs=0.05)


def test_several_inferences_draw_slightly_more_than_one() -> None:
    clock, load = Clock(), Load()
    board = SimulatedOrinNano(load, clock, seed=3)
    load.in_flight = 3
    board_after(board, clock, 5.0)
    assert 10.3 < mean_board_w(board, clock) < 11.5


def test_power_follows_load_with_a_0_3_s_lag() -> None:
    clock, load = Clock(), Load()
    board = SimulatedOrinNano(load, clock, seed=4)
    board.read()
    load.in_flight = 1
    after_one_tau = board_after(board, clock, 0.3)
    expected = 4.5 + (10.0 - 4.5) * (1 - 1 / 2.718281828)
    assert after_one_tau == pytest.approx(expected, abs=0.4)


def test_noise_is_about_0_1_w() -> None:
    clock = Clock()
    board = SimulatedOrinNano(Load(), clock, seed=5)
    readings = [board_after(board, clock, 0.1) for _ in range(2000)]
    assert statistics.stdev(readings) == pytest.approx(0.1, rel=0.1)


def test_same_seed_gives_the_same_readings() -> None:
    def run(seed: int) -> list[float]:
        clock = Clock()
        board = SimulatedOrinNano(Load(), clock, seed=seed)
        return [board_after(board, clock, 0.1) for _ in range(5)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_vdd_in_is_the_whole_board_rail() -> None:
    clock = Clock()
    board = SimulatedOrinNano(Load(), clock, seed=6)
    assert [(r.name, r.whole_board) for r in board.info.rails] == [
        ("VDD_IN", True),
        ("VDD_CPU_GPU_CV", False),
        ("VDD_SOC", False),
    ]
    assert board.info.boundary == f"{MODULE_INPUT} (VDD_IN)"
    reading = board.read()
    assert reading.rails[0].power_w == reading.board_w


def test_sub_rails_stay_below_the_board() -> None:
    clock, load = Clock(), Load()
    board = SimulatedOrinNano(load, clock, seed=9)
    load.in_flight = 1
    clock.t += 5
    rails = {r.name: r.power_w or 0.0 for r in board.read().rails}
    assert rails["VDD_CPU_GPU_CV"] + rails["VDD_SOC"] < rails["VDD_IN"]
    assert rails["VDD_CPU_GPU_CV"] > rails["VDD_SOC"]


def test_temperature_idles_near_42_c() -> None:
    clock = Clock()
    board = SimulatedOrinNano(Load(), clock, seed=1)
    clock.t += 600
    assert board.temperature_c() == pytest.approx(42.0, abs=0.5)


def test_temperature_rises_slowly_under_load_toward_60_c() -> None:
    clock, load = Clock(), Load()
    board = SimulatedOrinNano(load, clock, seed=1)
    board.temperature_c()
    load.in_flight = 1
    clock.t += 10
    after_10_s = board.temperature_c()
    clock.t += 1200
    settled = board.temperature_c()
    assert 42.0 < after_10_s < 46.0
    assert settled == pytest.approx(60.0, abs=0.5)


@pytest.mark.parametrize(
    "module", ["joulegate_agent.simulation.board", "joulegate_agent.simulation.llm"]
)
def test_the_simulation_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """The power sources it builds on must not import it back while it is half-loaded."""
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=60)
