"""Tests of the repairs about the agent itself: a ledger it cannot save."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.joulegate.const import DOMAIN

from .common import ENTRY_ID
from .fakes.agent import FakeAgent

STORAGE_ISSUE = f"{ENTRY_ID}_storage"


async def _poll(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()


async def test_an_agent_that_cannot_save_its_ledger_raises_a_repair_until_it_can(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The repair names the rows waiting in the spool and the agent's error; it goes when the
    agent writes again."""
    assert issue_registry.async_get_issue(DOMAIN, STORAGE_ISSUE) is None
    mock_agent.status["storage"] = {
        "healthy": False,
        "pending_rows": 37,
        "spool_capacity": 10000,
        "error": "database or disk is full",
    }
    await _poll(hass, init_integration)
    issue = issue_registry.async_get_issue(DOMAIN, STORAGE_ISSUE)
    assert issue is not None
    assert issue.translation_key == "storage_failing"
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {
        "agent": "orin-rooftop",
        "pending_rows": "37",
        "spool_capacity": "10000",
        "error": "database or disk is full",
    }

    mock_agent.status["storage"] = mock_agent.status["storage"] | {"pending_rows": 38}
    await _poll(hass, init_integration)
    issue = issue_registry.async_get_issue(DOMAIN, STORAGE_ISSUE)
    assert issue is not None
    assert issue.translation_placeholders["pending_rows"] == "38"

    mock_agent.status["storage"] = {
        "healthy": True,
        "pending_rows": 0,
        "spool_capacity": 10000,
        "error": None,
    }
    await _poll(hass, init_integration)
    assert issue_registry.async_get_issue(DOMAIN, STORAGE_ISSUE) is None


async def test_an_unhealthy_storage_without_an_error_has_its_own_text(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """No error message from the agent: a text without one, nothing made up in English."""
    mock_agent.status["storage"] = {
        "healthy": False,
        "pending_rows": 3,
        "spool_capacity": 500,
        "error": None,
    }
    await _poll(hass, init_integration)
    issue = issue_registry.async_get_issue(DOMAIN, STORAGE_ISSUE)
    assert issue is not None
    assert issue.translation_key == "storage_failing_no_detail"
    assert "error" not in issue.translation_placeholders


async def test_an_agent_that_reports_no_storage_raises_nothing(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """An older agent without the field: the entry loads, no repair."""
    del mock_agent.status["storage"]
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.runtime_data.coordinator.data.status.storage is None
    assert issue_registry.async_get_issue(DOMAIN, STORAGE_ISSUE) is None


async def test_a_failing_storage_at_setup_is_reported_and_unloading_removes_it(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Unhealthy from the first status on; an unloaded entry no longer follows it."""
    mock_agent.status["storage"] = {
        "healthy": False,
        "pending_rows": 1,
        "spool_capacity": 500,
        "error": "read-only file system",
    }
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, STORAGE_ISSUE) is not None
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, STORAGE_ISSUE) is None
