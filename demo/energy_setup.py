"""The Energy dashboard for the demo house: what a user sets under Settings -> Dashboards -> Energy.

Grid import and export, solar production and the battery come from the house's energy meters
(demo/ha_config.py); each rig is an individual device, its board energy, with its inference
energy as a device inside it, so that /energy shows each rig's share of the house and inference's
share of the rig. Saved over the websocket API, as the frontend saves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from demo.ha_client import HomeAssistantClient

GRID_IMPORT = "sensor.demo_grid_import_energy"
GRID_EXPORT = "sensor.demo_grid_export_energy"
SOLAR = "sensor.demo_solar_production"
BATTERY_OUT = "sensor.demo_battery_discharge_energy"
BATTERY_IN = "sensor.demo_battery_charge_energy"


def energy_prefs(rigs: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """The Energy preferences for the demo house and its rigs: each rig's name (its entry's
    title) with its entities (by key)."""
    devices: list[dict[str, Any]] = []
    for name, entities in rigs.items():
        rig = entities["energy"]
        devices.append(
            {"stat_consumption": rig, "name": name, "stat_rate": entities["board_power"]}
        )
        if inference := entities.get("inference_energy"):
            devices.append(
                {
                    "stat_consumption": inference,
                    "name": f"Inference on {name}",
                    "included_in_stat": rig,
                }
            )
    return {
        "energy_sources": [
            {
                "type": "grid",
                # No tariffs: the frontend sends the price fields empty, and so must we.
                "flow_from": [
                    {
                        "stat_energy_from": GRID_IMPORT,
                        "stat_cost": None,
                        "entity_energy_price": None,
                        "number_energy_price": None,
                    }
                ],
                "flow_to": [
                    {
                        "stat_energy_to": GRID_EXPORT,
                        "stat_compensation": None,
                        "entity_energy_price": None,
                        "number_energy_price": None,
                    }
                ],
                "power": [{"power_config": {"stat_rate": "sensor.demo_grid_power"}}],
                "cost_adjustment_day": 0,
            },
            {
                "type": "solar",
                "stat_energy_from": SOLAR,
                "stat_rate": "sensor.demo_pv_power",
                "config_entry_solar_forecast": None,
            },
            {
                "type": "battery",
                "stat_energy_from": BATTERY_OUT,
                "stat_energy_to": BATTERY_IN,
                "power_config": {"stat_rate": "sensor.demo_battery_power"},
            },
        ],
        "device_consumption": devices,
    }


async def configure(ha: HomeAssistantClient, rigs: Mapping[str, Mapping[str, str]]) -> None:
    """Save the Energy preferences (replacing what the dashboard had)."""
    await ha.ws({"type": "energy/save_prefs", **energy_prefs(rigs)})
