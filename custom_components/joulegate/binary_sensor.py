"""Binary sensors of a Joulegate agent: throttling, the agent's gate, the surplus gate's verdict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import JoulegateDataUpdateCoordinator, JoulegateState
from .data import JoulegateConfigEntry
from .entity import JoulegateEntity, async_remove_entities
from .gate import JoulegateGateCoordinator

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class JoulegateBinarySensorEntityDescription(BinarySensorEntityDescription):
    """Describes a Joulegate binary sensor."""

    is_on_fn: Callable[[JoulegateState], bool]
    attributes_fn: Callable[[JoulegateState], Mapping[str, Any]]


def _gate_attributes(state: JoulegateState) -> Mapping[str, Any]:
    gate = state.status.gate
    return {
        "reason": gate.reason,
        "source": gate.source,
        "lease_expires_at": gate.lease_expires_at.isoformat() if gate.lease_expires_at else None,
    }


BINARY_SENSORS: tuple[JoulegateBinarySensorEntityDescription, ...] = (
    JoulegateBinarySensorEntityDescription(
        key="throttling",
        translation_key="throttling",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=lambda state: state.status.throttling.active,
        attributes_fn=lambda state: {"reasons": list(state.status.throttling.reasons)},
    ),
    JoulegateBinarySensorEntityDescription(
        key="gate",
        translation_key="gate",
        device_class=BinarySensorDeviceClass.OPENING,
        is_on_fn=lambda state: state.status.gate.open,
        attributes_fn=_gate_attributes,
    ),
)


# The surplus gate's own verdict (what Home Assistant leases to the agent); the
# agent's "Inference gate" above shows what the agent enforces.
INFERENCE_ALLOWED = BinarySensorEntityDescription(
    key="inference_allowed",
    translation_key="inference_allowed",
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: JoulegateConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the binary sensors of one agent, and of its surplus gate when there is one."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        JoulegateBinarySensorEntity(coordinator, description) for description in BINARY_SENSORS
    )
    if (gate := entry.runtime_data.gate) is None:
        async_remove_entities(
            hass, Platform.BINARY_SENSOR, coordinator.info.device_id, [INFERENCE_ALLOWED.key]
        )
        return
    async_add_entities([JoulegateInferenceAllowedEntity(gate, INFERENCE_ALLOWED)])


class JoulegateBinarySensorEntity(
    JoulegateEntity[JoulegateDataUpdateCoordinator], BinarySensorEntity
):
    """A binary sensor of a Joulegate agent."""

    entity_description: JoulegateBinarySensorEntityDescription
    # Renewed with every lease: not worth a row in the recorder each time.
    _unrecorded_attributes = frozenset({"lease_expires_at"})

    @property
    def is_on(self) -> bool:
        """Return whether the sensor is on."""
        return self.entity_description.is_on_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Return the sensor's attributes."""
        return self.entity_description.attributes_fn(self.coordinator.data)


class JoulegateInferenceAllowedEntity(
    JoulegateEntity[JoulegateGateCoordinator], BinarySensorEntity
):
    """On while the surplus gate allows inference."""

    @property
    def is_on(self) -> bool | None:
        """Return whether inference is allowed (unknown before the first cycle)."""
        return self.coordinator.data.open

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Return why, and whether the agent took the lease."""
        state = self.coordinator.data
        return {
            "reason": state.reason.value if state.reason else None,
            "agent_updated": state.agent_updated,
        }
