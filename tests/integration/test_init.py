"""Tests of setting up, unloading and removing a Joulegate config entry."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.joulegate.const import DOMAIN, GATE_CYCLE
from demo.procs import free_port

from .common import DEVICE_ID, ENTRY_ID, MockConfigEntryFactory
from .fakes.agent import FakeAgent

LEDGER_KEY = f"{DOMAIN}.{{}}.ledger"


async def test_load_unload(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """The entry loads, describes the agent as a device, and unloads."""
    assert init_integration.state is ConfigEntryState.LOADED
    device = device_registry.async_get_device(identifiers={(DOMAIN, DEVICE_ID)})
    assert device is not None
    assert device.manufacturer == "NVIDIA"
    assert device.model == "NVIDIA Jetson Orin Nano"
    assert device.name == "orin-rooftop"
    assert device.sw_version == "0.1.0"
    assert device.configuration_url == f"http://127.0.0.1:{mock_agent.port}"

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get("sensor.orin_rooftop_board_power").state == "unavailable"


async def test_an_upgraded_agent_updates_the_device_software_version(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """The agent restarts with a new version: the device shows it, without a reload."""
    coordinator = init_integration.runtime_data.coordinator
    mock_agent.info = mock_agent.info | {"agent_version": "0.2.0"}
    # The same agent, still running: nothing is read again.
    mock_agent.status["uptime_s"] += 10.0
    mock_agent.status["time"] = "2026-11-26T13:45:10.123+00:00"
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    device = device_registry.async_get_device(identifiers={(DOMAIN, DEVICE_ID)})
    assert device is not None
    assert device.sw_version == "0.1.0"

    # Restarted (it started later than it did before): its info is read again.
    mock_agent.status["uptime_s"] = 3.0
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    device = device_registry.async_get_device(identifiers={(DOMAIN, DEVICE_ID)})
    assert device is not None
    assert device.sw_version == "0.2.0"
    assert init_integration.runtime_data.info.agent_version == "0.2.0"
    assert coordinator.info.agent_version == "0.2.0"


async def test_the_agent_is_polled_at_least_once_a_gate_cycle(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The gate reads the rig's power from the coordinator every cycle: polling is no slower."""
    interval = init_integration.runtime_data.coordinator.update_interval
    assert interval is not None
    assert interval <= GATE_CYCLE


@pytest.mark.parametrize(
    "options",
    [{"update_interval": 3600}, {"update_interval": 1, "grid_source": "none"}],
)
async def test_a_stored_update_interval_is_migrated_away(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry_factory: MockConfigEntryFactory,
    options: dict[str, Any],
) -> None:
    """Entries from 0.1 (config entry version 1.1) lose the option; the rest is kept."""
    entry = mock_config_entry_factory(
        mock_agent,
        title="orin-rooftop",
        unique_id=DEVICE_ID,
        entry_id=ENTRY_ID,
        version=1,
        minor_version=1,
        options=options,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (1, 2)
    assert dict(entry.options) == {
        key: value for key, value in options.items() if key != "update_interval"
    }
    assert entry.runtime_data.coordinator.update_interval == GATE_CYCLE


async def test_an_entry_from_a_newer_version_is_not_loaded(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry_factory: MockConfigEntryFactory
) -> None:
    """A downgrade: the entry's data may mean something else, so it is left alone."""
    entry = mock_config_entry_factory(mock_agent, unique_id=DEVICE_ID, version=2)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR


async def test_an_info_that_cannot_be_read_after_a_restart_is_read_at_the_next_poll(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """The agent restarted but its info does not answer well yet: the next status tries again."""
    coordinator = init_integration.runtime_data.coordinator
    upgraded = mock_agent.info | {"agent_version": "0.2.0"}
    mock_agent.info = {"not": "an info document"}
    mock_agent.status["uptime_s"] = 3.0
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert coordinator.info.agent_version == "0.1.0"

    mock_agent.info = upgraded
    mock_agent.status["uptime_s"] = 13.0
    mock_agent.status["time"] = "2026-11-26T13:45:10.123+00:00"
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    device = device_registry.async_get_device(identifiers={(DOMAIN, DEVICE_ID)})
    assert device is not None
    assert device.sw_version == "0.2.0"


async def test_setup_retries_while_agent_unreachable(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Nothing listens at the address: Home Assistant retries later."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, CONF_PORT: free_port()}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY


async def test_setup_retries_when_first_refresh_fails(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """The agent answers its info but not its status."""
    mock_agent.status = {"unexpected": True}
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY


async def test_setup_with_rejected_token_starts_reauth(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """A token the agent refuses: setup fails and reauthentication starts."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, CONF_TOKEN: "old"}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_another_agent_at_the_address_keeps_retrying_and_raises_a_repair(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Another agent answers at the entry's address: setup retries (zeroconf may bring the
    right one back) and a repair tells the user, with a link to the entry to reconfigure it."""
    mock_agent.info = mock_agent.info | {"device_id": "ffffffffffffffff", "hostname": "xavier-shed"}
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    issue = issue_registry.async_get_issue(DOMAIN, f"{ENTRY_ID}_wrong_device")
    assert issue is not None
    assert issue.translation_key == "wrong_device"
    assert not issue.is_fixable
    assert issue.translation_placeholders == {
        "agent": "orin-rooftop",
        "address": f"127.0.0.1:{mock_agent.port}",
        "expected": DEVICE_ID,
        "found": "ffffffffffffffff",
        "found_name": "xavier-shed",
        "entry_url": f"/config/integrations/integration/{DOMAIN}#config_entry={ENTRY_ID}",
    }


async def test_the_wrong_device_repair_goes_once_setup_succeeds(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The right agent is back at the address: the next retry loads and removes the repair."""
    right = mock_agent.info
    mock_agent.info = mock_agent.info | {"device_id": "ffffffffffffffff"}
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, f"{ENTRY_ID}_wrong_device")
    mock_agent.info = right
    await hass.config_entries.async_reload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, f"{ENTRY_ID}_wrong_device") is None


async def test_removing_a_retrying_entry_removes_its_wrong_device_repair(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """An entry the user deletes instead of reconfiguring leaves no repair behind."""
    mock_agent.info = mock_agent.info | {"device_id": "ffffffffffffffff"}
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.config_entries.async_remove(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, f"{ENTRY_ID}_wrong_device") is None


async def test_remove_entry_deletes_ledger_cursor(
    hass: HomeAssistant, init_integration: MockConfigEntry, hass_storage: dict[str, object]
) -> None:
    """Removing the entry removes its saved ledger cursor."""
    key = LEDGER_KEY.format(init_integration.entry_id)
    assert key in hass_storage
    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage
