"""How far a window's energy can be from the truth: the error bound every ledger row carries.

Inside a window the integral is exact enough; the error sits at its two edges, where the energy
between two samples is split in proportion to time. Two things blur an edge:

- the sampling interval Δ it falls in: a change of power inside it is smeared over it, at most
  (P_high - P_low) x Δ / 4 for a linear interpolation;
- the source's resolution τ: a counter shows the energy of its last step, up to τ late, so the
  energy a window is charged lags by up to P x τ (both edges lag, so their difference stays under
  P x τ once per window, P the higher power). Where the lag holds the edge's change, it already
  covers the smear but for the part of Δ beyond τ: (P_high - P_low) x (Δ - τ)² / 4Δ. A power
  sensor's reading averages its last τ, so a change is seen up to τ late: (P_high - P_low) x τ
  more per edge.

P_high and P_low are the highest and lowest power the meter saw around the edge (the interval
with the edge and one resolution before it), and at least the window's average inside it. The
bound is a worst case for powers within those (checked in tests/agent/test_counter_sources.py);
it does not cover a sensor outage inside the window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

TRAIL_POINTS = 64
STEP_SPAN = 3
"""A counter's power near an edge is taken over spans of at least this many steps: over one, a
step more or less doubles it or zeroes it; over three, it is a third off at most."""


@dataclass(frozen=True, slots=True)
class Edge:
    """The sampling interval a window's edge fell in, and the power around it."""

    interval_s: float
    low_w: float
    high_w: float


def error_bound_j(
    start: Edge,
    end: Edge,
    resolution_s: float,
    *,
    counter: bool,
    energy_j: float,
    duration_s: float,
) -> float:
    """The most a window's energy can be off, in joules, from how its two edges were sampled.

    Inside the window the power reaches its average at least, counting what the edges may have
    lost (a window not much longer than its edges' blur loses much of its energy). Outside it,
    what was seen before the start stands for what follows the end (the end is metered before
    anything after it is).
    """
    first = _bound(start, end, resolution_s, counter, energy_j / duration_s if duration_s else 0.0)
    if not duration_s:
        return first
    return _bound(start, end, resolution_s, counter, (energy_j + first) / duration_s)


def _bound(start: Edge, end: Edge, resolution_s: float, counter: bool, inside_w: float) -> float:
    start = Edge(start.interval_s, start.low_w, max(start.high_w, inside_w))
    end = Edge(end.interval_s, min(end.low_w, start.low_w), max(end.high_w, inside_w))
    smear_a, smear_b = (_smear(e, 0.0) for e in (start, end))
    if counter:
        # At the edge whose lag holds the step, lag and smear overlap: only the part of the
        # interval beyond one counter step smears more than the lag already covers.
        overlap_a, overlap_b = (_smear(e, resolution_s) for e in (start, end))
        lag = max(start.high_w, end.high_w) * resolution_s
        return lag + max(smear_a + overlap_b, overlap_a + smear_b)
    return smear_a + smear_b + sum((e.high_w - e.low_w) * resolution_s for e in (start, end))


def _smear(edge: Edge, covered_s: float) -> float:
    """The most interpolating over the edge's interval can misplace, beyond `covered_s` of it."""
    beyond = max(0.0, edge.interval_s - covered_s)
    if beyond == 0.0:
        return 0.0
    return (edge.high_w - edge.low_w) * beyond * beyond / (4.0 * edge.interval_s)


class EdgeTracker:
    """Follows the meter's intervals and tells, for each, the Edge a window edge in it would get.

    A counter's interval holds a whole number of steps (none, or two, for one step's time), so
    its power is taken over spans of STEP_SPAN steps instead; a power sensor's readings are
    taken as they are.
    """

    def __init__(self, resolution_s: float = 0.0) -> None:
        self.resolution_s = resolution_s
        self._trail: deque[tuple[float, float, float]] = deque(maxlen=TRAIL_POINTS)

    def reset(self) -> None:
        """A gap: what came before it says nothing about the power after it."""
        self._trail.clear()

    def interval(self, t0: float, p0: float, t1: float, p1: float, *, counter: bool) -> Edge:
        trail = self._trail
        if not trail or trail[-1][0] != t0:
            trail.clear()
            trail.append((t0, 0.0, p0))
        trail.append((t1, trail[-1][1] + (p0 + p1) / 2.0 * (t1 - t0), p1))
        reach = t0 - self.resolution_s
        recent = [i for i, (t, _, _) in enumerate(trail) if t >= reach]  # t0 and t1 at least
        first = max(0, recent[0] - 1)
        if counter:
            powers = [w for i in recent if (w := self._step_power(i)) is not None] or [p0]
        else:
            powers = [p for _, _, p in list(trail)[first:]]
        return Edge(interval_s=t1 - t0, low_w=min(powers), high_w=max(powers))

    def _step_power(self, index: int) -> float | None:
        """Average power over the shortest span of STEP_SPAN steps that ends at this point."""
        t, energy, _ = self._trail[index]
        for back in range(index - 1, -1, -1):
            t_back, energy_back, _ = self._trail[back]
            if t - t_back >= STEP_SPAN * self.resolution_s and t > t_back:
                return (energy - energy_back) / (t - t_back)
        return None
