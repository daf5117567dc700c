"""The power part of `joulegate-agent doctor`: the levels found, each knob, and what this process
(run it from the agent's unit to see the unit's view) cannot set."""

from __future__ import annotations

from typing import Any

from joulegate_agent.metering.sysfs import SysfsRoot
from joulegate_agent.power.discovery import discover
from joulegate_agent.simulation.board import MODES

CANNOT_SET_ADVICE = (
    "the agent's systemd unit makes /sys read-only: install the drop-in that opens exactly these "
    "files (joulegate-agent power-dropin > /etc/systemd/system/joulegate-agent.service.d/"
    "power.conf), or run doctor as root to compare; NVML power limits need root"
)


def power_report(sysfs: SysfsRoot, source_kind: str) -> dict[str, Any]:
    if source_kind == "simulated":
        return {
            "levels": [
                {"name": mode.name, "description": "simulated board mode"} for mode in MODES
            ],
            "knobs": [],
            "notes": ["simulated board: its modes are set through the agent's API"],
            "nvpmodel_modes": {},
        }
    found = discover(sysfs, nvml=source_kind in ("auto", "nvml"))
    try:
        return {
            "levels": [
                {"name": level.name, "description": level.describe()} for level in found.ladder
            ],
            "knobs": [
                {
                    "id": knob.id,
                    "paths": list(knob.paths),
                    "values": [knob.label(v) for v in knob.values],
                    "current": None if (v := knob.read()) is None else knob.label(v),
                    "cannot_set": knob.cannot_set(),
                }
                for knob in found.knobs
            ],
            "notes": found.notes,
            "nvpmodel_modes": {str(k): v for k, v in found.nvpmodel_modes.items()},
        }
    finally:
        found.close()


def power_problems(power: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"problem": f"cannot set {knob['id']}: {knob['cannot_set']}", "advice": CANNOT_SET_ADVICE}
        for knob in power["knobs"]
        if knob["cannot_set"]
    ]


def format_power(power: dict[str, Any]) -> list[str]:
    lines = ["", "Power levels (lowest draw first):" if power["levels"] else "Power levels: none"]
    lines += [f"  {level['name']:<12} {level['description']}" for level in power["levels"]]
    for knob in power["knobs"]:
        can = "can set" if knob["cannot_set"] is None else f"cannot set: {knob['cannot_set']}"
        lines.append(f"  knob {knob['id']} (now {knob['current'] or '?'}; {can})")
        lines += [f"       {path}" for path in knob["paths"]]
    lines += [f"  note: {note}" for note in power["notes"]]
    return lines
