"""Calibration to the wall: the module rail misses the carrier, NVMe, USB and the supply's losses.

A gain and offset (e.g. fitted against a smart plug in Home Assistant) close that gap; the figures
then name the "calibrated to wall" boundary. Rails stay as the sensor reports them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from joulegate_agent.metering.sources.base import (
    CALIBRATED_TO_WALL,
    Calibration,
    PowerReading,
    PowerSource,
    SourceInfo,
)


class CalibratedSource:
    """Applies `calibration` to board power, and to the energy counter where there is one."""

    def __init__(
        self,
        source: PowerSource,
        calibration: Calibration,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.calibration = calibration
        self._clock = clock
        self._start: float | None = None
        info = source.info
        if not calibration.is_identity:
            info = dataclasses.replace(
                info,
                boundary=CALIBRATED_TO_WALL,
                notes=(
                    *info.notes,
                    f"calibrated from {info.boundary}: "
                    f"gain {calibration.gain:g}, offset {calibration.offset_w:g} W",
                ),
            )
        self._info = info

    @property
    def info(self) -> SourceInfo:
        return self._info

    def read(self) -> PowerReading:
        reading = self.source.read()
        now = self._clock()
        if self._start is None:
            self._start = now
        cal = self.calibration
        board = None if reading.board_w is None else cal.apply(reading.board_w)
        # The offset is a power, so the counter gains offset x elapsed time.
        energy = (
            None
            if reading.energy_j is None
            else reading.energy_j * cal.gain + cal.offset_w * (now - self._start)
        )
        return PowerReading(board_w=board, rails=reading.rails, energy_j=energy)

    def close(self) -> None:
        self.source.close()
