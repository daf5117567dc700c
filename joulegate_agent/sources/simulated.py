"""A simulated Jetson Orin Nano 8GB running a 3B 4-bit model, for demos and tests without a box.

Board power follows the decoding under way (the agent passes `Meter.working`: streams producing
tokens, plus windows whose work it cannot see), not the requests waiting in a server's queue,
with a first-order lag and noise, in the ranges a real Orin Nano shows (idle ~4.5 W, ~10 W for
one decode, a little more for each decode batched beside it); its temperature follows the power
slowly. Nothing here touches hardware.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from joulegate_agent.sources.base import (
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


def target_w(decoding: int) -> float:
    """Steady board power with this many decodes under way."""
    if decoding <= 0:
        return IDLE_W
    return ONE_INFERENCE_W + EXTRA_INFERENCE_W * min(decoding - 1, MAX_EXTRA)


class SimulatedOrinNano:
    """`load()` says how many decodes are under way now (the meter provides it)."""

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
        above_idle = self._power_w - IDLE_W
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
        target = target_w(self._load())
        self._power_w = target + (self._power_w - target) * math.exp(-dt / POWER_TAU_S)
        heat = (self._power_w - IDLE_W) / (ONE_INFERENCE_W - IDLE_W)
        target_c = IDLE_C + (LOADED_C - IDLE_C) * heat
        self._temp_c = target_c + (self._temp_c - target_c) * math.exp(-dt / THERMAL_TAU_S)
