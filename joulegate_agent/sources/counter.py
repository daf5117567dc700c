"""Energy counters: unwrapping them and turning their deltas into watts.

RAPL and NVML count energy in hardware, which is more exact than sampling power; the sampler
integrates the counter, and the watts shown come from its change between two reads.
"""

from __future__ import annotations


class WrappingCounter:
    """Makes a counter that wraps at `max_raw` monotonic (one wrap per read at most)."""

    def __init__(self, max_raw: int) -> None:
        self._max_raw = max_raw
        self._last_raw: int | None = None
        self.total = 0

    @property
    def max_raw(self) -> int:
        return self._max_raw

    def update(self, raw: int) -> int:
        """Feed the counter's value; returns the total counted since the first value."""
        if self._last_raw is not None:
            delta = raw - self._last_raw
            self.total += delta if delta >= 0 else delta + self._max_raw
        self._last_raw = raw
        return self.total


class DeltaPower:
    """Average watts between successive (time, joules) readings of an energy counter."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def update(self, now: float, energy_j: float | None) -> float | None:
        """None until two good readings exist; a failed read keeps the last good one."""
        if energy_j is None:
            return None
        last, self._last = self._last, (now, energy_j)
        if last is None or now <= last[0]:
            return None
        return (energy_j - last[1]) / (now - last[0])
