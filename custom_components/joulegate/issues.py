"""Repairs issues for gate inputs that turned bad: gone, a unit that cannot be used, not a number.

The gate falls back to its fail-safe at once; the issue is raised only when the problem has
lasted for the stale time, so a passing glitch does not bother anyone. It goes away by itself
when the entity reads well again (or is unavailable: then it exists again, and the gate says
so), or when the entry is unloaded.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import (
    CONF_BATTERY_CHARGE,
    CONF_BATTERY_DISCHARGE,
    CONF_BATTERY_POWER,
    CONF_BATTERY_SOC,
    CONF_CARBON_INTENSITY,
    CONF_GRID_EXPORT,
    CONF_GRID_IMPORT,
    CONF_GRID_POWER,
    CONF_LOAD_POWER,
    CONF_PV_ENERGY,
    CONF_PV_FORECAST,
    CONF_PV_FORECAST_TOMORROW,
    CONF_PV_POWER,
    DOMAIN,
)
from .inputs import LASTING_PROBLEMS, Flows, Problem

# Every input that can have an issue. The issue names the entity, not the input's label: a
# placeholder is not translated, and the options form shows which input holds that entity.
ROLES = (
    CONF_GRID_POWER,
    CONF_GRID_IMPORT,
    CONF_GRID_EXPORT,
    CONF_PV_POWER,
    CONF_LOAD_POWER,
    CONF_BATTERY_POWER,
    CONF_BATTERY_CHARGE,
    CONF_BATTERY_DISCHARGE,
    CONF_BATTERY_SOC,
    CONF_PV_FORECAST,
    CONF_PV_FORECAST_TOMORROW,
    CONF_PV_ENERGY,
    CONF_CARBON_INTENSITY,
)


def issue_id(entry_id: str, role: str) -> str:
    """The id of the issue about one input of one entry."""
    return f"{entry_id}_{role}"


def delete_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Remove every input issue of an entry."""
    for role in ROLES:
        ir.async_delete_issue(hass, DOMAIN, issue_id(entry_id, role))


class InputIssues:
    """Tracks how long each input has had a lasting problem, and raises or clears its issue."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry[Any], after: timedelta) -> None:
        """Issues for one entry, raised after a problem has lasted `after`."""
        self._hass = hass
        self._entry = entry
        self._after = after
        self._since: dict[str, tuple[Problem, datetime]] = {}
        self._raised: set[str] = set()

    def update(self, flows: Flows, now: datetime) -> None:
        """Take one cycle's readings."""
        for role, reading in flows.readings.items():
            problem = reading.problem
            if problem not in LASTING_PROBLEMS:
                self._since.pop(role, None)
                if role in self._raised:
                    self._raised.discard(role)
                    ir.async_delete_issue(self._hass, DOMAIN, issue_id(self._entry.entry_id, role))
                continue
            assert problem is not None
            known = self._since.get(role)
            if known is None or known[0] is not problem:
                self._since[role] = (problem, now)
                continue
            if now - known[1] < self._after:
                continue
            ir.async_create_issue(
                self._hass,
                DOMAIN,
                issue_id(self._entry.entry_id, role),
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key=f"input_{problem.value}",
                translation_placeholders={
                    "agent": self._entry.title,
                    "entity_id": reading.entity_id,
                    **({"detail": reading.detail} if reading.detail else {}),
                },
            )
            self._raised.add(role)

    def clear(self) -> None:
        """Remove every issue of this entry (it is unloaded)."""
        delete_issues(self._hass, self._entry.entry_id)
        self._raised.clear()
        self._since.clear()
