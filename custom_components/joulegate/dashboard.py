"""Defaults for the gate's inputs from the power sensors the Energy dashboard already names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.energy.data import async_get_manager
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from .const import (
    BATTERY_FLOW,
    CONF_BATTERY_SOURCE,
    CONF_GRID_SOURCE,
    CONF_PV_ENERGY,
    CONF_PV_POWER,
    GRID_FLOW,
    TwoWayFlow,
)


def _entity(hass: HomeAssistant, statistic_id: Any) -> str | None:
    """A statistic id that is an entity of this Home Assistant (not an external statistic)."""
    if not isinstance(statistic_id, str) or ":" in statistic_id:
        return None
    if hass.states.get(statistic_id) is None and er.async_get(hass).async_get(statistic_id) is None:
        return None
    return statistic_id


def _power_config(hass: HomeAssistant, config: Any, target: TwoWayFlow) -> dict[str, str]:
    """Map an Energy dashboard power_config (one of its three forms) onto the gate's options."""
    if not isinstance(config, Mapping):
        return {}
    signed = {target.source_key: target.signed_value}
    if entity := _entity(hass, config.get("stat_rate")):
        return signed | {target.entity_key: entity, target.sign_key: target.normal_sign}
    if entity := _entity(hass, config.get("stat_rate_inverted")):
        return signed | {target.entity_key: entity, target.sign_key: target.inverted_sign}
    from_entity = _entity(hass, config.get("stat_rate_from"))
    to_entity = _entity(hass, config.get("stat_rate_to"))
    if from_entity and to_entity:
        return {
            target.source_key: target.split_value,
            target.from_key: from_entity,
            target.to_key: to_entity,
        }
    return {}


async def async_dashboard_defaults(hass: HomeAssistant) -> dict[str, str]:
    """Suggested option values from the Energy dashboard's grid, solar and battery sources.

    Of each kind, the first source that names a power sensor is used (the solar source's energy
    meter also suggests the PV energy input).
    """
    manager = await async_get_manager(hass)
    prefs: Mapping[str, Any] = manager.data or {}
    sources: list[Any] = list(prefs.get("energy_sources") or [])
    defaults: dict[str, str] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        kind = source.get("type")
        if kind == "grid" and CONF_GRID_SOURCE not in defaults:
            for power in source.get("power") or []:
                if isinstance(power, Mapping):
                    config = power.get("power_config") or {"stat_rate": power.get("stat_rate")}
                    defaults |= _power_config(hass, config, GRID_FLOW)
                    break
        elif kind == "solar" and CONF_PV_POWER not in defaults:
            if entity := _entity(hass, source.get("stat_rate")):
                defaults[CONF_PV_POWER] = entity
            if entity := _entity(hass, source.get("stat_energy_from")):
                defaults[CONF_PV_ENERGY] = entity
        elif kind == "battery" and CONF_BATTERY_SOURCE not in defaults:
            config = source.get("power_config") or {"stat_rate": source.get("stat_rate")}
            defaults |= _power_config(hass, config, BATTERY_FLOW)
    return defaults
