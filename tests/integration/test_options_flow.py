"""The options flow's surplus gate branch: sources, sensors, optional inputs, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .fakes.home import (
    BATTERY,
    CARBON,
    FORECAST,
    FORECAST_TOMORROW,
    GATE_OPTIONS,
    GRID,
    PV_ENERGY,
    SOC,
    set_home,
    set_state,
)

ENGLISH = json.loads(
    (Path(__file__).parents[2] / "custom_components/joulegate/translations/en.json").read_text(
        encoding="utf-8"
    )
)


# The sensors form of a home with a signed grid meter and a signed battery.
SIGNED_SENSORS = {
    "grid_power": GRID,
    "grid_sign": "import_positive",
    "battery_power": BATTERY,
    "battery_sign": "discharge_positive",
    "battery_soc": SOC,
}


def suggested(result: FlowResult) -> dict[str, Any]:
    """The values a form suggests or defaults to, by field (each field has a label)."""
    labels = ENGLISH["options"]["step"][result["step_id"]]
    assert {str(key) for key in result["data_schema"].schema} <= set(labels["data"])
    assert set(labels["data"]) == set(labels.get("data_description", labels["data"]))
    values: dict[str, Any] = {}
    for key in result["data_schema"].schema:
        if key.description and "suggested_value" in key.description:
            values[str(key)] = key.description["suggested_value"]
        elif callable(key.default):
            values.setdefault(str(key), key.default())
    return values


async def open_gate_branch(hass: HomeAssistant, entry: MockConfigEntry) -> FlowResult:
    """Options (the solar surplus gate's first form)."""
    return await hass.config_entries.options.async_init(entry.entry_id)


async def test_gate_options(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The gate's inputs are chosen in three forms; the gate and its entities appear after
    saving. (Defaults from the Energy dashboard are gone: they read the energy integration's
    internals, not a public API.)"""
    set_home(hass, None, grid_w=-300, battery_w=0)
    set_state(hass, "sensor.pv_power", 2000, None, unit_of_measurement="W", device_class="power")

    result = await open_gate_branch(hass, init_integration)
    assert result["step_id"] == "gate"
    assert suggested(result) == {"grid_source": "signed", "battery_source": "none"}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid_source": "signed", "battery_source": "signed"}
    )
    assert result["step_id"] == "sensors"
    assert suggested(result) == {
        "grid_sign": "import_positive",
        "battery_sign": "discharge_positive",
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        SIGNED_SENSORS,
    )
    assert result["step_id"] == "extras"
    assert suggested(result) == {
        "stale_after": 300,
        "inference_power": 10.0,
        "fail_open": False,
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "pv_forecast": FORECAST,
            "pv_energy": PV_ENERGY,
            "carbon_intensity": CARBON,
            "battery_capacity": 10.0,
            "stale_after": 120.0,
            "inference_power": 8.0,
            "fail_open": False,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options == GATE_OPTIONS | {
        "stale_after": 120,
        "inference_power": 8.0,
    }
    assert init_integration.runtime_data.gate is not None
    assert hass.states.get("select.orin_rooftop_battery_policy").attributes["options"] == [
        "battery_first",
        "balanced",
        "inference_first",
    ]

    # Opened again, the saved choices are offered.
    result = await open_gate_branch(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid_source": "signed", "battery_source": "signed"}
    )
    assert suggested(result)["battery_sign"] == "discharge_positive"


@pytest.mark.parametrize(
    ("state", "attributes", "error"),
    [
        (1.5, {"unit_of_measurement": "kWh"}, "unit_power"),
        ("exporting", {"unit_of_measurement": "W"}, "not_numeric"),
        (None, {}, "entity_missing"),
    ],
)
async def test_sensors_are_refused_with_a_reason(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    state: Any,
    attributes: dict[str, Any],
    error: str,
) -> None:
    """A sensor with an unusable unit, a state that is not a number, or none, is refused."""
    if state is not None:
        set_state(hass, "sensor.import", state, None, **attributes)
    set_state(hass, "sensor.export", 0, None, unit_of_measurement="W")
    result = await open_gate_branch(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid_source": "import_export", "battery_source": "none"}
    )
    user_input = {"grid_import": "sensor.import", "grid_export": "sensor.export"}
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "sensors"
    assert result["errors"] == {"grid_import": error}
    assert suggested(result)["grid_import"] == "sensor.import"

    set_state(hass, "sensor.import", 10, None, unit_of_measurement="kW")
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert result["step_id"] == "extras"
    assert "battery_capacity" not in suggested(result)


async def test_pv_and_load_with_a_split_battery_and_a_refused_carbon_sensor(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """No grid meter; separate charge and discharge sensors; a carbon sensor in %."""
    for entity in ("sensor.pv", "sensor.load", "sensor.charge", "sensor.discharge"):
        set_state(hass, entity, 100, None, unit_of_measurement="W")
    set_state(hass, SOC, 50, None)
    set_state(hass, "sensor.co2", 40, None, unit_of_measurement="%")
    result = await open_gate_branch(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid_source": "pv_load", "battery_source": "charge_discharge"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "pv_power": "sensor.pv",
            "load_power": "sensor.load",
            "battery_charge": "sensor.charge",
            "battery_discharge": "sensor.discharge",
            "battery_soc": SOC,
        },
    )
    extras = {
        "carbon_intensity": "sensor.co2",
        "stale_after": 300,
        "inference_power": 10,
        "fail_open": True,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], extras)
    assert result["errors"] == {"carbon_intensity": "unit_carbon"}
    del extras["carbon_intensity"]
    result = await hass.config_entries.options.async_configure(result["flow_id"], extras)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert init_integration.options == {
        "grid_source": "pv_load",
        "pv_power": "sensor.pv",
        "load_power": "sensor.load",
        "battery_source": "charge_discharge",
        "battery_charge": "sensor.charge",
        "battery_discharge": "sensor.discharge",
        "battery_soc": SOC,
        "stale_after": 300,
        "inference_power": 10,
        "fail_open": True,
    }
    await hass.async_block_till_done()
    # No forecast or capacity: the balanced policy is not offered.
    assert hass.states.get("select.orin_rooftop_battery_policy").attributes["options"] == [
        "battery_first",
        "inference_first",
    ]


async def test_what_batches_may_use_when_the_sun_fails_is_an_option(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The default for batches that do not say in their metadata; grid when not chosen."""
    set_home(hass, None, grid_w=-300, battery_w=0)
    result = await open_gate_branch(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid_source": "signed", "battery_source": "signed"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        SIGNED_SENSORS,
    )
    assert result["step_id"] == "extras"
    assert "batch_when_sun_fails" in {str(key) for key in result["data_schema"].schema}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "stale_after": 300,
            "inference_power": 10,
            "fail_open": False,
            "batch_when_sun_fails": "battery",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert init_integration.options["batch_when_sun_fails"] == "battery"


async def test_tomorrow_s_forecast_is_chosen_next_to_today_s(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """An energy sensor (checked as today's is), offered right after the remaining-today
    forecast."""
    set_home(hass, None, grid_w=-300, battery_w=0)
    set_state(hass, FORECAST_TOMORROW, 21.4, None)
    result = await open_gate_branch(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid_source": "signed", "battery_source": "signed"}
    )
    result = await hass.config_entries.options.async_configure(result["flow_id"], SIGNED_SENSORS)
    fields = [str(key) for key in result["data_schema"].schema]
    assert fields[fields.index("pv_forecast") + 1] == "pv_forecast_tomorrow"
    extras = {"pv_forecast_tomorrow": FORECAST_TOMORROW, "stale_after": 300, "fail_open": False}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], extras | {"inference_power": 10}
    )
    assert init_integration.options["pv_forecast_tomorrow"] == FORECAST_TOMORROW


@pytest.mark.parametrize("options", [GATE_OPTIONS | {"a_future_option": 30}])
async def test_switching_the_gate_off_keeps_the_other_options(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Off removes the gate's options (and its entities on reload), keeps any other."""
    assert init_integration.runtime_data.gate is not None
    result = await open_gate_branch(hass, init_integration)
    assert suggested(result)["grid_source"] == "signed"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid_source": "none", "battery_source": "none"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options == {"a_future_option": 30}
    assert init_integration.runtime_data.gate is None
    assert hass.states.get("select.orin_rooftop_gate_mode") is None
