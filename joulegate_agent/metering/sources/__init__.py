"""Finding the box's power sensors, best first.

Auto order: Jetson INA3221 (hwmon, then IIO) > generic hwmon > power_supply > RAPL > NVML. Every
source found is returned, best first; the first is the one to meter the board with (the others
may overlap it, so never add them up). tegrastats is the fallback: tried in auto only when none
of those is found (it starts a process, and meters at 1 s). The simulated source is only used
when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from joulegate_agent.metering.sources.base import Calibration, PowerSource
from joulegate_agent.metering.sources.calibrated import CalibratedSource
from joulegate_agent.metering.sources.errors import NoPowerSourceError, NotDetected
from joulegate_agent.metering.sources.hwmon import detect_hwmon
from joulegate_agent.metering.sources.jetson_hwmon import detect_jetson_hwmon
from joulegate_agent.metering.sources.jetson_iio import detect_jetson_iio
from joulegate_agent.metering.sources.nvml import detect_nvml
from joulegate_agent.metering.sources.power_supply import detect_power_supply
from joulegate_agent.metering.sources.rapl import detect_rapl
from joulegate_agent.metering.sources.tegrastats import detect_tegrastats
from joulegate_agent.metering.sysfs import SysfsRoot, as_sysfs

__all__ = [
    "KINDS",
    "CalibratedSource",
    "NoPowerSourceError",
    "detect_sources",
    "probe_sources",
]

Detector = Callable[[SysfsRoot], PowerSource]

_DETECTORS: dict[str, tuple[tuple[str, Detector], ...]] = {
    "jetson": (("jetson_hwmon", detect_jetson_hwmon), ("jetson_iio", detect_jetson_iio)),
    "hwmon": (("hwmon", detect_hwmon),),
    "power_supply": (("power_supply", detect_power_supply),),
    "rapl": (("rapl", detect_rapl),),
    "nvml": (("nvml", lambda _sysfs: detect_nvml()),),
}
_FALLBACK: tuple[str, Detector] = ("tegrastats", detect_tegrastats)
KINDS = ("auto", *_DETECTORS, _FALLBACK[0], "simulated")
_IDENTITY = Calibration()


def _no_load() -> int:
    return 0


def probe_sources(
    root: Path | SysfsRoot, kind: str = "auto", *, load: Callable[[], int] = _no_load
) -> tuple[list[PowerSource], dict[str, str]]:
    """The sources found, best first, and why each other detector found nothing."""
    if kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "simulated":
        # Imported here: the simulated board is built on sources.base, so importing it at the
        # top would make `import joulegate_agent.simulation.board` first fail half-way.
        from joulegate_agent.simulation.board import SimulatedOrinNano

        return [SimulatedOrinNano(load)], {}
    sysfs = as_sysfs(root)
    kinds = [k for k in _DETECTORS if kind in ("auto", k)]
    found, reasons = _detect([d for k in kinds for d in _DETECTORS[k]], sysfs)
    if kind == _FALLBACK[0] or (kind == "auto" and not found):
        fallback, why = _detect([_FALLBACK], sysfs)
        found += fallback
        reasons.update(why)
    return found, reasons


def _detect(
    detectors: list[tuple[str, Detector]], sysfs: SysfsRoot
) -> tuple[list[PowerSource], dict[str, str]]:
    found: list[PowerSource] = []
    reasons: dict[str, str] = {}
    for name, detect in detectors:
        try:
            found.append(detect(sysfs))
        except NotDetected as err:
            reasons[name] = str(err)
    return found, reasons


def detect_sources(
    root: Path | SysfsRoot,
    kind: str = "auto",
    *,
    load: Callable[[], int] = _no_load,
    calibration: Calibration = _IDENTITY,
) -> list[PowerSource]:
    """Sources best first; the first, which meters the board, carries the calibration.

    Raises NoPowerSourceError, with what to check for each kind, when nothing is found.
    """
    found, reasons = probe_sources(root, kind, load=load)
    if not found:
        raise NoPowerSourceError(reasons)
    if not calibration.is_identity:
        found[0] = CalibratedSource(found[0], calibration)
    return found
