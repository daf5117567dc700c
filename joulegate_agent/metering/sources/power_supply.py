"""A board powered through a Linux power supply: `/sys/class/power_supply/*`.

`voltage_now` (µV) x `current_now` (µA), or `power_now` (µW) where the driver has it. A battery
shows the board's draw only while it discharges; on mains it shows the charge current instead.
"""

from __future__ import annotations

from pathlib import Path

from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.rails import Channel, RailSource
from joulegate_agent.metering.sysfs import SysfsRoot

PATTERN = "/sys/class/power_supply/*"


def detect_power_supply(sysfs: SysfsRoot) -> RailSource:
    supplies = [(s, c) for s in sysfs.glob(PATTERN) if (c := _channel(s)) is not None]
    if not supplies:
        raise NotDetected(f"no power_now, nor voltage_now with current_now, under {PATTERN}")
    names = ", ".join(s.name for s, _ in supplies)
    return RailSource(
        sysfs,
        kind="power_supply",
        paths=[s for s, _ in supplies],
        channels=[c for _, c in supplies],
        whole=None,
        boundary=f"power supply ({names})",
        notes=("a battery shows the board's draw only while it discharges",),
        resolution_s=None,  # the supply's driver does not say how often it refreshes
    )


def _channel(supply: Path) -> Channel | None:
    def present(name: str) -> Path | None:
        return supply / name if (supply / name).exists() else None

    voltage, current, power = present("voltage_now"), present("current_now"), present("power_now")
    if power is None and (voltage is None or current is None):
        return None
    return Channel(
        supply.name,
        voltage=voltage,
        per_volt=1e6,
        current=current,
        per_amp=1e6,
        power=power,
        per_watt=1e6,
    )
