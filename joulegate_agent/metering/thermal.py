"""Heat, throttling and power mode: what explains a slow or costly inference besides the model.

Polled at about 1 Hz, not at the sampler's rate: the files are found once and each read touches
only a few small files. Nothing here runs `nvpmodel`; the mode comes from the files it writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from joulegate_agent.metering.sysfs import SysfsRoot, as_sysfs

OFF_MILLI_C = -256000  # what a switched-off Jetson sensor reads
DUMMY_ZONES = frozenset({"PMIC-Die"})  # a fixed value, not a measurement
CPU_CAPPED_RATIO = 0.7  # under load, a CPU clock below 70 % of its limit counts as held back
GPU_DEVFREQ = re.compile(r"gpu|g[a-z]\d+b$")  # 57000000.gpu, 17000000.ga10b, ...
OC_EVENTS = {
    "oc1_event_cnt": "under-voltage",
    "oc2_event_cnt": "over-current",
    "oc3_event_cnt": "over-current",
}
NVPMODEL_STATUS = "/var/lib/nvpmodel/status"
NVPMODEL_CONF = "/etc/nvpmodel.conf"
_PMODE = re.compile(r"pmode:(\d+)")
_MODEL_LINE = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)")


@dataclass(frozen=True, slots=True)
class PowerMode:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class ThermalReading:
    """Zones in °C by type; `throttling` holds the reasons the board is held back, if any."""

    zones: dict[str, float]
    max_c: float | None
    throttling: tuple[str, ...]
    power_mode: PowerMode | None


class TemperatureModel(Protocol):
    """What the simulated source offers in place of thermal zones."""

    def temperature_c(self) -> float: ...


class ThermalReader:
    def __init__(self, root: Path | SysfsRoot, simulated: TemperatureModel | None = None) -> None:
        self._sysfs = sysfs = as_sysfs(root)
        self._simulated = simulated
        self._zones = [
            (kind, zone / "temp")
            for zone in sysfs.glob("/sys/devices/virtual/thermal/thermal_zone*")
            if (kind := _name(sysfs, zone / "type")) and kind not in DUMMY_ZONES
        ]
        # A fan spinning is cooling, not throttling.
        self._cooling = [
            (kind, device)
            for device in sysfs.glob("/sys/class/thermal/cooling_device*")
            if (kind := _name(sysfs, device / "type")) and "fan" not in kind
        ]
        self._cpus = sysfs.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq")
        self._gpus = [d for d in sysfs.glob("/sys/class/devfreq/*") if GPU_DEVFREQ.search(d.name)]
        self._oc_files = [
            device / counter
            for device in sysfs.glob("/sys/class/hwmon/hwmon*")
            if _name(sysfs, device / "name") == "soctherm_oc"
            for counter in OC_EVENTS
            if (device / counter).exists()
        ]
        self._oc_last: dict[Path, int] = {}
        self._mode_names = self._read_mode_names()
        self.power_modes = simulated is None and any(
            sysfs.path(name).exists() for name in (NVPMODEL_CONF, NVPMODEL_STATUS)
        )
        """Whether the board has nvpmodel power modes at all (its config or status file was there
        at start): a reading without a mode is then a blip (nvpmodel rewriting its status file),
        not a board that never has one."""

    def read(self, under_load: bool = False) -> ThermalReading:
        """`under_load`: inference is running, so clocks below their limit mean a cap."""
        if self._simulated is not None:
            t = self._simulated.temperature_c()
            zones = {"cpu-thermal": t - 1.0, "soc0-thermal": t - 0.5, "gpu-thermal": t}
            return ThermalReading(zones, max(zones.values()), (), None)
        zones = {}
        for kind, temp_file in self._zones:
            milli_c = self._sysfs.read_int(temp_file)
            if milli_c is not None and milli_c > OFF_MILLI_C:
                zones[kind] = milli_c / 1000
        reasons = [*self._cooling_reasons(), *self._oc_reasons()]
        if under_load:
            reasons += [*self._cpu_reasons(), *self._gpu_reasons()]
        return ThermalReading(
            zones=zones,
            max_c=max(zones.values(), default=None),
            throttling=tuple(reasons),
            power_mode=self._power_mode(),
        )

    def _cooling_reasons(self) -> list[str]:
        reasons = []
        for kind, device in self._cooling:
            state = self._sysfs.read_int(device / "cur_state")
            if state:
                top = self._sysfs.read_int(device / "max_state")
                reasons.append(f"cooling device {kind} active (state {state} of {top})")
        return reasons

    def _oc_reasons(self) -> list[str]:
        """Orin's soctherm counts under-voltage and over-current events since boot."""
        reasons = []
        for counter in self._oc_files:
            count = self._sysfs.read_int(counter)
            if count is None:
                continue
            last = self._oc_last.get(counter)
            self._oc_last[counter] = count
            if last is not None and count > last:
                reasons.append(f"{OC_EVENTS[counter.name]} events ({counter.name} +{count - last})")
        return reasons

    def _cpu_reasons(self) -> list[str]:
        """One reason for the CPU held back most, not one per core."""
        capped = []
        for cpufreq in self._cpus:
            cur = self._sysfs.read_int(cpufreq / "scaling_cur_freq")
            top = self._sysfs.read_int(cpufreq / "scaling_max_freq")
            if cur is not None and top and cur < CPU_CAPPED_RATIO * top:
                capped.append((cur / top, cur, top))
        if not capped:
            return []
        _, cur, top = min(capped)
        return [f"CPU clock {cur // 1000} MHz, well below its {top // 1000} MHz limit under load"]

    def _gpu_reasons(self) -> list[str]:
        reasons = []
        for devfreq in self._gpus:
            cur = self._sysfs.read_int(devfreq / "cur_freq")
            top = self._sysfs.read_int(devfreq / "max_freq")
            if cur is not None and top is not None and cur < top:
                reasons.append(
                    f"GPU clock {cur // 1_000_000} MHz, below its {top // 1_000_000} MHz limit "
                    "under load"
                )
        return reasons

    def _power_mode(self) -> PowerMode | None:
        status = self._sysfs.path(NVPMODEL_STATUS)
        text = self._sysfs.read_text(status) if status.exists() else None
        match = _PMODE.search(text or "")
        if match is None:
            return None
        mode = int(match.group(1))
        return PowerMode(mode, self._mode_names.get(mode, f"mode {mode}"))

    def _read_mode_names(self) -> dict[int, str]:
        conf = self._sysfs.path(NVPMODEL_CONF)
        text = self._sysfs.read_text(conf) if conf.exists() else None
        return {int(m.group(1)): m.group(2) for m in _MODEL_LINE.finditer(text or "")}


def _name(sysfs: SysfsRoot, path: Path) -> str | None:
    return sysfs.read_text(path) if path.exists() else None
