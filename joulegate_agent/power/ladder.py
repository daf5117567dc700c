"""From knobs to levels: an ordered ladder, lowest draw first, of at most MAX_LEVELS rungs.

Rung i sets every knob to the value at the same fraction (i / (n - 1)) of its own range, so the
lowest rung has every knob at its lowest value and the highest every knob at its highest. A
single knob with named values (the simulated board's modes) lends its names to the rungs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from joulegate_agent.power.knobs import Knob

MAX_LEVELS = 6


@dataclass(frozen=True, slots=True)
class Level:
    index: int
    name: str
    settings: tuple[tuple[Knob, int], ...]

    def describe(self) -> str:
        return ", ".join(f"{knob.id} {knob.label(value)}" for knob, value in self.settings)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "settings": {knob.id: value for knob, value in self.settings},
            "description": self.describe(),
        }


def _spread(values: tuple[int, ...], count: int) -> list[int]:
    """`count` values spread evenly over `values` (sorted), ends included."""
    if count == 1:
        return [values[-1]]
    return [values[round(i * (len(values) - 1) / (count - 1))] for i in range(count)]


def build_ladder(knobs: Sequence[Knob], max_levels: int = MAX_LEVELS) -> list[Level]:
    """The ladder over `knobs` (each with values lowest draw first); empty without knobs."""
    usable = [knob for knob in knobs if len(knob.values) >= 2]
    if not usable:
        return []
    count = min(max_levels, max(len(knob.values) for knob in usable))
    columns = [_spread(knob.values, count) for knob in usable]
    named = len(usable) == 1 and usable[0].id == "simulated_power_mode"
    levels: list[Level] = []
    for i in range(count):
        settings = tuple((knob, column[i]) for knob, column in zip(usable, columns, strict=True))
        if levels and all(
            value == previous
            for (_, value), (_, previous) in zip(settings, levels[-1].settings, strict=True)
        ):
            continue  # a knob with few values repeats itself; a rung must change something
        name = usable[0].label(settings[0][1]) if named else f"L{len(levels) + 1}"
        levels.append(Level(len(levels), name, settings))
    return levels
