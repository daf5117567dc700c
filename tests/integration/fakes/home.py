"""A home with a grid meter, a battery, a PV forecast, a PV meter and a carbon sensor, as
Home Assistant entities the tests set, each reading stamped with the time the test chooses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.const import ATTR_DEVICE_CLASS, ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import HomeAssistant

from custom_components.joulegate.const import (
    CONF_BATTERY_CAPACITY,
    CONF_BATTERY_POWER,
    CONF_BATTERY_SIGN,
    CONF_BATTERY_SOC,
    CONF_BATTERY_SOURCE,
    CONF_CARBON_INTENSITY,
    CONF_FAIL_OPEN,
    CONF_GRID_POWER,
    CONF_GRID_SIGN,
    CONF_GRID_SOURCE,
    CONF_INFERENCE_POWER,
    CONF_PV_ENERGY,
    CONF_PV_FORECAST,
    CONF_STALE_AFTER,
)

GRID = "sensor.grid_power"
BATTERY = "sensor.battery_power"
SOC = "sensor.battery_soc"
FORECAST = "sensor.pv_remaining_today"
FORECAST_TOMORROW = "sensor.pv_tomorrow"
PV_ENERGY = "sensor.pv_energy"
CARBON = "sensor.grid_carbon_intensity"

CAPACITY_KWH = 10.0

GATE_OPTIONS: dict[str, Any] = {
    CONF_GRID_SOURCE: "signed",
    CONF_GRID_POWER: GRID,
    CONF_GRID_SIGN: "import_positive",
    CONF_BATTERY_SOURCE: "signed",
    CONF_BATTERY_POWER: BATTERY,
    CONF_BATTERY_SIGN: "discharge_positive",
    CONF_BATTERY_SOC: SOC,
    CONF_BATTERY_CAPACITY: CAPACITY_KWH,
    CONF_PV_FORECAST: FORECAST,
    CONF_PV_ENERGY: PV_ENERGY,
    CONF_CARBON_INTENSITY: CARBON,
    CONF_STALE_AFTER: 300,
    CONF_FAIL_OPEN: False,
    CONF_INFERENCE_POWER: 10.0,
}

UNITS = {
    GRID: ("W", "power"),
    BATTERY: ("kW", "power"),  # kW on purpose: converted
    SOC: ("%", "battery"),
    FORECAST: ("kWh", "energy"),
    FORECAST_TOMORROW: ("kWh", "energy"),
    PV_ENERGY: ("kWh", "energy"),
    CARBON: ("gCO2eq/kWh", None),
}


def set_state(
    hass: HomeAssistant, entity_id: str, value: Any, at: datetime | None, **attributes: Any
) -> None:
    """Set one input, with its usual unit and device class unless overridden."""
    unit, device_class = UNITS.get(entity_id, (None, None))
    attrs: dict[str, Any] = {ATTR_UNIT_OF_MEASUREMENT: unit, ATTR_DEVICE_CLASS: device_class}
    attrs = {key: value for key, value in (attrs | attributes).items() if value is not None}
    hass.states.async_set(
        entity_id, str(value), attrs, timestamp=None if at is None else at.timestamp()
    )


def set_home(
    hass: HomeAssistant,
    at: datetime | None,
    *,
    grid_w: float,
    battery_w: float = 0.0,
    soc: float = 60.0,
    forecast_kwh: float = 5.0,
    pv_kwh: float = 100.0,
    carbon: float = 300.0,
) -> None:
    """Every meter reports at `at` (battery power in kW, as its sensor reports)."""
    set_state(hass, GRID, grid_w, at)
    set_state(hass, BATTERY, battery_w / 1000, at)
    set_state(hass, SOC, soc, at)
    set_state(hass, FORECAST, forecast_kwh, at)
    set_state(hass, PV_ENERGY, pv_kwh, at)
    set_state(hass, CARBON, carbon, at)
