"""Numbers of the surplus gate: battery reserve, margin, thermal limit, minimum off time."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    Platform,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import JoulegateConfigEntry
from .entity import JoulegateEntity, async_remove_entities
from .gate import JoulegateGateCoordinator

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class JoulegateNumberEntityDescription(NumberEntityDescription):
    """Describes a number of the surplus gate; `setting` names the controller's setting."""

    setting: str
    needs_battery: bool = False


NUMBERS: tuple[JoulegateNumberEntityDescription, ...] = (
    JoulegateNumberEntityDescription(
        key="reserve_soc",
        translation_key="reserve_soc",
        setting="reserve_soc",
        needs_battery=True,
        device_class=NumberDeviceClass.BATTERY,
        entity_category=EntityCategory.CONFIG,
        native_unit_of_measurement=PERCENTAGE,
        native_min_value=0,
        native_max_value=100,
        native_step=1,
        mode=NumberMode.SLIDER,
    ),
    JoulegateNumberEntityDescription(
        key="margin",
        translation_key="margin",
        setting="margin_w",
        device_class=NumberDeviceClass.POWER,
        entity_category=EntityCategory.CONFIG,
        native_unit_of_measurement=UnitOfPower.WATT,
        native_min_value=0,
        native_max_value=5000,
        native_step=1,
        mode=NumberMode.BOX,
    ),
    JoulegateNumberEntityDescription(
        key="thermal_limit",
        translation_key="thermal_limit",
        setting="thermal_limit_c",
        device_class=NumberDeviceClass.TEMPERATURE,
        entity_category=EntityCategory.CONFIG,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        native_min_value=30,
        native_max_value=110,
        native_step=1,
        mode=NumberMode.BOX,
    ),
    JoulegateNumberEntityDescription(
        key="min_off_time",
        translation_key="min_off_time",
        setting="min_off_s",
        device_class=NumberDeviceClass.DURATION,
        entity_category=EntityCategory.CONFIG,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        native_min_value=0,
        native_max_value=3600,
        native_step=10,
        mode=NumberMode.BOX,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: JoulegateConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the gate's numbers, once its inputs are chosen (the battery's with a battery)."""
    gate = entry.runtime_data.gate
    descriptions = [
        description
        for description in NUMBERS
        if gate is not None and (gate.config.has_battery or not description.needs_battery)
    ]
    given = {description.key for description in descriptions}
    async_remove_entities(
        hass,
        Platform.NUMBER,
        entry.runtime_data.info.device_id,
        (description.key for description in NUMBERS if description.key not in given),
    )
    if gate is not None:
        async_add_entities(JoulegateNumberEntity(gate, description) for description in descriptions)


class JoulegateNumberEntity(JoulegateEntity[JoulegateGateCoordinator], NumberEntity):
    """A number of the surplus gate."""

    entity_description: JoulegateNumberEntityDescription

    @property
    def native_value(self) -> float:
        """Return the setting's value."""
        value: float = getattr(self.coordinator.settings, self.entity_description.setting)
        return value

    async def async_set_native_value(self, value: float) -> None:
        """Change the setting."""
        await self.coordinator.async_set_number(self.entity_description.setting, value)
