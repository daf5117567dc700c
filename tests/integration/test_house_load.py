"""The house's expected load for batch deadlines, from the recorder's long-term statistics of the
house consumption entity, or of the PV energy meter, grid meter and battery: read at setup and
once an hour, never each cycle."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import async_import_statistics
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from sqlalchemy.exc import OperationalError

from custom_components.joulegate.batch_plan import LoadProfile
from custom_components.joulegate.const import (
    CONF_BATTERY_CHARGE,
    CONF_BATTERY_DISCHARGE,
    CONF_BATTERY_SIGN,
    CONF_BATTERY_SOURCE,
    CONF_FAIL_OPEN,
    CONF_GRID_EXPORT,
    CONF_GRID_IMPORT,
    CONF_GRID_SIGN,
    CONF_GRID_SOURCE,
    CONF_INFERENCE_POWER,
    CONF_LOAD_POWER,
    CONF_PV_ENERGY,
    CONF_PV_FORECAST,
    CONF_PV_FORECAST_TOMORROW,
    CONF_PV_POWER,
    CONF_STALE_AFTER,
)
from custom_components.joulegate.gate import JoulegateGateCoordinator

from .fakes.agent import FakeAgent
from .fakes.home import (
    BATTERY,
    FORECAST,
    FORECAST_TOMORROW,
    GATE_OPTIONS,
    GRID,
    PV_ENERGY,
    set_state,
)

PV = "sensor.pv_power"
LOAD = "sensor.house_consumption"
PLAN = "sensor.orin_rooftop_batch_plan"
# A grid meter that reads export as positive and a battery that reads charge as positive.
GRID_HOME = GATE_OPTIONS | {
    CONF_GRID_SIGN: "export_positive",
    CONF_BATTERY_SIGN: "charge_positive",
    CONF_PV_FORECAST_TOMORROW: FORECAST_TOMORROW,
}
GRID_IMPORT = "sensor.grid_import_power"
GRID_EXPORT = "sensor.grid_export_power"
CHARGE = "sensor.battery_charge_power"
DISCHARGE = "sensor.battery_discharge_power"
# A grid meter and a battery that each give two powers, never negative.
IMPORT_EXPORT_HOME = GATE_OPTIONS | {
    CONF_GRID_SOURCE: "import_export",
    CONF_GRID_IMPORT: GRID_IMPORT,
    CONF_GRID_EXPORT: GRID_EXPORT,
    CONF_BATTERY_SOURCE: "charge_discharge",
    CONF_BATTERY_CHARGE: CHARGE,
    CONF_BATTERY_DISCHARGE: DISCHARGE,
}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: None) -> None:
    """The recorder is set up before Home Assistant (and so before the integration)."""


@pytest.fixture
def options() -> dict[str, Any]:
    """No grid meter: PV and the house's consumption; today's and tomorrow's forecasts."""
    return {
        CONF_GRID_SOURCE: "pv_load",
        CONF_PV_POWER: PV,
        CONF_LOAD_POWER: LOAD,
        CONF_BATTERY_SOURCE: "none",
        CONF_PV_FORECAST: FORECAST,
        CONF_PV_FORECAST_TOMORROW: FORECAST_TOMORROW,
        CONF_STALE_AFTER: 300,
        CONF_FAIL_OPEN: False,
        CONF_INFERENCE_POWER: 10.0,
    }


@pytest.fixture
def mock_agent(mock_agent: FakeAgent) -> FakeAgent:
    """An agent with a batch queue, empty."""
    mock_agent.count_batches()
    return mock_agent


def hours_back() -> list[datetime]:
    """The starts of a week of hours, up to the last full one."""
    hour = dt_util.utcnow().replace(minute=0, second=0, microsecond=0)
    return [hour - timedelta(hours=h) for h in range(1, 7 * 24 + 1)]


async def record(
    hass: HomeAssistant, entity_id: str, rows: list[StatisticData], *, kwh: bool
) -> None:
    """Hourly statistics as the recorder keeps them: means of a power in kW, or (`kwh`) sums of an
    energy meter in kWh."""
    metadata = StatisticMetaData(
        mean_type=StatisticMeanType.NONE if kwh else StatisticMeanType.ARITHMETIC,
        has_sum=kwh,
        name=None,
        source="recorder",
        statistic_id=entity_id,
        unit_class="energy" if kwh else "power",
        unit_of_measurement="kWh" if kwh else "kW",
    )
    async_import_statistics(hass, metadata, rows)
    await async_wait_recording_done(hass)


async def record_power(hass: HomeAssistant, entity_id: str, watts: float) -> None:
    """A week of hourly means of a power entity."""
    rows = [StatisticData(start=start, mean=watts / 1000) for start in hours_back()]
    await record(hass, entity_id, rows, kwh=False)


async def record_energy(hass: HomeAssistant, entity_id: str, wh_an_hour: float) -> None:
    """A week of hourly sums of an energy meter that grows `wh_an_hour` each hour."""
    rows = [
        StatisticData(start=start, state=n * wh_an_hour / 1000, sum=n * wh_an_hour / 1000)
        for n, start in enumerate(reversed(hours_back()), start=1)
    ]
    await record(hass, entity_id, rows, kwh=True)


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> JoulegateGateCoordinator:
    """Set the entry up: the statistics recorded by then are read at setup."""
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    gate = entry.runtime_data.gate
    assert gate is not None
    return gate


async def plan_tonight(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> str:
    """A batch of 2.5 h due tomorrow at 14:00, planned in a dull night's cycle: the plan."""
    mock_agent.add_batch("batch_17", deadline=day + timedelta(days=1, hours=14))
    await gate.agent.async_refresh()
    await dull_night(hass, gate, day)
    return str(hass.states.get(PLAN).state)


async def dull_night(
    hass: HomeAssistant, gate: JoulegateGateCoordinator, day: datetime, minute: int = 0
) -> None:
    """A cycle at 22:00 (and `minute`); tomorrow's detail a dull morning of 500 Wh an hour:
    enough for the rig alone, nothing over a house that draws 600 W."""
    at = day + timedelta(hours=22, minutes=minute)
    tomorrow = day + timedelta(days=1)
    morning = {(tomorrow + timedelta(hours=h)).isoformat(): 500 for h in range(6, 14)}
    set_state(hass, PV, 0, at, unit_of_measurement="W")
    set_state(hass, LOAD, 600, at, unit_of_measurement="W")
    set_state(hass, FORECAST, 0, at)
    set_state(hass, FORECAST_TOMORROW, 4.0, at, wh_period=morning)
    await gate.async_run_cycle(at)
    await hass.async_block_till_done()


@pytest.mark.usefixtures("no_gate_timer")
async def test_the_house_s_load_from_the_recorder_comes_off_the_forecast(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    day: datetime,
) -> None:
    """A week of 600 W in the statistics, read at setup: the dull morning leaves the rig no
    sunshine, so the plan waits for the latest start instead of counting on the sun."""
    await record_power(hass, LOAD, 600.0)
    gate = await set_up(hass, mock_config_entry)
    assert await plan_tonight(hass, mock_agent, gate, day) == "waiting"


async def test_without_statistics_the_forecast_is_taken_as_surplus(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    assert await plan_tonight(hass, mock_agent, gate, day) == "on_sun"


async def test_the_house_s_load_is_read_again_each_hour(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    """Statistics that come after setup count from the next hourly read, not each cycle."""
    await record_power(hass, LOAD, 600.0)
    assert await plan_tonight(hass, mock_agent, gate, day) == "on_sun"
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=1, seconds=1))
    await hass.async_block_till_done()
    await dull_night(hass, gate, day, minute=1)
    assert hass.states.get(PLAN).state == "waiting"


@pytest.mark.usefixtures("no_gate_timer")
async def test_a_failing_statistics_query_leaves_the_load_unknown(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    day: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database fails: the forecast is taken as surplus as it is, and nothing is raised."""
    await record_power(hass, LOAD, 600.0)
    with patch(
        "custom_components.joulegate.house_load.statistics_during_period",
        side_effect=OperationalError("SELECT", {}, Exception("database is locked")),
    ):
        gate = await set_up(hass, mock_config_entry)
    assert await plan_tonight(hass, mock_agent, gate, day) == "on_sun"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_diagnostics_show_the_house_s_load_profile(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    mock_config_entry: MockConfigEntry,
) -> None:
    await record_power(hass, LOAD, 600.0)
    await set_up(hass, mock_config_entry)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, mock_config_entry)
    load = diagnostics["gate"]["house_load"]
    assert load["hourly_w"] == [pytest.approx(600.0)] * 24
    assert load["time_zone"] == hass.config.time_zone


@pytest.mark.parametrize(
    ("options", "power_w"),
    [
        (GRID_HOME, {GRID: 400.0, BATTERY: 200.0}),
        (
            IMPORT_EXPORT_HOME,
            {GRID_IMPORT: 100.0, GRID_EXPORT: 500.0, CHARGE: 200.0, DISCHARGE: 0.0},
        ),
    ],
    ids=["signed", "import_export"],
)
async def test_with_a_grid_meter_the_house_s_load_is_pv_plus_import_plus_discharge(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, power_w: dict[str, float]
) -> None:
    """1000 Wh of PV an hour, 400 W exported and 200 W into the battery (each as its sensors
    report it): the house drew 400 W."""
    await record_energy(hass, PV_ENERGY, 1000.0)
    for entity_id, watts in power_w.items():
        await record_power(hass, entity_id, watts)
    gate = await set_up(hass, mock_config_entry)
    assert gate.house_load.profile == LoadProfile(
        (pytest.approx(400.0),) * 24, hass.config.time_zone
    )


@pytest.mark.parametrize(
    "options", [{key: value for key, value in GRID_HOME.items() if key != CONF_PV_ENERGY}]
)
async def test_a_grid_meter_without_a_pv_energy_meter_gives_no_load(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """The grid meter sees PV and load only as their difference: no profile."""
    await record_power(hass, GRID, 400.0)
    await record_power(hass, BATTERY, 200.0)
    gate = await set_up(hass, mock_config_entry)
    assert gate.house_load.profile is None
