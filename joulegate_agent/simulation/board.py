"""A simulated Jetson Orin Nano 8GB running a 3B 4-bit model, for demos and tests without a box.

Board power follows the decoding under way (the agent passes `Meter.working`: streams producing
tokens, plus windows whose work it cannot see), not the requests waiting in a server's queue,
with a first-order lag and noise, in the ranges a real Orin Nano shows (idle ~4.5 W, ~10 W for
one decode, a little more for each decode batched beside it); its temperature follows the power
slowly. Nothing here touches hardware.

The board has power modes (`MODES`, modelled on the Orin Nano Super's 7W, 15W, 25W and
MAXN_SUPER): each sets the idle draw, the draw of one decode and the decode rate. The figures are
assumptions shaped like published llama.cpp runs on that board (more tokens per joule at 25W than
at MAXN_SUPER, a slow 7W); the 25W mode is the one the simulator always had (4.5 W idle, 10 W and
25 tokens/s for one decode), and the board starts in it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from joulegate_agent.metering.sources.base import (
    MODULE_INPUT,
    PowerReading,
    RailInfo,
    RailReading,
    SourceInfo,
)

IDLE_W = 4.5
ONE_INFERENCE_W = 10.0
EXTRA_INFERENCE_W = 0.4  # each decode batched beside the first adds a little, up to MAX_EXTRA
MAX_EXTRA = 3
POWER_TAU_S = 0.3
NOISE_W = 0.1
RAIL_NOISE_W = 0.05
VOLTS = 5.0
IDLE_C = 42.0
LOADED_C = 60.0
THERMAL_TAU_S = 90.0

WHOLE = "VDD_IN"
CPU_GPU_CV = "VDD_CPU_GPU_CV"
SOC = "VDD_SOC"


@dataclass(frozen=True, slots=True)
class SimulatedMode:
    """One power mode of the simulated board."""

    name: str
    idle_w: float
    one_inference_w: float
    tokens_per_s: float


MODES = (
    SimulatedMode("7W", 3.9, 6.0, 11.0),
    SimulatedMode("15W", 4.2, 8.2, 19.0),
    SimulatedMode("25W", IDLE_W, ONE_INFERENCE_W, 25.0),
    SimulatedMode("MAXN_SUPER", 4.8, 13.0, 30.0),
)
"""Lowest draw first."""
DEFAULT_MODE = MODES[2]


def mode_named(name: str) -> SimulatedMode | None:
    return next((mode for mode in MODES if mode.name == name), None)


def target_w(decoding: int, mode: SimulatedMode = DEFAULT_MODE) -> float:
    """Steady board power with this many decodes under way."""
    if decoding <= 0:
        return mode.idle_w
    return mode.one_inference_w + EXTRA_INFERENCE_W * min(decoding - 1, MAX_EXTRA)


class SimulatedOrinNano:
    """`load()` says how many decodes are under way now (the meter provides it); `mode` is the
    power mode the board runs in (power/simulated.py sets it)."""

    def __init__(
        self,
        load: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self._load = load
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 - noise, not cryptography
        self._t = clock()
        self.mode = DEFAULT_MODE
        self._power_w = IDLE_W
        self._temp_c = IDLE_C
        self._info = SourceInfo(
            kind="simulated",
            path="simulated Jetson Orin Nano 8GB",
            boundary=f"{MODULE_INPUT} ({WHOLE})",
            rails=(RailInfo(WHOLE, True), RailInfo(CPU_GPU_CV, False), RailInfo(SOC, False)),
            notes=("simulated: no hardware is read",),
            resolution_s=0.0,  # a new value on every read
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    def read(self) -> PowerReading:
        self._advance()
        above_idle = self._power_w - self.mode.idle_w
        board = self._power_w + self._rng.gauss(0.0, NOISE_W)
        compute = 0.5 + 0.75 * above_idle + self._rng.gauss(0.0, RAIL_NOISE_W)
        soc = 1.4 + 0.15 * above_idle + self._rng.gauss(0.0, RAIL_NOISE_W)
        rails = tuple(
            RailReading(name, watts, VOLTS, watts / VOLTS)
            for name, watts in ((WHOLE, board), (CPU_GPU_CV, compute), (SOC, soc))
        )
        return PowerReading(board_w=board, rails=rails)

    def temperature_c(self) -> float:
        """The SoC temperature, rising slowly toward ~60 °C under load (~42 °C idle)."""
        self._advance()
        return self._temp_c

    def close(self) -> None:
        """Nothing to release."""

    def _advance(self) -> None:
        """Move power and temperature toward their targets over the time since the last call."""
        now = self._clock()
        dt = max(0.0, now - self._t)
        self._t = now
        target = target_w(self._load(), self.mode)
        self._power_w = target + (self._power_w - target) * math.exp(-dt / POWER_TAU_S)
        heat = (self._power_w - IDLE_W) / (ONE_INFERENCE_W - IDLE_W)
        target_c = IDLE_C + (LOADED_C - IDLE_C) * heat
        self._temp_c = target_c + (self._temp_c - target_c) * math.exp(-dt / THERMAL_TAU_S)
