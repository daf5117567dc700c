"""The one interface every power source implements, so the sampler never knows the hardware."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

MODULE_INPUT = "module input rail"
SUM_OF_RAILS = "sum of module rails"
CALIBRATED_TO_WALL = "calibrated to wall"


@dataclass(frozen=True, slots=True)
class Calibration:
    """Linear correction from what a sensor sees to what the wall plug sees."""

    gain: float = 1.0
    offset_w: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.gain == 1.0 and self.offset_w == 0.0

    def apply(self, watts: float) -> float:
        return watts * self.gain + self.offset_w


@dataclass(frozen=True, slots=True)
class RailReading:
    """One rail at one instant; None fields were not readable this time."""

    name: str
    power_w: float | None
    voltage_v: float | None = None
    current_a: float | None = None

    @property
    def available(self) -> bool:
        return self.power_w is not None


@dataclass(frozen=True, slots=True)
class PowerReading:
    """What a source saw at one instant.

    `board_w` is the whole-board power before calibration (None when the rails that make it up
    were unreadable). `energy_j` is set by sources that expose a hardware energy counter
    (RAPL, NVML); the sampler then integrates the counter instead of the power.
    """

    board_w: float | None
    rails: tuple[RailReading, ...] = ()
    energy_j: float | None = None


@dataclass(frozen=True, slots=True)
class RailInfo:
    name: str
    whole_board: bool


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Static description of a detected source, for `info` and `doctor`.

    `resolution_s` is how often the sensor has a new value (a counter's step, the chip's
    averaging interval, tegrastats' line): a reading cannot place energy in time more finely.
    None where the driver does not say.
    """

    kind: str
    path: str
    boundary: str
    rails: tuple[RailInfo, ...]
    notes: tuple[str, ...] = field(default=())
    resolution_s: float | None = None


class PowerSource(Protocol):
    """A power sensor the agent can poll.

    `read` must never raise for a sensor that went missing or returned garbage: it returns None
    for that rail (and logs once), so one bad file never stops the meter.
    """

    @property
    def info(self) -> SourceInfo: ...

    def read(self) -> PowerReading: ...

    def close(self) -> None: ...
