"""How far a window's energy can be from the truth: the error bound every ledger row carries.

Inside a window the integral is exact enough; the error sits at its two edges, where the energy
between two samples a and b is split in proportion to time. The window's error is e(end) -
e(start), with e(t) the metered energy up to t less the true one, so its bound pairs one edge's
most above the truth with the other's most below.

A counter (RAPL, NVML) read at a shows the energy up to its last step, λa behind (0 to one step
τ); the meter interpolates linearly between a and b. For an edge at a fraction f of the
interval Δ, e(t) is an integral of the power with a weight that is negative up to the edge and
positive after it: -(1-f) over a's lag, -f over b's lag, +f over [a, b], -1 over [a, t].
Before the edge the weights add up to N = (1-f)λa + f(1-f)Δ + f·max(0, λb - (1-f)Δ), after it
to f·max(0, (1-f)Δ - λb); with the power between P_low and P_high, e(t) is least with P_high
before the edge and P_low after, most the other way round, and both are monotonic in the lags.
That is exact, so the bound is as tight as the powers and lags it is given: for Δ ≤ τ it is
P·τ at most (the smear over Δ lies inside the lag), not lag plus smear. A change of the
counter between two reads puts its step between them, so where reads are closer than a step
the lags are known to within one interval, not one step. Two uniform lags make the worst case
of their difference 3 times its mean: the limit where the readings say nothing of the phase.

A power sensor's reading averages its last τ (INA3221's update_interval), so a change is seen
up to τ late: (P_high - P_low) x τ per edge, plus (P_high - P_low) times the part of the interval
inside the window, metered from readings that may show anything between those powers (a step
just after the reading before the edge is smeared over all of it, not a quarter). A window
shorter than the sampling interval can fall between two readings and leave no trace at all.

P_high and P_low are the highest and lowest power the meter saw around the edge (the interval
with the edge and one resolution before it), and at least the window's average inside it,
counting what the edges may have lost. The bound is a worst case for powers within those
(checked in tests/agent/test_counter_sources.py); it does not cover a sensor outage inside the
window, nor a counter that does not move at every step (no power at all).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

TRAIL_POINTS = 96
"""Enough for STEP_SPAN steps and one more of a 100-ms counter read at up to 160 Hz."""
STEP_SPAN = 5
"""A counter's power near an edge is taken over spans of at least this many steps: over one, a
step more or less doubles it or zeroes it; over five, it is a fifth off at most."""


@dataclass(frozen=True, slots=True)
class Edge:
    """The sampling interval a window's edge fell in, and the power around it."""

    interval_s: float
    low_w: float
    high_w: float
    position: float = 0.5
    """Where in the interval the edge fell, from 0 (its first sample) to 1 (its last)."""
    lag_before_s: tuple[float, float] = (0.0, math.inf)
    """How far behind a counter's reading was at the interval's first sample, least and most."""
    lag_after_s: tuple[float, float] = (0.0, math.inf)
    """The same at its last sample."""
    missed_s: float = 0.0
    """Time before the interval the window had already begun: not metered at all."""


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
    above, below = _bound(
        start, end, resolution_s, counter, energy_j / duration_s if duration_s else 0.0
    )
    if duration_s:
        above, below = _bound(start, end, resolution_s, counter, (energy_j + below) / duration_s)
    return max(0.0, above, below)


def _bound(
    start: Edge, end: Edge, resolution_s: float, counter: bool, inside_w: float
) -> tuple[float, float]:
    """How far the energy can be above the truth, and below it."""
    start = replace(start, high_w=max(start.high_w, inside_w))
    end = replace(end, low_w=min(end.low_w, start.low_w), high_w=max(end.high_w, inside_w))
    if counter:
        over_a, under_a = _counter_edge(start, resolution_s)
        over_b, under_b = _counter_edge(end, resolution_s)
        # The window's error is the end's minus the start's: its extremes pair one edge's
        # highest with the other's lowest.
        return over_b + under_a, over_a + under_b
    edges = _sensor_edge(start, resolution_s, 1.0 - start.position)
    edges += _sensor_edge(end, resolution_s, end.position)
    return edges, edges


def _sensor_edge(edge: Edge, resolution_s: float, inside: float) -> float:
    """How far the metered energy can be off at this edge when each reading averages its last
    `resolution_s`: a change is seen up to that late, and the part of the interval inside the
    window (`inside`, a fraction of it) is metered from readings that may show anything between
    the powers around it."""
    spread = resolution_s + inside * edge.interval_s
    return (edge.high_w - edge.low_w) * spread + edge.high_w * edge.missed_s


def _counter_edge(edge: Edge, resolution_s: float) -> tuple[float, float]:
    """How far the metered energy up to this edge can be above, and below, the true energy."""
    interval, f, high, low = edge.interval_s, edge.position, edge.high_w, edge.low_w
    lag_a = [min(resolution_s, lag) for lag in edge.lag_before_s]
    lag_b = [min(resolution_s, lag) for lag in edge.lag_after_s]
    after_s = (1.0 - f) * interval  # from the edge to the interval's end

    def before(lag_a: float, lag_b: float) -> float:
        """Weight of the power before the edge: it counts against the metered energy."""
        return (1.0 - f) * lag_a + f * after_s + f * max(0.0, lag_b - after_s)

    def after(lag_b: float) -> float:
        """Weight of the power after the edge: interpolation spreads it back over the edge."""
        return f * max(0.0, after_s - lag_b)

    over = high * (after(lag_b[0]) + edge.missed_s) - low * before(lag_a[0], lag_b[0])
    under = high * before(lag_a[1], lag_b[1]) - low * after(lag_b[1])
    return over, under


class EdgeTracker:
    """Follows the meter's intervals and tells, for each, the Edge a window edge in it would get.

    A counter's interval holds a whole number of steps (none, or two, for one step's time), so
    its power is taken over spans of STEP_SPAN steps instead; a power sensor's readings are
    taken as they are.
    """

    def __init__(self, resolution_s: float = 0.0) -> None:
        self.resolution_s = resolution_s
        self._trail: deque[tuple[float, float, float]] = deque(maxlen=TRAIL_POINTS)
        self._moved: tuple[float, float] | None = None

    def reset(self) -> None:
        """A gap: what came before it says nothing about the power after it."""
        self._trail.clear()
        self._moved = None

    def _lag(self, t: float) -> tuple[float, float]:
        """Least and most a counter read at `t` can lag: its last step fell between the two
        samples around its last move (one step at most, and more if it did not move for longer
        than a step, then nothing is known)."""
        if self._moved is None:
            return (0.0, math.inf)
        after, at = self._moved
        least = t - at
        return (least if least <= self.resolution_s else 0.0, t - after)

    def interval(self, t0: float, p0: float, t1: float, p1: float, *, counter: bool) -> Edge:
        trail = self._trail
        if not trail or trail[-1][0] != t0:
            trail.clear()
            trail.append((t0, 0.0, p0))
        trail.append((t1, trail[-1][1] + (p0 + p1) / 2.0 * (t1 - t0), p1))
        lag_before = self._lag(t0)
        if counter and p1 > 0.0:
            self._moved = (t0, t1)
        elif not counter:
            self._moved = None
        reach = t0 - self.resolution_s
        recent = [i for i, (t, _, _) in enumerate(trail) if t >= reach]  # t0 and t1 at least
        first = max(0, recent[0] - 1)
        if counter:
            powers = [w for i in recent if (w := self._step_power(i)) is not None] or [p0]
        else:
            powers = [p for _, _, p in list(trail)[first:]]
        return Edge(
            interval_s=t1 - t0,
            low_w=min(powers),
            high_w=max(powers),
            lag_before_s=lag_before,
            lag_after_s=self._lag(t1),
        )

    def _step_power(self, index: int) -> float | None:
        """Average power over the shortest span of STEP_SPAN steps that ends at this point."""
        t, energy, _ = self._trail[index]
        for back in range(index - 1, -1, -1):
            t_back, energy_back, _ = self._trail[back]
            if t - t_back >= STEP_SPAN * self.resolution_s and t > t_back:
                return (energy - energy_back) / (t - t_back)
        return None
