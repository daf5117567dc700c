"""A thread that polls the power source at a fixed rate on the monotonic clock.

A thread, not an asyncio task: sysfs reads block, and sampling must keep its rate while the
event loop is busy relaying streams.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from joulegate_agent.metering.meter import Meter, plausible_watts
from joulegate_agent.metering.sources.base import PowerReading, PowerSource

_LOGGER = logging.getLogger(__name__)


class Sampler:
    def __init__(
        self,
        source: PowerSource,
        meter: Meter,
        rate_hz: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_sample: Callable[[float, PowerReading], None] | None = None,
    ) -> None:
        if not 0.1 <= rate_hz <= 1000:
            raise ValueError(f"sample rate must be between 0.1 and 1000 Hz, got {rate_hz}")
        self.source = source
        self.meter = meter
        meter.resolution_s = source.info.resolution_s or 0.0  # for each window's error bound
        self.rate_hz = rate_hz
        self.latest: PowerReading | None = None
        self.worst_gap_s = 0.0
        self._clock = clock
        self._on_sample = on_sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_t: float | None = None
        self._last_energy_j: float | None = None
        self._unavailable_logged = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="joulegate-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def sample_once(self) -> None:
        """Take one sample now; the thread calls this, and so can tests and `measure`."""
        reading = self.source.read()
        t = self._clock()
        if reading.board_w is not None and not plausible_watts(reading.board_w):
            # A broken sensor's NaN, infinity, negative or absurd watts: not the board's power,
            # and no energy is counted from it.
            reading = replace(reading, board_w=None, energy_j=None)
        self.latest = reading
        if self._last_t is not None:
            self.worst_gap_s = max(self.worst_gap_s, t - self._last_t)
        self._last_t = t
        if reading.board_w is None:
            if not self._unavailable_logged:
                _LOGGER.warning(
                    "Board power is unavailable; energy is not counted until it returns"
                )
                self._unavailable_logged = True
            self.meter.drop_gap()
            self._last_energy_j = None
            return
        if self._unavailable_logged:
            _LOGGER.warning("Board power is available again")
            self._unavailable_logged = False
        segment_j = None
        energy_j = reading.energy_j
        if energy_j is not None and math.isfinite(energy_j):
            if self._last_energy_j is not None and energy_j >= self._last_energy_j:
                segment_j = energy_j - self._last_energy_j  # a counter that ran back is not used
            self._last_energy_j = energy_j
        else:
            self._last_energy_j = None
        self.meter.add_sample(t, reading.board_w, segment_j)
        if self._on_sample is not None:
            self._on_sample(t, reading)

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = self._clock()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:
                _LOGGER.exception("Sampling failed; the sampler keeps running")
            next_t += period
            delay = next_t - self._clock()
            if delay < 0:
                next_t = self._clock()
                delay = 0.0
            self._stop.wait(delay)
