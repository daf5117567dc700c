"""Base entities for the Joulegate integration: the agent is the device."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import JoulegateDataUpdateCoordinator
from .gate import GateRunner


def agent_device_info(coordinator: JoulegateDataUpdateCoordinator) -> DeviceInfo:
    """The device that stands for the agent."""
    info = coordinator.info
    return DeviceInfo(
        identifiers={(DOMAIN, info.device_id)},
        configuration_url=str(coordinator.client.base_url),
        manufacturer=info.board.manufacturer,
        model=info.board.model,
        name=info.hostname,
        sw_version=info.agent_version,
    )


class JoulegateEntity(CoordinatorEntity[JoulegateDataUpdateCoordinator]):
    """An entity of one Joulegate agent, read from its status coordinator."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: JoulegateDataUpdateCoordinator,
        description: EntityDescription,
    ) -> None:
        """Initialise the entity from its description."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.info.device_id}_{description.key}"
        self._attr_device_info = agent_device_info(coordinator)


class JoulegateGateEntity(Entity):
    """An entity of an agent's surplus gate, updated by the gate runner.

    It stays available while the agent is unreachable: the gate still decides (and says why
    the gate is closed), its settings can still be changed, and its totals still hold.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, gate: GateRunner, description: EntityDescription) -> None:
        """Initialise the entity from its description."""
        self.gate = gate
        self.entity_description = description
        gate.entity_keys.add(description.key)
        coordinator = gate.coordinator
        self._attr_unique_id = f"{coordinator.info.device_id}_{description.key}"
        self._attr_device_info = agent_device_info(coordinator)

    async def async_added_to_hass(self) -> None:
        """Follow the gate's cycles."""
        await super().async_added_to_hass()
        self.async_on_remove(self.gate.async_add_listener(self.async_write_ha_state))
