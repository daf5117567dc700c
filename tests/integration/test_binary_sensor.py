"""Tests of the Joulegate binary sensors."""

from __future__ import annotations

import pytest
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from .fakes.agent import FakeAgent


@pytest.fixture
def platforms() -> list[Platform]:
    """Only the binary sensor platform."""
    return [Platform.BINARY_SENSOR]


@pytest.mark.usefixtures("init_integration")
async def test_entities(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    entity_registry: er.EntityRegistry,
    mock_config_entry: MockConfigEntry,
) -> None:
    """Every binary sensor, its registry entry and its state."""
    await snapshot_platform(hass, entity_registry, snapshot, mock_config_entry.entry_id)


async def test_gate_and_throttling_follow_the_agent(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """An open gate with a lease, a throttling board."""
    mock_agent.status["gate"] = mock_agent.gate | {
        "open": True,
        "source": "lease",
        "reason": "surplus",
        "lease_expires_at": "2026-11-26T13:46:00+00:00",
        "lease_remaining_s": 60.0,
    }
    mock_agent.status["throttling"] = {"active": True, "reasons": ["thermal", "over_current"]}
    await init_integration.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()

    gate = hass.states.get("binary_sensor.orin_rooftop_inference_gate")
    assert gate.state == "on"
    assert gate.attributes["reason"] == "surplus"
    assert gate.attributes["source"] == "lease"
    assert gate.attributes["lease_expires_at"] == "2026-11-26T13:46:00+00:00"
    throttling = hass.states.get("binary_sensor.orin_rooftop_throttling")
    assert throttling.state == "on"
    assert throttling.attributes["reasons"] == ["thermal", "over_current"]
