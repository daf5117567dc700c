"""Tests of the Joulegate diagnostics."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from .fakes.agent import TOKEN


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Diagnostics hold the agent's documents and the ledger, never the token."""
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert TOKEN not in str(diagnostics)
    assert diagnostics["entry"]["data"]["token"] == "**REDACTED**"
    # The test agent's port changes from run to run; the event stream may not
    # have connected yet.
    assert diagnostics == snapshot(exclude=props("port", "event_stream"))
