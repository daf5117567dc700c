"""Sensors replaced by ones that say what they count: the old entities go, with a repair issue.

Up to version 1 of the accounting store, "Inference energy from solar / battery / grid" were in
kWh, named as if they split all inference energy (they split the energy above idle), and a crash
could lower them (their long-term statistics may hold a double count). Their successors,
"Inference energy above idle from ..." in Wh, have new unique ids, so they start statistics of
their own with the same totals; the old entities are removed, never lowered in place, and a
repair issue names them and their successors once. Their recorded statistics stay until the user
deletes them (Developer tools -> Statistics).
"""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN

# Retired key -> the key of the entity that replaces it.
RETIRED_SENSORS = {
    "inference_energy_solar": "inference_energy_above_idle_solar",
    "inference_energy_battery": "inference_energy_above_idle_battery",
    "inference_energy_grid": "inference_energy_above_idle_grid",
}


def retired_issue_id(entry_id: str) -> str:
    """The id of an entry's issue about its retired sensors."""
    return f"{entry_id}_retired_energy_sensors"


def async_retire_sensors(hass: HomeAssistant, entry_id: str, title: str, device_id: str) -> None:
    """Remove the retired sensors an entry still has, and say so in a repair issue."""
    registry = er.async_get(hass)
    retired: list[str] = []
    for key in RETIRED_SENSORS:
        entity_id = registry.async_get_entity_id(Platform.SENSOR, DOMAIN, f"{device_id}_{key}")
        if entity_id is not None:
            registry.async_remove(entity_id)
            retired.append(entity_id)
    if not retired:
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        retired_issue_id(entry_id),
        is_fixable=False,
        is_persistent=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key="retired_energy_sensors",
        translation_placeholders={"agent": title, "entities": ", ".join(retired)},
    )


def delete_retired_issue(hass: HomeAssistant, entry_id: str) -> None:
    """Remove the issue (the entry was removed)."""
    ir.async_delete_issue(hass, DOMAIN, retired_issue_id(entry_id))
