"""Energy counters: unwrapping them, finding how often they move, and turning them into watts.

RAPL and NVML count energy in hardware, which is more exact than sampling power; the sampler
integrates the counter. But a counter moves in steps (NVML's about every 100 ms): a change taken
over less than a step is noise (0 W, or 2,300 W on a GPU idling at 124 W). So each counter source
measures its step at start (`probe_update_period`), and its watts always span at least one step,
up to POWER_STEPS of them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from itertools import pairwise

PROBE_S = 0.3
"""The longest the probe watches a counter that does not move (then the kind's typical step)."""
PROBE_POLL_S = 0.002
PROBE_CHANGES = 3
"""Changes seen per counter before the probe stops: two intervals between steps."""
POWER_STEPS = 10
"""Watts are averaged over this many steps (1 s for a 100-ms counter): a step more or less in the
span is then 10 % at most, and only while the span is still growing at start."""


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
    """Average watts of an energy counter over at least one of its steps.

    Until `step_s` has passed since the first reading (or since the counter ran back), there is
    no power: None, never a guess from a delta shorter than a step.
    """

    def __init__(self) -> None:
        self._history: deque[tuple[float, float]] = deque()
        self._step_s = math.inf  # no power until the step is known
        self._span_s = math.inf

    def set_step(self, step_s: float) -> None:
        """The counter's update period: watts span one step at least, POWER_STEPS at most."""
        self._step_s = step_s
        self._span_s = POWER_STEPS * step_s

    def update(self, now: float, energy_j: float | None) -> float | None:
        """None until a step's time of good readings exists; a failed read keeps the others."""
        if energy_j is None:
            return None
        history = self._history
        if history and energy_j < history[-1][1]:
            history.clear()  # the counter was reset (a driver reload): start over
        if history and now <= history[-1][0]:
            now = history[-1][0]  # the clock has not moved: the newest reading stands for now
            history[-1] = (now, energy_j)
        else:
            history.append((now, energy_j))
        while len(history) > 2 and now - history[1][0] >= self._span_s:
            history.popleft()
        t0, e0 = history[0]
        if now - t0 < self._step_s:
            return None
        return (history[-1][1] - e0) / (now - t0)


def probe_update_period(
    read: Callable[[], Sequence[float | None]],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    *,
    typical_s: float,
) -> float:
    """How often the counters that `read` returns move, in seconds (the longest of them).

    Polls every PROBE_POLL_S until each counter has moved PROBE_CHANGES times, or PROBE_S has
    passed; a counter's period is the shortest time seen between two of its changes (one poll
    late at most). Where no counter moved twice (idle at 0 W, or a slow one), the kind's
    `typical_s` is stated.
    """
    last: list[float | None] = list(read())
    changes: list[list[float]] = [[] for _ in last]
    start = clock()
    for _ in range(math.ceil(PROBE_S / PROBE_POLL_S)):
        if all(len(seen) >= PROBE_CHANGES for seen in changes) or clock() - start >= PROBE_S:
            break
        sleep(PROBE_POLL_S)
        now = clock()
        for index, value in enumerate(read()):
            if value is not None and last[index] is not None and value != last[index]:
                changes[index].append(now)
            if value is not None:
                last[index] = value
    periods = [min(b - a for a, b in pairwise(seen)) for seen in changes if len(seen) >= 2]
    periods = [p for p in periods if p > 0]
    return max(periods) if periods else typical_s
