"""Intel/AMD RAPL energy counters: `/sys/class/powercap/intel-rapl:<n>`.

Top-level zones only (`intel-rapl:0:0` and such are parts of their package). `psys`, where a
laptop has it, covers the whole platform; otherwise the packages are summed. The counters wrap
at `max_energy_range_uj` and are often readable only by root. Intel documents an update about
every millisecond; the step is measured at start all the same.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from joulegate_agent.metering.sources.base import PowerReading, RailInfo, RailReading, SourceInfo
from joulegate_agent.metering.sources.counter import (
    DeltaPower,
    WrappingCounter,
    probe_update_period,
)
from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sysfs import SysfsRoot

PATTERN = "/sys/class/powercap/intel-rapl:*"
PLATFORM = "psys"
TYPICAL_STEP_S = 0.001


@dataclass(eq=False)
class _Zone:
    name: str
    energy_file: Path
    counter: WrappingCounter
    power: DeltaPower


class RaplSource:
    """Energy is the unwrapped counter since the first read; power is its change between reads."""

    def __init__(
        self,
        sysfs: SysfsRoot,
        zones: list[_Zone],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sysfs = sysfs
        self._zones = zones
        self._clock = clock
        whole = PLATFORM if any(z.name == PLATFORM for z in zones) else None
        self._in_board = tuple(whole is None or z.name == whole for z in zones)
        # The probe's reads also start the counters and their watts, so the first read has a power.
        step = probe_update_period(
            lambda: [energy for energy, _ in self._poll()], clock, sleep, typical_s=TYPICAL_STEP_S
        )
        for zone in zones:
            zone.power.set_step(step)
        self._info = SourceInfo(
            kind="rapl",
            path=", ".join(sysfs.display(z.energy_file.parent) for z in zones),
            boundary="platform (RAPL psys)" if whole else "sum of CPU packages (RAPL)",
            rails=tuple(RailInfo(z.name, z.name == whole) for z in zones),
            notes=("RAPL covers the CPU package (psys: the platform), not the whole board",),
            resolution_s=step,
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    def read(self) -> PowerReading:
        rails = []
        board_w, board_j, complete = 0.0, 0.0, True
        for zone, in_board, (energy, power) in zip(
            self._zones, self._in_board, self._poll(), strict=True
        ):
            rails.append(RailReading(zone.name, power))
            if in_board:
                if energy is None or power is None:
                    complete = False
                else:
                    board_w, board_j = board_w + power, board_j + energy
        if not complete:
            return PowerReading(board_w=None, rails=tuple(rails))
        return PowerReading(board_w=board_w, rails=tuple(rails), energy_j=board_j)

    def _poll(self) -> list[tuple[float | None, float | None]]:
        """Each zone's energy since the first read (J) and its watts, None where unreadable."""
        now = self._clock()
        polled = []
        for zone in self._zones:
            raw = self._sysfs.read_int(zone.energy_file)
            if raw is not None and not 0 <= raw <= zone.counter.max_raw:
                raw = None  # garbage: it would throw the unwrapped count off for good
            energy = None if raw is None else zone.counter.update(raw) / 1e6
            polled.append((energy, zone.power.update(now, energy)))
        return polled

    def close(self) -> None:
        """Nothing is held open between reads."""


def detect_rapl(
    sysfs: SysfsRoot,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RaplSource:
    zones = []
    for folder in sysfs.glob(PATTERN):
        if not re.fullmatch(r"intel-rapl:\d+", folder.name):
            continue
        name = sysfs.read_text(folder / "name")
        max_raw = sysfs.read_int(folder / "max_energy_range_uj")
        if name and max_raw and (folder / "energy_uj").exists():
            zones.append(_Zone(name, folder / "energy_uj", WrappingCounter(max_raw), DeltaPower()))
    if not zones:
        raise NotDetected(f"no top-level RAPL zone with name and energy_uj under {PATTERN}")
    return RaplSource(sysfs, zones, clock, sleep)
