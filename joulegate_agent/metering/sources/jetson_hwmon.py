"""Jetson INA3221 on JetPack 5/6/7: the mainline `ina3221` hwmon driver (Xavier JP5, Orin, Thor).

The driver has no power file: P = V x I from `in<n>_input` (mV) and `curr<n>_input` (mA), for
channels 1..3 only (in4..in6 are shunt voltages, in7 a sum). AGX Orin has two chips.
"""

from __future__ import annotations

from pathlib import Path

from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.rails import (
    Channel,
    RailSource,
    jetson_source,
    update_interval_s,
)
from joulegate_agent.metering.sysfs import SysfsRoot

PATTERN = "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"


def detect_jetson_hwmon(sysfs: SysfsRoot) -> RailSource:
    chips = sysfs.glob(PATTERN)
    channels = [channel for chip in chips for channel in _channels(sysfs, chip)]
    if not channels:
        raise NotDetected(f"no labelled ina3221 channel under {PATTERN}")
    return jetson_source(
        sysfs,
        "jetson_hwmon",
        chips,
        channels,
        _notes(sysfs, chips),
        resolution_s=update_interval_s(sysfs, chips),
    )


def _channels(sysfs: SysfsRoot, chip: Path) -> list[Channel]:
    channels = []
    for n in (1, 2, 3):
        label_file = chip / f"in{n}_label"
        label = sysfs.read_text(label_file) if label_file.exists() else None
        if label:
            channels.append(
                Channel(label, voltage=chip / f"in{n}_input", current=chip / f"curr{n}_input")
            )
    return channels


def _notes(sysfs: SysfsRoot, chips: list[Path]) -> tuple[str, ...]:
    """The chip's own averaging says how often a new value can appear."""
    notes = []
    for chip in chips:
        if not (chip / "update_interval").exists() or not (chip / "samples").exists():
            continue
        interval = sysfs.read_int(chip / "update_interval")
        samples = sysfs.read_int(chip / "samples")
        if interval is not None and samples is not None:
            notes.append(
                f"{chip.parent.parent.name}: averages {samples} samples, "
                f"new value every {interval} ms"
            )
    return tuple(notes)
