"""NVIDIA GPUs (desktop, datacenter; not Jetson) through NVML, from the optional `nvidia-ml-py`.

`pynvml` is imported only when NVML is asked for, so the agent runs without it. Volta and newer
count energy in mJ (`nvmlDeviceGetTotalEnergyConsumption`), which the sampler integrates; older
GPUs give power in mW. The boundary is the GPU board, not the machine. The counter moves in steps
(about 100 ms on an H200), measured at start.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from joulegate_agent.metering.sources.base import PowerReading, RailInfo, RailReading, SourceInfo
from joulegate_agent.metering.sources.counter import DeltaPower, probe_update_period
from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.rails import board_power
from joulegate_agent.metering.sysfs import OnceLog

TYPICAL_STEP_S = 0.1


class NvmlSource:
    """One rail per GPU; board power and energy are their sums."""

    def __init__(
        self,
        nvml: ModuleType,
        handles: list[Any],
        names: list[str],
        use_counter: bool,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._nvml = nvml
        self._handles = handles
        self._names = names
        self._use_counter = use_counter
        self._clock = clock
        self._powers = [DeltaPower() for _ in handles]
        self._log = OnceLog()
        step = None
        if use_counter:
            # The probe's reads also start the counters' watts, so the first read has a power.
            step = probe_update_period(
                lambda: [energy for energy, _ in self._poll_counters()],
                clock,
                sleep,
                typical_s=TYPICAL_STEP_S,
            )
            for power in self._powers:
                power.set_step(step)
        self._info = SourceInfo(
            kind="nvml",
            path="nvml",
            boundary="GPU board (NVML)" if len(names) == 1 else "sum of GPU boards (NVML)",
            rails=tuple(RailInfo(name, whole_board=False) for name in names),
            notes=(
                "energy counter (mJ)" if use_counter else "power readings (mW, averaged by NVML)",
            ),
            resolution_s=step,
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    def read(self) -> PowerReading:
        rails = []
        energies: list[float | None] = []
        if self._use_counter:
            for name, (energy_j, watts) in zip(self._names, self._poll_counters(), strict=True):
                energies.append(energy_j)
                rails.append(RailReading(name, watts))
        else:
            for name, handle in zip(self._names, self._handles, strict=True):
                milliwatts = self._call(name, self._nvml.nvmlDeviceGetPowerUsage, handle)
                rails.append(RailReading(name, None if milliwatts is None else milliwatts / 1e3))
        board = board_power(rails, whole=None)
        energy_total = (
            sum(e for e in energies if e is not None)
            if self._use_counter and board is not None and None not in energies
            else None
        )
        return PowerReading(board_w=board, rails=tuple(rails), energy_j=energy_total)

    def _poll_counters(self) -> list[tuple[float | None, float | None]]:
        """Each GPU's counter (J) and its watts, None where NVML failed."""
        now = self._clock()
        polled = []
        for name, handle, power in zip(self._names, self._handles, self._powers, strict=True):
            energy = self._call(name, self._nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
            energy_j = None if energy is None else energy / 1e3
            polled.append((energy_j, power.update(now, energy_j)))
        return polled

    def _call(self, name: str, function: Callable[[Any], int], handle: Any) -> float | None:
        try:
            value = float(function(handle))
        except self._nvml.NVMLError as err:
            self._log.failed(f"NVML {name}", str(err))
            return None
        self._log.recovered(f"NVML {name}")
        return value

    def close(self) -> None:
        self._nvml.nvmlShutdown()


def detect_nvml(
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
) -> NvmlSource:
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError as err:
        raise NotDetected("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from err
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        raise NotDetected(f"NVML did not start ({err}): is the NVIDIA driver loaded?") from err
    try:
        count = nvml.nvmlDeviceGetCount()
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        names = [f"GPU{i} {_text(nvml.nvmlDeviceGetName(h))}" for i, h in enumerate(handles)]
        use_counter = bool(handles) and all(_has_counter(nvml, h) for h in handles)
    except nvml.NVMLError as err:
        nvml.nvmlShutdown()
        raise NotDetected(f"NVML could not list the GPUs ({err})") from err
    if not handles:
        nvml.nvmlShutdown()
        raise NotDetected("NVML found no GPU")
    return NvmlSource(nvml, handles, names, use_counter, clock=clock, sleep=sleep)


def _has_counter(nvml: ModuleType, handle: Any) -> bool:
    """Volta and newer have the energy counter; older GPUs raise NOT_SUPPORTED."""
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except nvml.NVMLError:
        return False
    return True


def _text(name: str | bytes) -> str:
    """Older nvidia-ml-py versions return bytes."""
    return name.decode() if isinstance(name, bytes) else name
