"""The demo's Energy dashboard: preferences Home Assistant's energy integration takes and finds
nothing wrong with, for the house (its meters' states as the demo's configuration makes them) and
for the rig (the integration's own sensors, read from the test agent). tests/e2e checks them on the
running demo too, where statistics are compiled only every five minutes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from demo.energy_setup import energy_prefs
from demo.ha_config import ENERGY_METERS

ENTITIES = {
    "energy": "sensor.orin_rooftop_energy",
    "inference_energy": "sensor.orin_rooftop_inference_energy",
    "board_power": "sensor.orin_rooftop_board_power",
}
ENERGY = {"device_class": "energy", "unit_of_measurement": "kWh"}
POWER = {"device_class": "power", "unit_of_measurement": "W", "state_class": "measurement"}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: None) -> None:
    """The recorder (which the energy integration needs) is set up before Home Assistant."""


async def _ws(hass: HomeAssistant, client: Any, command: dict[str, Any]) -> Any:
    await client.send_json_auto_id(command)
    reply = await client.receive_json()
    assert reply["success"], reply
    return reply["result"]


async def test_the_demo_energy_preferences_are_taken_and_the_rig_validates(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, init_integration: MockConfigEntry
) -> None:
    """Saved as the frontend saves them, read back unchanged; the rig's meters pass validation."""
    for meter in ENERGY_METERS:
        hass.states.async_set(meter.entity_id, "1.5", ENERGY | {"state_class": "total"})
    for power in ("sensor.demo_grid_power", "sensor.demo_pv_power", "sensor.demo_battery_power"):
        hass.states.async_set(power, "100", POWER)
    for entity_id in ENTITIES.values():
        assert hass.states.get(entity_id) is not None, entity_id
    assert await async_setup_component(hass, "energy", {})
    client = await hass_ws_client(hass)
    prefs = energy_prefs({"Rig A": ENTITIES})
    await _ws(hass, client, {"type": "energy/save_prefs", **prefs})

    saved = await _ws(hass, client, {"type": "energy/get_prefs"})
    sources = {source["type"]: source for source in saved["energy_sources"]}
    assert [f["stat_energy_from"] for f in sources["grid"]["flow_from"]] == [
        "sensor.demo_grid_import_energy"
    ]
    assert [f["stat_energy_to"] for f in sources["grid"]["flow_to"]] == [
        "sensor.demo_grid_export_energy"
    ]
    assert sources["solar"]["stat_energy_from"] == "sensor.demo_solar_production"
    assert sources["battery"]["stat_energy_from"] == "sensor.demo_battery_discharge_energy"
    assert sources["battery"]["stat_energy_to"] == "sensor.demo_battery_charge_energy"
    assert saved["device_consumption"] == prefs["device_consumption"]
    every_meter = {m.entity_id for m in ENERGY_METERS}
    assert every_meter == {
        sources["grid"]["flow_from"][0]["stat_energy_from"],
        sources["grid"]["flow_to"][0]["stat_energy_to"],
        sources["solar"]["stat_energy_from"],
        sources["battery"]["stat_energy_from"],
        sources["battery"]["stat_energy_to"],
    }

    # Statistics for the five minutes these states fall in, as the recorder compiles them.
    await async_wait_recording_done(hass)
    start = dt_util.utcnow().replace(second=0, microsecond=0)
    do_adhoc_statistics(hass, start=start - timedelta(minutes=start.minute % 5))
    await async_wait_recording_done(hass)
    validation = await _ws(hass, client, {"type": "energy/validate"})
    assert validation["device_consumption"] == [[], []]
    assert validation["energy_sources"] == [[], [], []]


def test_every_rig_is_a_device_of_the_house_with_its_inference_inside_it() -> None:
    """Two rigs draw from the house: each is an individual device under its own name, its
    inference energy a device inside it, so /energy counts neither rig as untracked house load."""
    rig_b = {
        key: entity_id.replace("orin_rooftop_", "orin_rooftop_b_")
        for key, entity_id in ENTITIES.items()
    }
    devices = energy_prefs({"Rig A": ENTITIES, "Rig B": rig_b})["device_consumption"]
    assert [(d["name"], d["stat_consumption"], d.get("included_in_stat")) for d in devices] == [
        ("Rig A", "sensor.orin_rooftop_energy", None),
        (
            "Inference on Rig A",
            "sensor.orin_rooftop_inference_energy",
            "sensor.orin_rooftop_energy",
        ),
        ("Rig B", "sensor.orin_rooftop_b_energy", None),
        (
            "Inference on Rig B",
            "sensor.orin_rooftop_b_inference_energy",
            "sensor.orin_rooftop_b_energy",
        ),
    ]
    assert [d.get("stat_rate") for d in devices] == [
        "sensor.orin_rooftop_board_power",
        None,
        "sensor.orin_rooftop_b_board_power",
        None,
    ]
