"""Fixtures for the Joulegate integration tests.

Importing the integration here, at module level, puts this repository's
`custom_components` package in place before the test plugin's own one (which
would otherwise shadow it, and setup would fail with "Integration not found").
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import PropertyMock, patch

import pytest
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.joulegate.const import DOMAIN
from custom_components.joulegate.gate import JoulegateGateCoordinator

from .common import DEVICE_ID, ENTRY_ID, MockAgentFactory, MockConfigEntryFactory
from .fakes.agent import FakeAgent
from .real_agent import RealAgent, running_agent


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load integrations from custom_components/."""


@pytest.fixture(autouse=True)
def fast_event_stream_backoff() -> Generator[None]:
    """Reconnect the event stream quickly in tests."""
    with (
        patch("custom_components.joulegate.coordinator.EVENT_STREAM_BACKOFF_MIN", 0.01),
        patch("custom_components.joulegate.coordinator.EVENT_STREAM_BACKOFF_MAX", 0.05),
    ):
        yield


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Create every entity enabled, those disabled by default included."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
async def mock_agent_factory(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncGenerator[MockAgentFactory]:
    """Start fake agents on 127.0.0.1 (`info` fields override the fixture's: another box); every
    one stops before Home Assistant.

    Sockets stay limited to 127.0.0.1 (the test plugin's host allow-list).
    """
    started: list[FakeAgent] = []

    async def start(**info: Any) -> FakeAgent:
        fake = FakeAgent()
        fake.info = fake.info | info
        await fake.start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        await fake.stop()


@pytest.fixture
async def mock_agent(mock_agent_factory: MockAgentFactory) -> FakeAgent:
    """The fake Joulegate agent a test's entry points at."""
    return await mock_agent_factory()


@pytest.fixture
async def real_agent(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path
) -> AsyncGenerator[RealAgent]:
    """The real agent, simulated source, serving its app on 127.0.0.1."""
    async with running_agent(tmp_path) as agent:
        yield agent


@pytest.fixture
def options() -> dict[str, Any]:
    """The entry's options (none by default: no surplus gate)."""
    return {}


@pytest.fixture
def mock_config_entry_factory() -> MockConfigEntryFactory:
    """Config entries pointing at an agent (fake or real); keywords are the entry's other fields."""

    def make(agent: FakeAgent | RealAgent, **fields: Any) -> MockConfigEntry:
        data = {CONF_HOST: agent.host, CONF_PORT: agent.port, CONF_TOKEN: agent.token}
        return MockConfigEntry(domain=DOMAIN, data=data, **fields)

    return make


@pytest.fixture
def mock_config_entry(
    mock_config_entry_factory: MockConfigEntryFactory,
    mock_agent: FakeAgent,
    options: dict[str, Any],
) -> MockConfigEntry:
    """A config entry pointing at the test agent."""
    return mock_config_entry_factory(
        mock_agent, title="orin-rooftop", unique_id=DEVICE_ID, entry_id=ENTRY_ID, options=options
    )


@pytest.fixture
def no_gate_timer() -> Generator[None]:
    """Run gate cycles only when a test asks (it drives the time itself)."""
    with patch(
        "custom_components.joulegate.gate.async_track_time_interval", return_value=lambda: None
    ):
        yield


@pytest.fixture
def day() -> datetime:
    """Local midnight of a day after today (so the first, real-time cycle comes before it)."""
    return dt_util.start_of_local_day(dt_util.now() + timedelta(days=2))


@pytest.fixture
async def gate(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    no_gate_timer: None,
    init_integration: MockConfigEntry,
) -> JoulegateGateCoordinator:
    """The entry's gate runner, with the rig idle (its power is its idle baseline)."""
    mock_agent.status["power"]["board_w"] = mock_agent.status["idle"]["baseline_w"]
    await init_integration.runtime_data.coordinator.async_refresh()
    runner = init_integration.runtime_data.gate
    assert runner is not None
    return runner


@pytest.fixture
def platforms() -> list[Platform]:
    """The platforms to set up (all by default)."""
    return [Platform.BINARY_SENSOR, Platform.NUMBER, Platform.SELECT, Platform.SENSOR]


@pytest.fixture
async def init_integration(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_agent: FakeAgent,
    platforms: list[Platform],
) -> AsyncGenerator[MockConfigEntry]:
    """Set up the integration against the test agent."""
    mock_config_entry.add_to_hass(hass)
    with patch("custom_components.joulegate.PLATFORMS", platforms):
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        yield mock_config_entry
