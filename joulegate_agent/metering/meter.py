"""Turns a stream of power samples into energy: the lifetime counter and per-inference windows.

Energy is defined once (DESIGN.md): the trapezoid integral of board power, with the power at a
window's edges interpolated between samples. Where windows overlap, each sub-interval's energy is
shared by the work each window visibly did in it (work_share.py): the tokens of streamed answers,
an even time split where no work is visible; window energies never add up to more than the board
used. Everything here is driven by `add_sample`, called from the sampler thread; windows are
opened and closed from the event loop or any other thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise

from joulegate_agent.metering.energy_error import Edge, EdgeTracker, error_bound_j
from joulegate_agent.metering.work_share import Work, WorkShares

IDLE_SETTLE_S = 2.0
IDLE_TIME_CONSTANT_S = 60.0
IDLE_WARMUP_S = 3.0
MAX_GAP_S = 5.0
MAX_BOARD_W = 1e6
"""No board draws a megawatt: a sensor that says so (or NaN, or less than nothing) is broken, and
its reading is not energy. Bounding watts also keeps every integral finite."""


def plausible_watts(watts: float) -> bool:
    """A power reading the meter may integrate: a number from 0 to MAX_BOARD_W (not NaN)."""
    return 0.0 <= watts <= MAX_BOARD_W


@dataclass(frozen=True, slots=True)
class WindowEnergy:
    """What one window cost; marginal_j is None until an idle baseline exists.

    `error_j` bounds how far energy_j can be from the truth (energy_error.py).
    """

    energy_j: float
    marginal_j: float | None
    avg_w: float | None
    peak_w: float | None
    duration_s: float
    idle_w: float | None
    error_j: float = 0.0


@dataclass(slots=True)
class PendingWindow:
    """An ended window waiting for the sampler to pass its end; `wait` gives its energy."""

    start: float
    end: float | None = None
    energy_j: float = 0.0
    marginal_j: float = 0.0
    marginal_known: bool = True
    peak_w: float | None = None
    work: Work | None = None
    """What the proxy sees of its work (a streamed answer); None: not visible."""
    start_edge: Edge | None = None
    end_edge: Edge | None = None
    result: WindowEnergy | None = None
    done: threading.Event = field(default_factory=threading.Event)
    callbacks: list[Callable[[WindowEnergy], None]] = field(default_factory=list)

    def wait(self, timeout: float | None = None) -> WindowEnergy:
        """Block until metered (for threads and the CLI; the event loop uses finish_window)."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"window was not metered within {timeout} s")
        assert self.result is not None
        return self.result

    def credit(self, energy_j: float, marginal_j: float | None, peak_w: float) -> None:
        """Add a share of some interval's energy (marginal_j None: no idle baseline yet)."""
        self.energy_j += energy_j
        if marginal_j is None:
            self.marginal_known = False
        else:
            self.marginal_j += marginal_j
        self.peak_w = peak_w if self.peak_w is None else max(self.peak_w, peak_w)


class IdleBaseline:
    """Rolling estimate of power with no inference in flight (an exponential moving average).

    Samples count only once the board has been idle for IDLE_SETTLE_S, so the tail of an
    inference (fans, clocks ramping down) does not inflate the baseline. It starts from the
    average over its whole warm-up, not from the last interval's: between two reads a counter
    may show no step or two (0 W, or twice the power).
    """

    def __init__(self) -> None:
        self.watts: float | None = None
        self._idle_time_s = 0.0
        self._idle_j = 0.0

    def update(self, mean_w: float, dt: float) -> None:
        if self.watts is None:
            self._idle_time_s += dt
            self._idle_j += mean_w * dt
            if self._idle_time_s >= IDLE_WARMUP_S:
                self.watts = self._idle_j / self._idle_time_s
            return
        alpha = min(1.0, dt / IDLE_TIME_CONSTANT_S)
        self.watts += alpha * (mean_w - self.watts)

    def reset(self) -> None:
        """Forget the baseline, e.g. after a power-mode change that moves idle power."""
        self.watts = None
        self._idle_time_s = 0.0
        self._idle_j = 0.0


class Meter:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, resolution_s: float = 0.0
    ) -> None:
        self._clock = clock
        self._edges = EdgeTracker(resolution_s)
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None
        self._counted = False  # the last segment came from an energy counter
        self._windows: dict[int, PendingWindow] = {}
        self._next_key = 1
        self._busy_until = float("-inf")
        self._shares = WorkShares()
        self.idle = IdleBaseline()
        self.total_j = 0.0
        self.samples = 0
        self.latest_w: float | None = None

    @property
    def in_flight(self) -> int:
        """Windows started and not yet ended (what the simulated source loads the board with)."""
        with self._lock:
            return sum(1 for w in self._windows.values() if w.end is None)

    @property
    def working(self) -> int:
        """Windows working now as far as the meter can tell: streams that have begun producing
        tokens, and windows whose work is not visible (what the simulated board draws for)."""
        with self._lock:
            return sum(
                1
                for w in self._windows.values()
                if w.end is None and (w.work is None or w.work.first_at is not None)
            )

    @property
    def resolution_s(self) -> float:
        """The source's resolution (its SourceInfo.resolution_s), for each window's error bound."""
        return self._edges.resolution_s

    @resolution_s.setter
    def resolution_s(self, seconds: float) -> None:
        self._edges.resolution_s = seconds

    @property
    def last_sample_t(self) -> float | None:
        """When the last sample that counts toward energy was taken (None after a gap)."""
        with self._lock:
            return None if self._last is None else self._last[0]

    @property
    def idle_w(self) -> float | None:
        return self.idle.watts

    def open_window(self, start: float | None = None, *, work_visible: bool = False) -> int:
        """Start a window; `work_visible` when its tokens will be recorded as they arrive."""
        with self._lock:
            key = self._next_key
            self._next_key += 1
            self._windows[key] = PendingWindow(
                start=self._clock() if start is None else start,
                work=Work() if work_visible else None,
            )
            return key

    def record_work(self, key: int, tokens: int) -> None:
        """Tokens of a visible-work window arrived now (the proxy calls this per chunk)."""
        with self._lock:
            window = self._windows.get(key)
            work = None if window is None else window.work
            if work is not None and tokens > 0:
                work.add(tokens, self._clock())

    def end_window(
        self,
        key: int,
        callback: Callable[[WindowEnergy], None] | None = None,
        *,
        prompt_s: float | None = None,
    ) -> PendingWindow:
        """Mark the window ended now; `callback` runs (on the sampler thread) once it is metered.

        `prompt_s` is how long the server says it processed the prompt (llama.cpp
        `timings.prompt_ms`, Ollama `prompt_eval_duration`): that time before the first token is
        this window's work.
        """
        with self._lock:
            window = self._windows[key]
            if window.end is None:
                window.end = self._clock()
            work = window.work
            if work is not None and not work.ended:
                work.ended = True
                if prompt_s is not None and prompt_s > 0 and work.first_at is not None:
                    work.prompt = (work.first_at - prompt_s, work.first_at)
            if callback is not None:
                window.callbacks.append(callback)
            self._finish_ready()
            return window

    async def finish_window(
        self, key: int, timeout: float = 5.0, *, prompt_s: float | None = None
    ) -> WindowEnergy:
        """End a window and wait, without blocking the event loop, until it is metered.

        If no sample arrives within `timeout` (sensor gone, sampler stopped), the window is
        finished with the energy integrated so far rather than waiting forever.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WindowEnergy] = loop.create_future()

        def deliver(result: WindowEnergy) -> None:
            loop.call_soon_threadsafe(_set_result, future, result)

        self.end_window(key, deliver, prompt_s=prompt_s)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            with self._lock:
                window = self._windows.get(key)
                if window is not None:
                    self._finish(key, window)
            return await future

    def add_sample(self, t: float, watts: float, segment_j: float | None = None) -> None:
        """Integrate the segment from the previous sample to this one.

        `segment_j` is the exact energy of the segment when the hardware counts energy itself
        (RAPL, NVML); the segment's power is then taken as constant.
        """
        with self._lock:
            self.samples += 1
            self.latest_w = watts
            last = self._last
            self._last = (t, watts)
            if last is not None and 0 < t - last[0] <= MAX_GAP_S:
                t0, p0 = last
                self._counted = segment_j is not None and plausible_watts(segment_j / (t - t0))
                if self._counted:
                    assert segment_j is not None
                    p0 = watts = segment_j / (t - t0)
                self._integrate(t0, p0, t, watts)
            else:
                self._edges.reset()
            self._finish_ready()

    def drop_gap(self) -> None:
        """Forget the last sample so no energy is invented across a sensor outage."""
        with self._lock:
            self._last = None
            self._edges.reset()

    def _integrate(self, t0: float, p0: float, t1: float, p1: float) -> None:
        self._note_edges(t0, p0, t1, p1)
        slope = (p1 - p0) / (t1 - t0)
        cuts = {t0, t1}
        for w in self._windows.values():
            for edge in (w.start, w.end):
                if edge is not None and t0 < edge < t1:
                    cuts.add(edge)
        points = sorted(cuts)
        idle_w = self.idle.watts
        for a, b in pairwise(points):
            pa = p0 + slope * (a - t0)
            pb = p0 + slope * (b - t0)
            energy = (pa + pb) / 2.0 * (b - a)
            self.total_j += energy
            active = [
                w for w in self._windows.values() if w.start <= a and (w.end is None or w.end >= b)
            ]
            if not active:
                if b - self._busy_until >= IDLE_SETTLE_S:
                    self.idle.update(energy / (b - a), b - a)
                continue
            self._busy_until = b
            marginal = None if idle_w is None else energy - idle_w * (b - a)
            self._shares.share(
                a, b, active, energy_j=energy, marginal_j=marginal, peak_w=max(pa, pb)
            )

    def _note_edges(self, t0: float, p0: float, t1: float, p1: float) -> None:
        """Keep, for each window edge in this interval, what its error bound needs."""
        edge = self._edges.interval(t0, p0, t1, p1, counter=self._counted)
        for w in self._windows.values():
            if w.start_edge is None and w.start < t1:
                # A window opened before the first sample also misses the time until then.
                missed = max(0.0, t0 - w.start)
                w.start_edge = replace(
                    edge,
                    low_w=0.0 if missed else edge.low_w,
                    position=max(0.0, w.start - t0) / (t1 - t0),
                    missed_s=missed,
                )
            if w.end_edge is None and w.end is not None and w.end <= t1:
                w.end_edge = replace(edge, position=max(0.0, w.end - t0) / (t1 - t0))

    def _finish_ready(self) -> None:
        if self._last is None:
            return
        now = self._last[0]
        for key, w in list(self._windows.items()):
            if w.end is not None and w.end <= now and self._shares.settle(w, now):
                self._finish(key, w)

    def _finish(self, key: int, w: PendingWindow) -> None:
        self._shares.settle(w, None)
        end = self._clock() if w.end is None else w.end
        duration = max(0.0, end - w.start)
        # A window finished before the sampler passed its end (no sample came) misses all the
        # energy since the last sample: at the last power seen, that much more error.
        last_t, last_w = self._last if self._last is not None else (w.start, 0.0)
        missed_j = 0.0 if w.end_edge else last_w * max(0.0, end - max(last_t, w.start))
        unseen = Edge(0.0, last_w, last_w)
        error_j = missed_j + error_bound_j(
            w.start_edge or unseen,
            w.end_edge or unseen,
            self.resolution_s,
            counter=self._counted,
            energy_j=w.energy_j,
            duration_s=duration,
        )
        w.result = WindowEnergy(
            energy_j=w.energy_j,
            marginal_j=max(0.0, w.marginal_j) if w.marginal_known else None,
            avg_w=w.energy_j / duration if duration > 0 else w.peak_w,
            peak_w=w.peak_w,
            duration_s=duration,
            idle_w=self.idle.watts,
            error_j=error_j,
        )
        del self._windows[key]
        w.done.set()
        for callback in w.callbacks:
            callback(w.result)


def _set_result(future: asyncio.Future[WindowEnergy], result: WindowEnergy) -> None:
    if not future.done():
        future.set_result(result)
