"""Base entity for the Joulegate integration."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import JoulegateDataUpdateCoordinator


class JoulegateEntity(CoordinatorEntity[JoulegateDataUpdateCoordinator]):
    """An entity of one Joulegate agent; the agent is the device."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: JoulegateDataUpdateCoordinator,
        description: EntityDescription,
    ) -> None:
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
