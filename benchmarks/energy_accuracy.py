"""Energy accuracy: the agent's Meter against the rectangle rule, on traces with known integrals.

Each trace is one inference as a board draws it: idle, a short prefill burst, a decode plateau
with a per-token ripple (12-25 tokens/s), and an idle tail as clocks and fans wind down after
the request ends. Every component has a closed-form integral, so each window's true energy is exact.

Joulegate: the real `joulegate_agent.metering.meter.Meter` (trapezoid rule, power at the window's
edges interpolated between samples), driven sample by sample with a manual clock, the window
opened and ended at the request's start and end. Rectangle rule (the forum thread's script): the
sum of P_i * dt over the samples that fall within the window, dt the nominal sampling interval.

Sample times carry 1 ms (sigma) of scheduling jitter; the Meter gets the true sample times (the
sampler stamps each reading with the monotonic clock), the rectangle rule its nominal dt.

    python benchmarks/energy_accuracy.py
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from joulegate_agent.metering.meter import Meter  # noqa: E402 - the repository root goes on sys.path first

WINDOWS_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
RATES_HZ = (1.0, 2.0, 10.0, 50.0)
REPEATS = 40
JITTER_S = 0.001

IDLE_W = 4.6
PREFILL_W = 9.0  # added on top of decode during prefill
DECODE_W = 5.4  # decode plateau above idle
RIPPLE_W = 0.8  # per-token ripple amplitude during decode
TOKEN_HZ = (12.0, 25.0)  # decode speed, tokens per second, drawn per inference
TAIL_W = 1.5  # fans and clocks winding down after the request
TAIL_S = 2.5
TAU_FAST_S = 0.04
TAU_S = 0.25


@dataclass(frozen=True)
class Lagged:
    """`amp` switched on over [on, off) through a first-order lag `tau`."""

    amp: float
    on: float
    off: float
    tau: float

    def power(self, t: float) -> float:
        if t < self.on:
            return 0.0
        if t < self.off:
            return self.amp * (1.0 - math.exp(-(t - self.on) / self.tau))
        at_off = 1.0 - math.exp(-(self.off - self.on) / self.tau)
        return self.amp * at_off * math.exp(-(t - self.off) / self.tau)

    def _primitive(self, t: float) -> float:
        if t <= self.on:
            return 0.0
        if t <= self.off:
            x = t - self.on
            return self.amp * (x - self.tau * (1.0 - math.exp(-x / self.tau)))
        at_off = 1.0 - math.exp(-(self.off - self.on) / self.tau)
        decay = self.tau * (1.0 - math.exp(-(t - self.off) / self.tau))
        return self._primitive(self.off) + self.amp * at_off * decay

    def energy(self, a: float, b: float) -> float:
        return self._primitive(b) - self._primitive(a)


@dataclass(frozen=True)
class Ripple:
    """A sinusoid of `amp` at `hz` over [on, off), zero outside."""

    amp: float
    hz: float
    on: float
    off: float

    def power(self, t: float) -> float:
        if self.on <= t < self.off:
            return self.amp * math.sin(2 * math.pi * self.hz * (t - self.on))
        return 0.0

    def energy(self, a: float, b: float) -> float:
        lo, hi = max(a, self.on), min(b, self.off)
        if hi <= lo:
            return 0.0
        w = 2 * math.pi * self.hz
        return self.amp * (math.cos(w * (lo - self.on)) - math.cos(w * (hi - self.on))) / w


@dataclass(frozen=True)
class Inference:
    start: float
    length: float
    token_hz: float
    ripple_w: float = RIPPLE_W

    @property
    def parts(self) -> tuple[Lagged | Ripple, ...]:
        s, end = self.start, self.start + self.length
        prefill = min(0.25 * self.length, 1.2)
        return (
            Lagged(PREFILL_W, s, s + prefill, TAU_FAST_S),
            Lagged(DECODE_W, s, end, TAU_S),
            Ripple(self.ripple_w, self.token_hz, s + prefill, end),
            Lagged(TAIL_W, end, end + TAIL_S, TAU_S),
        )

    def power(self, t: float) -> float:
        return IDLE_W + sum(p.power(t) for p in self.parts)

    def energy(self, a: float, b: float) -> float:
        return IDLE_W * (b - a) + sum(p.energy(a, b) for p in self.parts)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def measure(
    inference: Inference, rate: float, phase: float, rng: random.Random
) -> tuple[float, float]:
    """(Meter's window energy, rectangle-rule energy) for one inference sampled at `rate`."""
    clock = Clock()
    meter = Meter(clock)
    start, end = inference.start, inference.start + inference.length
    dt = 1.0 / rate
    key: int | None = None
    pending = None
    rectangle = 0.0
    k = 0
    while pending is None or not pending.done.is_set():
        t = phase + k * dt + rng.gauss(0.0, JITTER_S)
        k += 1
        if key is None and t >= start:
            clock.now = start
            key = meter.open_window()
        if key is not None and pending is None and t >= end:
            clock.now = end
            pending = meter.end_window(key)
        clock.now = t
        watts = inference.power(t)
        meter.add_sample(t, watts)
        if start <= t <= end:
            rectangle += watts * dt
    return pending.wait(0).energy_j, rectangle


@dataclass
class Cell:
    window_s: float
    rate_hz: float
    meter_errors: list[float]
    rectangle_errors: list[float]

    @staticmethod
    def _stats(errors: list[float]) -> dict[str, float]:
        absolute = sorted(abs(e) for e in errors)
        return {
            "mean_abs": sum(absolute) / len(absolute),
            "p95_abs": absolute[min(len(absolute) - 1, math.ceil(0.95 * len(absolute)) - 1)],
            "max_abs": absolute[-1],
            "bias": sum(errors) / len(errors),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "window_s": self.window_s,
            "rate_hz": self.rate_hz,
            "meter": self._stats(self.meter_errors),
            "rectangle": self._stats(self.rectangle_errors),
        }


def run(repeats: int = REPEATS, *, ripple: bool = True) -> list[dict[str, Any]]:
    """Error statistics per (window, rate); `ripple=False` drops the per-token ripple, leaving
    the edges (prefill burst, lags, tail) as the only thing sampling can miss."""
    cells = []
    for window in WINDOWS_S:
        for rate in RATES_HZ:
            rng = random.Random(f"accuracy-{window}-{rate}")
            cell = Cell(window, rate, [], [])
            for _ in range(repeats):
                start, token_hz = rng.uniform(5.0, 6.0), rng.uniform(*TOKEN_HZ)
                inference = Inference(start, window, token_hz, RIPPLE_W if ripple else 0.0)
                exact = inference.energy(inference.start, inference.start + window)
                metered, rectangle = measure(inference, rate, rng.uniform(0.0, 1.0 / rate), rng)
                cell.meter_errors.append(100.0 * (metered - exact) / exact)
                cell.rectangle_errors.append(100.0 * (rectangle - exact) / exact)
            cells.append(cell.summary())
    return cells


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    cells = run()
    print("| window | rate | Joulegate mean / max abs error | rectangle mean / max abs error |")
    print("|---|---|---|---|")
    for c in cells:
        m, r = c["meter"], c["rectangle"]
        joulegate = f"{m['mean_abs']:.2f} / {m['max_abs']:.2f} %"
        rectangle = f"{r['mean_abs']:.2f} / {r['max_abs']:.2f} %"
        print(f"| {c['window_s']:g} s | {c['rate_hz']:g} Hz | {joulegate} | {rectangle} |")


if __name__ == "__main__":
    main()
