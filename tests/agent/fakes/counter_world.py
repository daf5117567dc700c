"""A RAPL energy counter that moves in steps, as NVML's does (about every 100 ms), on a fake clock.

The board's true power is piecewise constant (the harshest case for an edge: a step), so every
window's true energy is known exactly. The counter file shows the energy used up to its last
step: it lags the truth by up to one step, and is read at whatever rate and phase a test likes.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from tests.agent.fakes import sysfs_trees as trees

STEP_S = 0.1
START_UJ = 10_000_000


class SteppingCounter:
    """The fake clock (call it), the sleep that moves it, and the counter file that follows it."""

    def __init__(
        self,
        root: Path,
        idle_w: float,
        *,
        phase_s: float = 0.0,
        step_s: float = STEP_S,
        start_uj: int = START_UJ,
        t: float = 1000.0,
        oversleep_s: float = 0.0,
    ) -> None:
        self.package = trees.rapl(root, start_uj)
        self.t = self._origin = t
        self.step_s = step_s
        self.phase_s = phase_s
        self._start_uj = start_uj
        self._changes = [-math.inf]  # times where the power changes, and the levels from them
        self._levels = [idle_w]
        self._oversleep = random.Random(phase_s)
        self._oversleep_s = oversleep_s
        self._written: int | None = None
        self._write()

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        """Sleeps as an OS does: as long as asked, and up to `oversleep_s` more."""
        self.advance_to(self.t + seconds + self._oversleep.uniform(0.0, self._oversleep_s))

    def advance_to(self, t: float) -> None:
        self.t = max(self.t, t)
        self._write()

    def set_power(self, at: float, watts: float) -> None:
        """From `at` on (not before the last change), the board draws `watts`."""
        if at < self._changes[-1]:
            raise ValueError("power changes must come in time order")
        self._changes.append(at)
        self._levels.append(watts)

    def energy(self, a: float, b: float) -> float:
        """The board's true energy over [a, b], in joules."""
        return self._cumulative(b) - self._cumulative(a)

    def _cumulative(self, t: float) -> float:
        total = 0.0
        for index, (start, watts) in enumerate(zip(self._changes, self._levels, strict=True)):
            end = self._changes[index + 1] if index + 1 < len(self._changes) else math.inf
            lo = max(start, self._origin)
            hi = min(end, t)
            if hi > lo:
                total += watts * (hi - lo)
        return total

    def last_step(self, t: float) -> float:
        return self.phase_s + math.floor((t - self.phase_s) / self.step_s) * self.step_s

    def _write(self) -> None:
        counted_uj = round(self._cumulative(self.last_step(self.t)) * 1e6)
        raw = (self._start_uj + counted_uj) % trees.RAPL_MAX_UJ
        if raw != self._written:  # the file changes only at a step, as the kernel's does
            (self.package / "energy_uj").write_text(f"{raw}\n")
            self._written = raw
