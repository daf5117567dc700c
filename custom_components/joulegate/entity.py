"""The one entity base of the Joulegate integration: the agent is the device, whichever
coordinator (the agent's status, or its surplus gate) an entity follows."""

from __future__ import annotations

from collections.abc import Iterable

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import JoulegateDataUpdateCoordinator
from .gate import JoulegateGateCoordinator


class JoulegateEntity[CoordinatorT: JoulegateDataUpdateCoordinator | JoulegateGateCoordinator](
    CoordinatorEntity[CoordinatorT]
):
    """An entity of one Joulegate agent, updated by one of its coordinators."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: CoordinatorT, description: EntityDescription) -> None:
        """Initialise the entity from its description."""
        super().__init__(coordinator)
        self.entity_description = description
        info = coordinator.info
        self._attr_unique_id = f"{info.device_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, info.device_id)},
            configuration_url=str(coordinator.client.base_url),
            manufacturer=info.board.manufacturer,
            model=info.board.model,
            name=info.hostname,
            sw_version=info.agent_version,
        )


def async_remove_entities(
    hass: HomeAssistant, platform: Platform, device_id: str, keys: Iterable[str]
) -> None:
    """Remove the registry entries of an agent's entities that are no longer given (the gate or
    its battery removed from the inputs, a reading the board never fills)."""
    registry = er.async_get(hass)
    for key in keys:
        if entity_id := registry.async_get_entity_id(platform, DOMAIN, f"{device_id}_{key}"):
            registry.async_remove(entity_id)
