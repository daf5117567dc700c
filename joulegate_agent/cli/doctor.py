"""`joulegate-agent doctor`: what the agent can measure on this box, and what to fix if it cannot.

One pass over the sensors, as the agent would see them, turned into a JSON-ready report and a
human summary. Problems come with advice, because "no sensor" alone helps nobody.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from joulegate_agent.metering.sources import probe_sources
from joulegate_agent.metering.sources.base import PowerReading, PowerSource
from joulegate_agent.metering.sysfs import SysfsRoot, as_sysfs
from joulegate_agent.metering.thermal import ThermalReader, ThermalReading
from joulegate_agent.power.report import format_power, power_problems, power_report
from joulegate_agent.simulation.board import SimulatedOrinNano

ROOT_ONLY_ADVICE = (
    "run the agent as root, or add a udev rule that makes these files readable by the agent's "
    "user, or run the agent as a systemd service that has access to them "
    "(examples/joulegate-agent.service)"
)
NO_SENSOR_ADVICE = (
    "check that the sensor's kernel driver is loaded (on a Jetson: the ina3221 / ina3221x "
    "driver, see /sys/bus/i2c/drivers), that the agent may read the files (run doctor as "
    "root to compare), or install nvidia-ml-py for an NVIDIA GPU; the simulated source runs "
    "without hardware"
)
UNREADABLE_ADVICE = (
    "the files are missing, hold garbage, or the sensor stopped answering; the agent logs each "
    "file once when it goes bad and once when it recovers"
)
THROTTLING_ADVICE = "improve cooling or choose a lower power mode; clocks are being held back"


def build_report(
    root: Path | SysfsRoot, source_kind: str = "auto", *, settle_s: float = 0.5
) -> dict[str, Any]:
    """Detect, read once, and list problems with advice.

    `settle_s` passes between detection and the read, so energy-counter sources (RAPL, NVML)
    count long enough to give a power.
    """
    sysfs = as_sysfs(root)
    sources, not_found = probe_sources(sysfs, source_kind)
    try:
        if sources:
            time.sleep(settle_s)
        readings = [source.read() for source in sources]
        simulated = next((s for s in sources if isinstance(s, SimulatedOrinNano)), None)
        thermal = ThermalReader(sysfs, simulated=simulated).read()
    finally:
        for source in sources:
            source.close()
    power = power_report(sysfs, source_kind)
    problems = _problems(sysfs, sources, readings, not_found, thermal) + power_problems(power)
    return {
        "root": str(sysfs.root),
        "source_kind": source_kind,
        "sources": [_source(s, r) for s, r in zip(sources, readings, strict=True)],
        "board_w": readings[0].board_w if readings else None,
        "boundary": sources[0].info.boundary if sources else None,
        "not_found": not_found,
        "thermal": {
            "zones": thermal.zones,
            "max_c": thermal.max_c,
            "throttling": list(thermal.throttling),
            "power_mode": (
                {"id": thermal.power_mode.id, "name": thermal.power_mode.name}
                if thermal.power_mode
                else None
            ),
        },
        "power": power,
        "problems": problems,
    }


def _source(source: PowerSource, reading: PowerReading) -> dict[str, Any]:
    info = source.info
    whole = {rail.name for rail in info.rails if rail.whole_board}
    return {
        "kind": info.kind,
        "path": info.path,
        "boundary": info.boundary,
        "resolution_s": info.resolution_s,
        "notes": list(info.notes),
        "board_w": reading.board_w,
        "energy_j": reading.energy_j,
        "rails": [
            {
                "name": rail.name,
                "whole_board": rail.name in whole,
                "voltage_v": rail.voltage_v,
                "current_a": rail.current_a,
                "power_w": rail.power_w,
            }
            for rail in reading.rails
        ],
    }


def _problems(
    sysfs: SysfsRoot,
    sources: list[PowerSource],
    readings: list[PowerReading],
    not_found: dict[str, str],
    thermal: ThermalReading,
) -> list[dict[str, str]]:
    problems = []
    if sysfs.denied:
        problems.append(
            {
                "problem": "files readable only by root: " + ", ".join(sysfs.denied),
                "advice": ROOT_ONLY_ADVICE,
            }
        )
    if not sources:
        checked = "; ".join(f"{kind}: {why}" for kind, why in not_found.items())
        problems.append(
            {"problem": f"no power sensor found ({checked})", "advice": NO_SENSOR_ADVICE}
        )
    for source, reading in zip(sources, readings, strict=True):
        missing = [rail.name for rail in reading.rails if not rail.available]
        if missing:
            problems.append(
                {
                    "problem": f"{source.info.kind}: no reading from " + ", ".join(missing),
                    "advice": ROOT_ONLY_ADVICE if sysfs.denied else UNREADABLE_ADVICE,
                }
            )
    problems += [
        {"problem": f"throttling: {reason}", "advice": THROTTLING_ADVICE}
        for reason in thermal.throttling
    ]
    return problems


def resolution_text(seconds: float | None) -> str:
    """How often a source has a new value, for people."""
    if seconds is None:
        return "not stated by the driver (error bounds count the sampling interval only)"
    if seconds == 0:
        return "a new value on every read"
    return f"a new value every {seconds * 1000:.0f} ms"


def _number(value: float | None, unit: str, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}"


def format_report(report: dict[str, Any]) -> str:
    """The report for people: sources and rails, heat, power mode, then problems."""
    lines = [f"Joulegate doctor (root {report['root']}, source {report['source_kind']})", ""]
    sources = report["sources"]
    lines.append(
        "Power sources (the first meters the board):" if sources else "Power sources: none"
    )
    for number, source in enumerate(sources, start=1):
        lines.append(f"  {number}. {source['kind']}  {source['path']}")
        lines.append(f"     boundary: {source['boundary']}")
        lines.append(f"     resolution: {resolution_text(source['resolution_s'])}")
        lines += [f"     note: {note}" for note in source["notes"]]
        for rail in source["rails"]:
            mark = "  (whole board)" if rail["whole_board"] else ""
            lines.append(
                f"     {rail['name']:<24} {_number(rail['voltage_v'], 'V'):>9} "
                f"{_number(rail['current_a'], 'A', 3):>9} {_number(rail['power_w'], 'W'):>9}{mark}"
            )
        lines.append(f"     board power: {_number(source['board_w'], 'W')}")
    thermal = report["thermal"]
    zones = thermal["zones"]
    lines += [
        "",
        f"Temperatures (max {thermal['max_c']:.1f} °C):" if zones else "Temperatures: none",
    ]
    lines += [f"  {zone:<24} {celsius:6.1f} °C" for zone, celsius in zones.items()]
    mode = thermal["power_mode"]
    lines.append(f"Power mode: {mode['id']} ({mode['name']})" if mode else "Power mode: unknown")
    lines.append("Throttling: " + (", ".join(thermal["throttling"]) or "none"))
    lines += format_power(report["power"])
    lines += ["", "Problems:" if report["problems"] else "Problems: none"]
    for problem in report["problems"]:
        lines += [f"  - {problem['problem']}", f"    advice: {problem['advice']}"]
    return "\n".join(lines)
