"""Selects of the surplus gate: its mode and the battery policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import JoulegateConfigEntry
from .entity import JoulegateEntity, async_remove_entities
from .gate import JoulegateGateCoordinator
from .surplus import BatteryPolicy, GateMode

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class JoulegateSelectEntityDescription(SelectEntityDescription):
    """Describes a select of the surplus gate."""

    current_fn: Callable[[JoulegateGateCoordinator], str]
    select_fn: Callable[[JoulegateGateCoordinator, str], Awaitable[None]]


GATE_MODE = JoulegateSelectEntityDescription(
    key="gate_mode",
    translation_key="gate_mode",
    entity_category=EntityCategory.CONFIG,
    options=[mode.value for mode in GateMode],
    current_fn=lambda gate: gate.mode.value,
    select_fn=lambda gate, option: gate.async_set_mode(GateMode(option)),
)

BATTERY_POLICY = JoulegateSelectEntityDescription(
    key="battery_policy",
    translation_key="battery_policy",
    entity_category=EntityCategory.CONFIG,
    options=[policy.value for policy in BatteryPolicy],
    current_fn=lambda gate: gate.settings.policy.value,
    select_fn=lambda gate, option: gate.async_set_policy(BatteryPolicy(option)),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: JoulegateConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the gate's selects, once its inputs are chosen (the policy with a battery)."""
    gate = entry.runtime_data.gate
    descriptions = [] if gate is None else [GATE_MODE]
    if gate is not None and (policies := gate.policies):
        # Balanced is offered only with a forecast and the battery's capacity.
        descriptions.append(replace(BATTERY_POLICY, options=[p.value for p in policies]))
    given = {description.key for description in descriptions}
    async_remove_entities(
        hass,
        Platform.SELECT,
        entry.runtime_data.info.device_id,
        (key for key in (GATE_MODE.key, BATTERY_POLICY.key) if key not in given),
    )
    if gate is not None:
        async_add_entities(JoulegateSelectEntity(gate, description) for description in descriptions)


class JoulegateSelectEntity(JoulegateEntity[JoulegateGateCoordinator], SelectEntity):
    """A select of the surplus gate."""

    entity_description: JoulegateSelectEntityDescription

    @property
    def current_option(self) -> str:
        """Return the selected option."""
        return self.entity_description.current_fn(self.coordinator)

    async def async_select_option(self, option: str) -> None:
        """Change the selected option."""
        await self.entity_description.select_fn(self.coordinator, option)
