"""Finding the knobs this box offers, from sysfs and NVML (never a table of boards).

- Jetson (and any Linux with devfreq): the GPU's devfreq device, `max_freq` chosen from
  `available_frequencies` (at or above `min_freq`, which a lower cap could not go under).
- Any Linux with cpufreq: each policy's `scaling_max_freq`, from `scaling_available_frequencies`
  or spread between `cpuinfo_min_freq` and `cpuinfo_max_freq`; policies with the same
  frequencies share a knob.
- NVIDIA GPUs: the NVML power limit, spread between nvmlDeviceGetPowerManagementLimitConstraints.
- Every box: the number of inferences the agent lets through at once, used for the ladder only
  where no hardware knob exists.

nvpmodel modes are listed, never used: a mode persists across reboots, and modes that change the
CPUs online or the GPU's power-gating masks fail at run time or need a reboot; nvpmodel.conf
alone does not say reliably which modes keep the current masks. The clock caps reach the same
draws, are reset at boot, and need no reboot.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from joulegate_agent.metering.sysfs import SysfsRoot
from joulegate_agent.metering.thermal import GPU_DEVFREQ, NVPMODEL_CONF
from joulegate_agent.power.knobs import (
    ConcurrencyKnob,
    FileKnob,
    Knob,
    NvmlPowerLimitKnob,
    Writable,
    file_writable,
)
from joulegate_agent.power.ladder import Level, build_ladder

SPREAD_VALUES = 6
NVML_VALUES = 4
CONCURRENCY_STEPS = (1, 2, 4, 8, 16)
_MODEL_LINE = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)")
NVPMODEL_NOTE = (
    "nvpmodel modes are not used as levels: a mode persists across reboots, modes that change "
    "the CPUs online or the GPU's power-gating masks fail at run time or need a reboot, and "
    "nvpmodel.conf does not say reliably which keep the current masks; the GPU and CPU clock "
    "caps reach the same draws and are reset at boot"
)


@dataclass(slots=True)
class PowerDiscovery:
    knobs: list[Knob]
    ladder: list[Level]
    notes: list[str] = field(default_factory=list)
    nvpmodel_modes: dict[int, str] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True, slots=True)
class ConcurrencyHooks:
    """How the agent reads and sets its own limit, and the limit configured."""

    read: Callable[[], int | None]
    write: Callable[[int | None], None]
    configured: int | None


def _ints(text: str | None) -> list[int]:
    try:
        return [int(part) for part in (text or "").split()]
    except ValueError:
        return []


def _text(sysfs: SysfsRoot, path: Path) -> str | None:
    """An optional file: absent is an answer, not a fault to log."""
    return sysfs.read_text(path) if path.exists() else None


def _int(sysfs: SysfsRoot, path: Path) -> int | None:
    return sysfs.read_int(path) if path.exists() else None


def _spread(low: int, high: int, count: int, step: int) -> tuple[int, ...]:
    if high <= low:
        return (high,)
    return tuple(
        sorted({round((low + (high - low) * i / (count - 1)) / step) * step for i in range(count)})
    )


def _gpu_knobs(sysfs: SysfsRoot, writable: Writable, notes: list[str]) -> list[Knob]:
    knobs: list[Knob] = []
    for device in sysfs.glob("/sys/class/devfreq/*"):
        if not (GPU_DEVFREQ.search(device.name) or (device / "device" / "load").exists()):
            continue
        shown = sysfs.display(device / "max_freq")
        available = sorted(set(_ints(_text(sysfs, device / "available_frequencies"))))
        floor = _int(sysfs, device / "min_freq") or 0
        values = tuple(f for f in available if f >= floor)
        if len(values) < 2 or sysfs.read_int(device / "max_freq") is None:
            notes.append(f"{shown}: no list of frequencies to choose from")
            continue
        knobs.append(
            FileKnob(
                id="gpu_max_freq" if not knobs else f"gpu_max_freq_{len(knobs) + 1}",
                files=((device / "max_freq").resolve(),),
                shown=(shown,),
                values=values,
                unit_scale=1e-6,
                unit="MHz",
                writable=writable,
            )
        )
    return knobs


def _cpu_knobs(sysfs: SysfsRoot, writable: Writable, notes: list[str]) -> list[Knob]:
    policies = sysfs.glob("/sys/devices/system/cpu/cpufreq/policy*") or sysfs.glob(
        "/sys/devices/system/cpu/cpu[0-9]*/cpufreq"
    )
    groups: dict[tuple[int, ...], list[tuple[Path, str]]] = {}
    seen: set[Path] = set()
    for policy in policies:
        real = policy.resolve()
        if real in seen or not (policy / "scaling_max_freq").exists():
            continue
        seen.add(real)
        values = _cpu_values(sysfs, policy)
        shown = sysfs.display(policy / "scaling_max_freq")
        if len(values) < 2:
            notes.append(f"{shown}: no list or range of frequencies to choose from")
            continue
        groups.setdefault(values, []).append((real / "scaling_max_freq", shown))
    return [
        FileKnob(
            id="cpu_max_freq" if n == 0 else f"cpu_max_freq_{n + 1}",
            files=tuple(path for path, _ in members),
            shown=tuple(shown for _, shown in members),
            values=values,
            unit_scale=1e-3,
            unit="MHz",
            writable=writable,
        )
        for n, (values, members) in enumerate(groups.items())
    ]


def _cpu_values(sysfs: SysfsRoot, policy: Path) -> tuple[int, ...]:
    floor = _int(sysfs, policy / "scaling_min_freq") or 0
    available = _ints(_text(sysfs, policy / "scaling_available_frequencies"))
    if not available:
        low = _int(sysfs, policy / "cpuinfo_min_freq")
        high = _int(sysfs, policy / "cpuinfo_max_freq")
        if low is None or high is None:
            return ()
        available = list(_spread(max(low, floor), high, SPREAD_VALUES, 1000))
    return tuple(sorted({f for f in available if f >= floor}))


def _nvml_knobs(notes: list[str]) -> tuple[list[Knob], Callable[[], None]]:
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        return [], lambda: None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        notes.append(f"NVML did not start ({err}): no GPU power limit")
        return [], lambda: None
    knobs: list[Knob] = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            knob = _nvml_knob(nvml, handle, index, notes)
            if knob is not None:
                knobs.append(knob)
    except nvml.NVMLError as err:
        notes.append(f"NVML could not list the GPUs ({err})")
    if not knobs:
        nvml.nvmlShutdown()
        return [], lambda: None
    return knobs, nvml.nvmlShutdown


def _nvml_knob(nvml: ModuleType, handle: object, index: int, notes: list[str]) -> Knob | None:
    try:
        low, high = nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
    except nvml.NVMLError as err:
        notes.append(f"GPU {index}: no power-limit constraints ({err})")
        return None
    values = _spread(int(low), int(high), NVML_VALUES, 1000)
    if len(values) < 2:
        notes.append(f"GPU {index}: its power limit cannot be changed ({low}..{high} mW)")
        return None
    return NvmlPowerLimitKnob(nvml, handle, index, values)


def concurrency_values(configured: int | None) -> tuple[int, ...]:
    """Inferences at once, lowest draw first; 0 (no limit of the agent's own) last."""
    if configured is None:
        return (*(s for s in CONCURRENCY_STEPS if s <= 4), 0)
    return tuple(sorted({s for s in CONCURRENCY_STEPS if s < configured} | {configured}))


def nvpmodel_modes(sysfs: SysfsRoot) -> dict[int, str]:
    conf = sysfs.path(NVPMODEL_CONF)
    text = sysfs.read_text(conf) if conf.exists() else None
    return {int(m.group(1)): m.group(2) for m in _MODEL_LINE.finditer(text or "")}


def discover(
    sysfs: SysfsRoot,
    *,
    writable: Writable = file_writable,
    nvml: bool = True,
    concurrency: ConcurrencyHooks | None = None,
    extra: list[Knob] | None = None,
) -> PowerDiscovery:
    """Every knob found, and the ladder: built from the hardware knobs, or from the concurrency
    level where the box offers none. `extra`: knobs found elsewhere (the simulated board's)."""
    notes: list[str] = []
    knobs: list[Knob] = [*(extra or []), *_gpu_knobs(sysfs, writable, notes)]
    knobs += _cpu_knobs(sysfs, writable, notes)
    close: Callable[[], None] = lambda: None  # noqa: E731 - replaced when NVML is found
    if nvml:
        nvml_knobs, close = _nvml_knobs(notes)
        knobs += nvml_knobs
    hardware = list(knobs)
    if concurrency is not None:
        knobs.append(
            ConcurrencyKnob(
                concurrency_values(concurrency.configured),
                concurrency.read,
                concurrency.write,
                concurrency.configured,
            )
        )
    modes = nvpmodel_modes(sysfs)
    if modes:
        notes.append(NVPMODEL_NOTE)
    ladder = build_ladder(hardware or knobs)
    return PowerDiscovery(knobs, ladder, notes, modes, close)
