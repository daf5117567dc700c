"""Tests of the Joulegate sensors."""

from __future__ import annotations

import pytest
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.joulegate.const import DOMAIN

from .common import DEVICE_ID
from .fakes.agent import FakeAgent


@pytest.fixture
def platforms() -> list[Platform]:
    """Only the sensor platform."""
    return [Platform.SENSOR]


@pytest.mark.usefixtures("entity_registry_enabled_by_default", "init_integration")
async def test_entities(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    mock_config_entry: MockConfigEntry,
) -> None:
    """Every sensor, its registry entry and its state."""
    await snapshot_platform(hass, entity_registry, snapshot, mock_config_entry.entry_id)

    device = device_registry.async_get_device(identifiers={(DOMAIN, DEVICE_ID)})
    assert device is not None
    for entity in er.async_entries_for_config_entry(entity_registry, mock_config_entry.entry_id):
        assert entity.device_id == device.id


@pytest.mark.usefixtures("init_integration")
async def test_diagnostic_sensors_disabled_by_default(
    hass: HomeAssistant, entity_registry: er.EntityRegistry
) -> None:
    """Per-rail power and per-zone temperatures are diagnostics, off by default."""
    for entity_id in (
        "sensor.orin_rooftop_vdd_in_power",
        "sensor.orin_rooftop_cpu_thermal_temperature",
    ):
        entry = entity_registry.async_get(entity_id)
        assert entry is not None
        assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert entry.entity_category == "diagnostic"
        assert hass.states.get(entity_id) is None


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_missing_values_are_unknown(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """A rail that stopped answering, no inference yet: unknown; no power mode: no entity (a board
    without nvpmodel never fills it)."""
    mock_agent.status["power_mode"] = None
    mock_agent.status["inference"]["last"] = None
    mock_agent.status["power"]["rails"] = mock_agent.status["power"]["rails"][:1]
    mock_agent.rows = []
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get("sensor.orin_rooftop_power_mode") is None
    last = hass.states.get("sensor.orin_rooftop_last_inference_energy")
    assert last.state == "unknown"
    assert "output_tokens" not in last.attributes

    # A rail the agent stops reporting reads unknown, not stale.
    mock_agent.status["power"]["rails"] = []
    await mock_config_entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get("sensor.orin_rooftop_vdd_in_power").state == "unknown"


async def test_a_power_mode_entity_the_board_cannot_fill_is_removed(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    """An earlier version created Power mode on every board; where the agent says the board has
    no power modes it goes."""
    mock_config_entry.add_to_hass(hass)
    power_mode_entity(entity_registry, mock_config_entry)
    mock_agent.info["board"]["power_modes"] = False
    mock_agent.status["power_mode"] = None
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert entity_registry.async_get_entity_id("sensor", DOMAIN, f"{DEVICE_ID}_power_mode") is None
    assert hass.states.get("sensor.orin_rooftop_power_mode") is None


async def test_a_power_mode_missing_from_the_first_status_keeps_the_users_entity(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    """nvpmodel rewriting its status file as the integration starts is a blip: the entity, with
    the name the user gave it, stays and shows the mode at the next poll."""
    mock_config_entry.add_to_hass(hass)
    entity_id = power_mode_entity(entity_registry, mock_config_entry)
    entity_registry.async_update_entity(entity_id, name="Board mode")
    mock_agent.info["board"]["power_modes"] = True
    mock_agent.status["power_mode"] = None
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(entity_id).state == "unknown"

    mock_agent.status["power_mode"] = {"id": 2, "name": "MAXN_SUPER"}
    await mock_config_entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    entry = entity_registry.async_get(entity_id)
    assert entry is not None
    assert entry.name == "Board mode"
    assert hass.states.get(entity_id).state == "MAXN_SUPER"


async def test_a_power_mode_entity_is_kept_when_an_older_agent_does_not_say(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    """An agent from before /info's board.power_modes: one status without a mode proves nothing."""
    mock_config_entry.add_to_hass(hass)
    power_mode_entity(entity_registry, mock_config_entry)
    mock_agent.info["board"].pop("power_modes", None)
    mock_agent.status["power_mode"] = None
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert entity_registry.async_get_entity_id("sensor", DOMAIN, f"{DEVICE_ID}_power_mode")


def power_mode_entity(registry: er.EntityRegistry, config_entry: MockConfigEntry) -> str:
    """The Power mode entity as an earlier setup left it in the registry."""
    return registry.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{DEVICE_ID}_power_mode",
        config_entry=config_entry,
        suggested_object_id="orin_rooftop_power_mode",
    ).entity_id


@pytest.mark.usefixtures("init_integration")
async def test_last_inference_shows_the_agents_error_bound(hass: HomeAssistant) -> None:
    """31.4 J ± 0.942 J: "0.0087 Wh ± 3 %"."""
    last = hass.states.get("sensor.orin_rooftop_last_inference_energy")
    assert last.attributes["energy_error_wh"] == pytest.approx(0.942 / 3600, abs=1e-6)
    assert last.attributes["energy_error_percent"] == 3.0


async def test_last_inference_from_an_agent_without_the_bound_says_unknown(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """An agent older than the bound sends no energy_error_j: the energy still shows."""
    del mock_agent.status["inference"]["last"]["energy_error_j"]
    for row in mock_agent.rows:
        del row["energy_error_j"]
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    last = hass.states.get("sensor.orin_rooftop_last_inference_energy")
    assert float(last.state) == pytest.approx(0.008722)
    assert last.attributes["energy_error_wh"] is None
    assert last.attributes["energy_error_percent"] is None
