"""Synthetic board-power traces whose integrals are known, for checking the meter's arithmetic.

Steps rise and fall with a first-order lag (as a board's draw and the INA3221's averaging do);
a truly instantaneous step between two samples cannot be located from 10 Hz samples at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

IDLE_W = 4.5
BUSY_W = 10.0
TAU_S = 0.3


@dataclass(frozen=True)
class Trace:
    name: str
    power: Callable[[float], float]
    energy: Callable[[float, float], float]  # exact integral over [a, b]


def _lagged_step(t: float, on: float, off: float) -> float:
    """Fraction of the busy level reached at t for a busy period [on, off)."""
    if t < on:
        return 0.0
    rise = 1.0 - math.exp(-(t - on) / TAU_S)
    if t < off:
        return rise
    level_at_off = 1.0 - math.exp(-(off - on) / TAU_S)
    return level_at_off * math.exp(-(t - off) / TAU_S)


def _lagged_step_integral(a: float, b: float, on: float, off: float) -> float:
    """Exact integral of `_lagged_step` over [a, b]."""

    def primitive(t: float) -> float:
        if t <= on:
            return 0.0
        if t <= off:
            return (t - on) - TAU_S * (1.0 - math.exp(-(t - on) / TAU_S))
        level_at_off = 1.0 - math.exp(-(off - on) / TAU_S)
        return primitive(off) + level_at_off * TAU_S * (1.0 - math.exp(-(t - off) / TAU_S))

    return primitive(b) - primitive(a)


def step(on: float, off: float) -> Trace:
    swing = BUSY_W - IDLE_W
    return Trace(
        f"step {on}-{off}s",
        lambda t: IDLE_W + swing * _lagged_step(t, on, off),
        lambda a, b: IDLE_W * (b - a) + swing * _lagged_step_integral(a, b, on, off),
    )


def bursts(period: float, busy: float, count: int, start: float = 1.0) -> Trace:
    swing = BUSY_W - IDLE_W
    spans = [(start + k * period, start + k * period + busy) for k in range(count)]

    def power(t: float) -> float:
        return IDLE_W + swing * sum(_lagged_step(t, on, off) for on, off in spans)

    def energy(a: float, b: float) -> float:
        return IDLE_W * (b - a) + swing * sum(
            _lagged_step_integral(a, b, on, off) for on, off in spans
        )

    return Trace(f"bursts {busy}s every {period}s", power, energy)


def ramp(start: float, end: float, low: float = IDLE_W, high: float = 12.0) -> Trace:
    def power(t: float) -> float:
        frac = min(1.0, max(0.0, (t - start) / (end - start)))
        return low + (high - low) * frac

    def primitive(t: float) -> float:
        if t <= start:
            return low * t
        if t <= end:
            return low * t + (high - low) * (t - start) ** 2 / (2 * (end - start))
        return primitive(end) + high * (t - end)

    return Trace(f"ramp {start}-{end}s", power, lambda a, b: primitive(b) - primitive(a))
