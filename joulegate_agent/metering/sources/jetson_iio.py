"""Jetson INA3221 on JetPack 4 (Nano, TX1/TX2, Xavier on L4T 32): NVIDIA's `ina3221x` IIO driver.

Channels 0..2 with `rail_name_N` and mV / mA / mW files. The `*_trigger_input` files read 0 in
triggered mode, so the plain `in_powerN_input` is read.
"""

from __future__ import annotations

from pathlib import Path

from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.rails import Channel, RailSource, jetson_source
from joulegate_agent.metering.sysfs import SysfsRoot

PATTERN = "/sys/bus/i2c/drivers/ina3221x/*/iio:device*"
CONTINUOUS = 1
CONTINUOUS_REFRESH_S = 0.4


def detect_jetson_iio(sysfs: SysfsRoot) -> RailSource:
    chips = sysfs.glob(PATTERN)
    channels = [channel for chip in chips for channel in _channels(sysfs, chip)]
    if not channels:
        raise NotDetected(f"no ina3221x rail_name_N file under {PATTERN}")
    continuous = [
        chip
        for chip in chips
        if (chip / "running_mode").exists() and sysfs.read_int(chip / "running_mode") == CONTINUOUS
    ]
    notes = tuple(
        f"{chip.parent.name}: continuous mode refreshes about every {CONTINUOUS_REFRESH_S:g} s; "
        "sampling above 2-3 Hz repeats values"
        for chip in continuous
    )
    # Triggered mode converts on each read: no interval of its own to state.
    resolution = CONTINUOUS_REFRESH_S if continuous else None
    return jetson_source(sysfs, "jetson_iio", chips, channels, notes, resolution_s=resolution)


def _channels(sysfs: SysfsRoot, chip: Path) -> list[Channel]:
    channels = []
    for n in (0, 1, 2):
        label_file = chip / f"rail_name_{n}"
        label = sysfs.read_text(label_file) if label_file.exists() else None
        if label:
            channels.append(
                Channel(
                    label,
                    voltage=chip / f"in_voltage{n}_input",
                    current=chip / f"in_current{n}_input",
                    power=chip / f"in_power{n}_input",
                )
            )
    return channels
