"""Reading the gate's input entities: units, signs, problems, the flow combinations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from custom_components.joulegate.batch_plan import Period
from custom_components.joulegate.const import (
    CONF_BATTERY_CHARGE,
    CONF_BATTERY_DISCHARGE,
    CONF_BATTERY_POWER,
    CONF_BATTERY_SIGN,
    CONF_BATTERY_SOC,
    CONF_BATTERY_SOURCE,
    CONF_GRID_EXPORT,
    CONF_GRID_IMPORT,
    CONF_GRID_POWER,
    CONF_GRID_SIGN,
    CONF_GRID_SOURCE,
    CONF_LOAD_POWER,
    CONF_PV_FORECAST,
    CONF_PV_FORECAST_TOMORROW,
    CONF_PV_POWER,
)
from custom_components.joulegate.inputs import (
    GateConfig,
    Kind,
    Problem,
    converter,
    flow_error,
    read_entity,
)

from .fakes.home import FORECAST, FORECAST_TOMORROW, set_state


@pytest.mark.parametrize(
    ("kind", "unit", "value", "expected"),
    [
        (Kind.POWER, "W", 1500.0, 1500.0),
        (Kind.POWER, "kW", 1.5, 1500.0),
        (Kind.POWER, "MW", 0.0015, 1500.0),
        (Kind.ENERGY, "kWh", 2.5, 2500.0),
        (Kind.ENERGY, "Wh", 2500.0, 2500.0),
        (Kind.ENERGY, "MWh", 0.0025, 2500.0),
        (Kind.PERCENT, "%", 55.0, 55.0),
        (Kind.CARBON, "gCO2eq/kWh", 300.0, 300.0),
        (Kind.CARBON, "gCO2e/kWh", 300.0, 300.0),
        (Kind.CARBON, "g/kWh", 300.0, 300.0),
        (Kind.CARBON, "kgCO2eq/MWh", 300.0, 300.0),
        (Kind.CARBON, "lbs/MWh", 1000.0, 453.59237),
    ],
)
def test_units_are_converted(kind: Kind, unit: str, value: float, expected: float) -> None:
    convert = converter(kind, unit)
    assert convert is not None
    assert convert(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kind", "unit"),
    [
        (Kind.POWER, "kWh"),
        (Kind.POWER, None),
        (Kind.ENERGY, "W"),
        (Kind.PERCENT, "kWh"),
        (Kind.CARBON, "%"),
        (Kind.CARBON, None),
        (Kind.CARBON, "g/km"),
    ],
)
def test_unusable_units(kind: Kind, unit: str | None) -> None:
    assert converter(kind, unit) is None


async def test_read_entity_names_its_problem(hass: HomeAssistant) -> None:
    now = dt_util.utcnow()
    entity = "sensor.grid_power"

    def read() -> tuple[float | None, Problem | None, str | None]:
        reading = read_entity(hass, entity, Kind.POWER, now=now, stale_after=timedelta(minutes=5))
        return reading.value, reading.problem, reading.detail

    assert read() == (None, Problem.MISSING, None)
    set_state(hass, entity, "unavailable", now)
    assert read() == (None, Problem.UNAVAILABLE, None)
    set_state(hass, entity, "unknown", now)
    assert read() == (None, Problem.UNAVAILABLE, None)
    set_state(hass, entity, 5, now, unit_of_measurement="A")
    assert read() == (None, Problem.BAD_UNIT, "A")
    set_state(hass, entity, 5, now, unit_of_measurement=None)
    assert read() == (None, Problem.BAD_UNIT, "")
    set_state(hass, entity, "importing", now)
    assert read() == (None, Problem.NOT_NUMERIC, "importing")
    set_state(hass, entity, "nan", now)
    assert read() == (None, Problem.NOT_NUMERIC, "nan")
    set_state(hass, entity, -250, now - timedelta(minutes=6))
    assert read() == (None, Problem.STALE, None)
    set_state(hass, entity, -250, now - timedelta(minutes=4))
    assert read() == (-250.0, None, None)


async def test_flow_error(hass: HomeAssistant) -> None:
    """The options flow refuses what the gate could never read."""
    entity = "sensor.x"
    assert flow_error(hass, entity, Kind.POWER) == "entity_missing"
    set_state(hass, entity, 12, None, unit_of_measurement="kWh")
    assert flow_error(hass, entity, Kind.POWER) == "unit_power"
    assert flow_error(hass, entity, Kind.ENERGY) is None
    assert flow_error(hass, entity, Kind.PERCENT) == "unit_percent"
    assert flow_error(hass, entity, Kind.CARBON) == "unit_carbon"
    set_state(hass, entity, "charging", None, unit_of_measurement="W")
    assert flow_error(hass, entity, Kind.POWER) == "not_numeric"
    # Asleep at night, right unit (or none known yet): accepted.
    set_state(hass, entity, "unavailable", None, unit_of_measurement="W")
    assert flow_error(hass, entity, Kind.POWER) is None
    set_state(hass, entity, "unavailable", None, unit_of_measurement=None)
    assert flow_error(hass, entity, Kind.POWER) is None
    set_state(hass, entity, "unavailable", None, unit_of_measurement="A")
    assert flow_error(hass, entity, Kind.POWER) == "unit_power"


def test_no_gate_without_a_grid_source() -> None:
    assert GateConfig.from_options({}) is None
    assert GateConfig.from_options({CONF_GRID_SOURCE: "none"}) is None


@pytest.mark.parametrize(
    ("options", "states", "grid_w", "battery_w"),
    [
        # One signed grid sensor, export positive; battery charge positive.
        (
            {
                CONF_GRID_SOURCE: "signed",
                CONF_GRID_POWER: "sensor.grid",
                CONF_GRID_SIGN: "export_positive",
                CONF_BATTERY_SOURCE: "signed",
                CONF_BATTERY_POWER: "sensor.battery",
                CONF_BATTERY_SIGN: "charge_positive",
                CONF_BATTERY_SOC: "sensor.soc",
            },
            {"sensor.grid": 400, "sensor.battery": 1000},
            -400.0,
            -1000.0,
        ),
        # Separate import and export; separate charge and discharge.
        (
            {
                CONF_GRID_SOURCE: "import_export",
                CONF_GRID_IMPORT: "sensor.import",
                CONF_GRID_EXPORT: "sensor.export",
                CONF_BATTERY_SOURCE: "charge_discharge",
                CONF_BATTERY_CHARGE: "sensor.charge",
                CONF_BATTERY_DISCHARGE: "sensor.discharge",
                CONF_BATTERY_SOC: "sensor.soc",
            },
            {"sensor.import": 0, "sensor.export": 250, "sensor.charge": 0, "sensor.discharge": 80},
            -250.0,
            80.0,
        ),
        # No grid meter: PV and house load. 3000 W of sun, 500 W of house, the battery takes
        # 2000 W: 500 W go to the grid.
        (
            {
                CONF_GRID_SOURCE: "pv_load",
                CONF_PV_POWER: "sensor.pv",
                CONF_LOAD_POWER: "sensor.load",
                CONF_BATTERY_SOURCE: "signed",
                CONF_BATTERY_POWER: "sensor.battery",
                CONF_BATTERY_SOC: "sensor.soc",
            },
            {"sensor.pv": 3000, "sensor.load": 500, "sensor.battery": -2000},
            -500.0,
            -2000.0,
        ),
        # PV and load without a battery.
        (
            {
                CONF_GRID_SOURCE: "pv_load",
                CONF_PV_POWER: "sensor.pv",
                CONF_LOAD_POWER: "sensor.load",
            },
            {"sensor.pv": 200, "sensor.load": 450},
            250.0,
            None,
        ),
        # A missing import sensor: the grid flow is unknown.
        (
            {
                CONF_GRID_SOURCE: "import_export",
                CONF_GRID_IMPORT: "sensor.import",
                CONF_GRID_EXPORT: "sensor.export",
            },
            {"sensor.export": 250},
            None,
            None,
        ),
    ],
)
async def test_flows_from_each_kind_of_home(
    hass: HomeAssistant,
    options: dict[str, str],
    states: dict[str, float],
    grid_w: float | None,
    battery_w: float | None,
) -> None:
    now = dt_util.utcnow()
    for entity_id, value in states.items():
        set_state(hass, entity_id, value, now, unit_of_measurement="W")
    set_state(hass, "sensor.soc", 50, now, unit_of_measurement="%")
    config = GateConfig.from_options(options)
    assert config is not None
    flows = config.read(hass, now)
    assert flows.grid_w == grid_w
    assert flows.battery_w == battery_w
    assert set(flows.readings) == set(config.entities)


FORECASTS = {
    CONF_GRID_SOURCE: "signed",
    CONF_GRID_POWER: "sensor.grid",
    CONF_PV_FORECAST: FORECAST,
    CONF_PV_FORECAST_TOMORROW: FORECAST_TOMORROW,
}


async def test_tomorrow_s_forecast_is_read_in_wh(hass: HomeAssistant) -> None:
    now = dt_util.utcnow()
    set_state(hass, FORECAST_TOMORROW, 0.0214, now, unit_of_measurement="MWh")
    config = GateConfig.from_options(FORECASTS)
    assert config is not None
    assert config.read(hass, now).forecast_tomorrow_wh == pytest.approx(21_400.0)


async def test_the_forecast_entities_attributes_give_the_forecast_s_detail(
    hass: HomeAssistant,
) -> None:
    """Today's entity from Solcast (hourly kW), tomorrow's from Open-Meteo (Wh a period)."""
    now = dt_util.utcnow()
    noon = dt_util.start_of_local_day() + timedelta(hours=12)
    solcast = [{"period_start": noon, "pv_estimate": 2.4}]
    set_state(hass, FORECAST, 9.5, now, detailedHourly=solcast)
    tomorrow = (noon + timedelta(days=1)).isoformat()
    set_state(hass, FORECAST_TOMORROW, 21.4, now, wh_period={tomorrow: 3100})
    config = GateConfig.from_options(FORECASTS)
    assert config is not None
    start = noon.timestamp()
    assert config.read(hass, now).forecast_detail == (
        Period(start, start + 3600, 2400.0),
        Period(start + 86400, start + 86400 + 3600, 3100.0),
    )
