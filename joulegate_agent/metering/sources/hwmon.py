"""Any other hwmon power sensor (INA219/INA226 on a carrier board, PMBus, ...).

`power<n>_input` (µW) where the chip has it, else `in<n>_input` (mV) with `curr<n>_input` (mA)
of the same n. The Jetson `ina3221` (read with its labels elsewhere) and `soctherm_oc` (event
counters, not power) are skipped. Several sensors are summed: check that they do not overlap.
"""

from __future__ import annotations

import re
from pathlib import Path

from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.rails import Channel, RailSource, update_interval_s
from joulegate_agent.metering.sysfs import SysfsRoot

PATTERN = "/sys/class/hwmon/hwmon*"
SKIPPED = frozenset({"ina3221", "soctherm_oc"})


def detect_hwmon(sysfs: SysfsRoot) -> RailSource:
    devices: list[Path] = []
    channels: list[Channel] = []
    for device in sysfs.glob(PATTERN):
        name = sysfs.read_text(device / "name") if (device / "name").exists() else None
        if name is None or name in SKIPPED:
            continue
        found = _channels(sysfs, device, name)
        if found:
            devices.append(device)
            channels.extend(found)
    if not channels:
        raise NotDetected(f"no power<n>_input, nor in<n>_input with curr<n>_input, under {PATTERN}")
    boundary = (
        f"hwmon sensor ({channels[0].name})" if len(channels) == 1 else "sum of hwmon sensors"
    )
    return RailSource(
        sysfs,
        kind="hwmon",
        paths=devices,
        channels=channels,
        whole=None,
        boundary=boundary,
        resolution_s=update_interval_s(sysfs, devices),
    )


def _indices(device: Path, prefix: str) -> list[int]:
    found = (re.fullmatch(rf"{prefix}(\d+)_input", p.name) for p in device.glob(f"{prefix}*_input"))
    return sorted(int(m.group(1)) for m in found if m)


def _label(sysfs: SysfsRoot, device: Path, name: str, channel: str) -> str:
    label_file = device / f"{channel}_label"
    label = sysfs.read_text(label_file) if label_file.exists() else None
    return f"{name} {label or channel}"


def _channels(sysfs: SysfsRoot, device: Path, name: str) -> list[Channel]:
    powers = _indices(device, "power")
    if powers:
        return [
            Channel(
                _label(sysfs, device, name, f"power{n}"),
                power=device / f"power{n}_input",
                per_watt=1e6,
            )
            for n in powers
        ]
    return [
        Channel(
            _label(sysfs, device, name, f"in{n}"),
            voltage=device / f"in{n}_input",
            current=device / f"curr{n}_input",
        )
        for n in _indices(device, "curr")
        if (device / f"in{n}_input").exists()
    ]
