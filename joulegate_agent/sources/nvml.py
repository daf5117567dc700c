"""NVIDIA GPUs (desktop, datacenter; not Jetson) through NVML, from the optional `nvidia-ml-py`.

`pynvml` is imported only when NVML is asked for, so the agent runs without it. Volta and newer
count energy in mJ (`nvmlDeviceGetTotalEnergyConsumption`), which the sampler integrates; older
GPUs give power in mW. The boundary is the GPU board, not the machine.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from joulegate_agent.sources.base import PowerReading, RailInfo, RailReading, SourceInfo
from joulegate_agent.sources.counter import DeltaPower
from joulegate_agent.sources.errors import NotDetected
from joulegate_agent.sources.rails import board_power
from joulegate_agent.sysfs import OnceLog


class NvmlSource:
    """One rail per GPU; board power and energy are their sums."""

    def __init__(
        self,
        nvml: ModuleType,
        handles: list[Any],
        names: list[str],
        use_counter: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nvml = nvml
        self._handles = handles
        self._names = names
        self._use_counter = use_counter
        self._clock = clock
        self._powers = [DeltaPower() for _ in handles]
        self._log = OnceLog()
        self._info = SourceInfo(
            kind="nvml",
            path="nvml",
            boundary="GPU board (NVML)" if len(names) == 1 else "sum of GPU boards (NVML)",
            rails=tuple(RailInfo(name, whole_board=False) for name in names),
            notes=(
                "energy counter (mJ)" if use_counter else "power readings (mW, averaged by NVML)",
            ),
        )
        if use_counter:
            self.read()  # sets the counters' start; the next read has a power

    @property
    def info(self) -> SourceInfo:
        return self._info

    def read(self) -> PowerReading:
        now = self._clock()
        rails = []
        energies: list[float | None] = []
        for name, handle, power in zip(self._names, self._handles, self._powers, strict=True):
            if self._use_counter:
                energy = self._call(name, self._nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
                energy_j = None if energy is None else energy / 1e3
                energies.append(energy_j)
                rails.append(RailReading(name, power.update(now, energy_j)))
            else:
                milliwatts = self._call(name, self._nvml.nvmlDeviceGetPowerUsage, handle)
                rails.append(RailReading(name, None if milliwatts is None else milliwatts / 1e3))
        board = board_power(rails, whole=None)
        energy_total = (
            sum(e for e in energies if e is not None)
            if self._use_counter and board is not None and None not in energies
            else None
        )
        return PowerReading(board_w=board, rails=tuple(rails), energy_j=energy_total)

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


def detect_nvml(clock: Callable[[], float] = time.monotonic) -> NvmlSource:
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
    return NvmlSource(nvml, handles, names, use_counter, clock)


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
