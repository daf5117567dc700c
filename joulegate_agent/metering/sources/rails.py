"""Sources made of rails read from files: Jetson INA3221, generic hwmon, power_supply.

They differ only in where the files are and in their units, so one class reads them all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from joulegate_agent.metering.sources.base import (
    MODULE_INPUT,
    SUM_OF_RAILS,
    PowerReading,
    RailInfo,
    RailReading,
    SourceInfo,
)
from joulegate_agent.metering.sysfs import SysfsRoot

# The only rail names ever hard-coded: the Jetson rails that measure the whole module's input
# (VIN: Jetson Thor, JetPack 7).
WHOLE_BOARD_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")
# Label of an INA3221 channel wired to nothing (AGX Orin).
NOT_CONNECTED = "NC"


@dataclass(frozen=True, slots=True)
class Channel:
    """Where one rail's values are, and how many of each file's units make a V, A or W.

    With a power file, power is read from it; otherwise it is voltage times current.
    """

    name: str
    voltage: Path | None = None
    per_volt: float = 1e3
    current: Path | None = None
    per_amp: float = 1e3
    power: Path | None = None
    per_watt: float = 1e3

    def read(self, sysfs: SysfsRoot) -> RailReading:
        volts = _scaled(sysfs, self.voltage, self.per_volt)
        amps = _scaled(sysfs, self.current, self.per_amp)
        if self.power is not None:
            watts = _scaled(sysfs, self.power, self.per_watt)
        elif volts is not None and amps is not None:
            watts = abs(volts * amps)  # a discharging battery may report negative current
            if not math.isfinite(watts):  # two absurd values overflowed: not a reading
                watts = None
        else:
            watts = None
        return RailReading(self.name, watts, volts, amps)


def _scaled(sysfs: SysfsRoot, path: Path | None, per_unit: float) -> float | None:
    if path is None:
        return None
    value = sysfs.read_float(path)
    return None if value is None else value / per_unit


class RailSource:
    """Reads every channel; board power is the whole-board rail, or the sum of all rails.

    A sum is None if any rail is unreadable: a partial sum would under-count silently.
    """

    def __init__(
        self,
        sysfs: SysfsRoot,
        *,
        kind: str,
        paths: Iterable[Path],
        channels: Sequence[Channel],
        whole: str | None,
        boundary: str,
        notes: tuple[str, ...] = (),
        resolution_s: float | None = None,
    ) -> None:
        self._sysfs = sysfs
        self._channels = tuple(channels)
        self._whole = whole
        self._info = SourceInfo(
            kind=kind,
            path=", ".join(sysfs.display(p) for p in paths),
            boundary=boundary,
            rails=tuple(RailInfo(c.name, c.name == whole) for c in self._channels),
            notes=notes,
            resolution_s=resolution_s,
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    def read(self) -> PowerReading:
        rails = tuple(channel.read(self._sysfs) for channel in self._channels)
        return PowerReading(board_w=board_power(rails, self._whole), rails=rails)

    def close(self) -> None:
        """Nothing is held open between reads."""


def board_power(rails: Sequence[RailReading], whole: str | None) -> float | None:
    """The whole-board rail when there is one; else the sum, only when every rail was read."""
    if whole is not None:
        return next((r.power_w for r in rails if r.name == whole), None)
    if all(r.available for r in rails):
        return sum(r.power_w for r in rails if r.power_w is not None)
    return None


def update_interval_s(sysfs: SysfsRoot, devices: Iterable[Path]) -> float | None:
    """How often the slowest of these hwmon devices has a new value: its `update_interval` (ms,
    the hwmon ABI), or None where none of them has the file."""
    intervals = [
        ms
        for device in devices
        if (device / "update_interval").exists()
        and (ms := sysfs.read_int(device / "update_interval")) is not None
        and ms >= 0
    ]
    return max(intervals) / 1000.0 if intervals else None


def jetson_source(
    sysfs: SysfsRoot,
    kind: str,
    paths: Sequence[Path],
    channels: Sequence[Channel],
    notes: tuple[str, ...] = (),
    *,
    resolution_s: float | None = None,
) -> RailSource:
    """A Jetson module: VDD_IN / POM_5V_IN is the board if present, else the sum without NC."""
    connected = [c for c in channels if c.name != NOT_CONNECTED]
    whole = next((c.name for c in connected if c.name in WHOLE_BOARD_RAILS), None)
    boundary = f"{MODULE_INPUT} ({whole})" if whole else SUM_OF_RAILS
    return RailSource(
        sysfs,
        kind=kind,
        paths=paths,
        channels=connected,
        whole=whole,
        boundary=boundary,
        notes=notes,
        resolution_s=resolution_s,
    )
