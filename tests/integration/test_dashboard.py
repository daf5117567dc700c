"""Defaults from the Energy dashboard's power sensors, in each of its three forms."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.joulegate.dashboard import async_dashboard_defaults

from .home import set_state


def _prefs(*sources: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "minor_version": 2,
        "key": "energy",
        "data": {
            "energy_sources": list(sources),
            "device_consumption": [],
            "device_consumption_water": [],
        },
    }


GRID = {"type": "grid", "flow_from": [], "flow_to": [], "cost_adjustment_day": 0}


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        # Two sensors each for the grid and the battery.
        (
            [
                GRID
                | {
                    "power": [
                        {
                            "power_config": {
                                "stat_rate_from": "sensor.import",
                                "stat_rate_to": "sensor.export",
                            }
                        }
                    ]
                },
                {
                    "type": "battery",
                    "stat_energy_from": "sensor.e_out",
                    "stat_energy_to": "sensor.e_in",
                    "power_config": {
                        "stat_rate_from": "sensor.discharge",
                        "stat_rate_to": "sensor.charge",
                    },
                },
            ],
            {
                "grid_source": "import_export",
                "grid_import": "sensor.import",
                "grid_export": "sensor.export",
                "battery_source": "charge_discharge",
                "battery_discharge": "sensor.discharge",
                "battery_charge": "sensor.charge",
            },
        ),
        # An older configuration: just stat_rate; the grid's inverted sensor.
        (
            [
                GRID | {"power": [{"power_config": {"stat_rate_inverted": "sensor.grid"}}]},
                {
                    "type": "battery",
                    "stat_energy_from": "sensor.e_out",
                    "stat_energy_to": "sensor.e_in",
                    "stat_rate": "sensor.battery",
                },
            ],
            {
                "grid_source": "signed",
                "grid_power": "sensor.grid",
                "grid_sign": "export_positive",
                "battery_source": "signed",
                "battery_power": "sensor.battery",
                "battery_sign": "discharge_positive",
            },
        ),
        # External statistics, unknown entities, half a pair, odd entries: nothing offered.
        (
            [
                "not a source",
                GRID | {"power": ["odd", {"stat_rate": "external:grid"}]},
                {
                    "type": "solar",
                    "stat_energy_from": "sensor.does_not_exist",
                    "config_entry_solar_forecast": None,
                },
                {
                    "type": "battery",
                    "stat_energy_from": "sensor.e_out",
                    "stat_energy_to": "sensor.e_in",
                    "power_config": {"stat_rate_from": "sensor.discharge"},
                },
            ],
            {},
        ),
        # A grid without power sensors; a battery whose power_config is unreadable; the first
        # battery that names a power sensor counts.
        (
            [
                GRID | {"power": []},
                {
                    "type": "battery",
                    "stat_energy_from": "sensor.e_out",
                    "stat_energy_to": "sensor.e_in",
                    "power_config": "nonsense",
                },
                {
                    "type": "battery",
                    "stat_energy_from": "sensor.e_out",
                    "stat_energy_to": "sensor.e_in",
                    "stat_rate": "sensor.battery",
                },
                {
                    "type": "battery",
                    "stat_energy_from": "sensor.e_out2",
                    "stat_energy_to": "sensor.e_in2",
                    "stat_rate": "sensor.charge",
                },
            ],
            {
                "battery_source": "signed",
                "battery_power": "sensor.battery",
                "battery_sign": "discharge_positive",
            },
        ),
    ],
)
async def test_dashboard_defaults(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    sources: list[dict[str, Any]],
    expected: dict[str, str],
) -> None:
    for entity_id in (
        "sensor.import",
        "sensor.export",
        "sensor.grid",
        "sensor.battery",
        "sensor.discharge",
        "sensor.charge",
    ):
        set_state(hass, entity_id, 0, None, unit_of_measurement="W")
    hass_storage["energy"] = _prefs(*sources)
    assert await async_dashboard_defaults(hass) == expected
