"""The integration against the real `joulegate-agent` (simulated power source) on 127.0.0.1.

Only the world at the agent's edges is simulated (its power source); the API,
ledger, event stream and token are the agent's own (see real_agent.py).
"""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.joulegate.const import DOMAIN, EVENT_INFERENCE

from .common import wait_until
from .real_agent import RealAgent


async def test_real_agent_end_to_end(
    hass: HomeAssistant, real_agent: RealAgent, device_registry: dr.DeviceRegistry
) -> None:
    """Add the agent through the config flow, meter inferences, restart, count once."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: real_agent.port, CONF_TOKEN: real_agent.token},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.unique_id == real_agent.agent.device_id
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    device = device_registry.async_get_device(identifiers={(DOMAIN, real_agent.agent.device_id)})
    assert device is not None
    assert device.model == real_agent.agent.board.model
    assert device.sw_version == real_agent.agent.version

    states = {
        state.entity_id: state
        for state in hass.states.async_all()
        if state.entity_id.endswith("_inferences")
    }
    assert len(states) == 1
    inferences_id = next(iter(states))
    start_count = int(states[inferences_id].state)

    events = async_capture_events(hass, EVENT_INFERENCE)
    coordinator = entry.runtime_data.coordinator
    await wait_until(lambda: coordinator.event_stream == "connected")

    # Metered while Home Assistant runs: it shows at once, through the event stream.
    row = await real_agent.meter_inference(hass, output_tokens=42)
    await wait_until(lambda: hass.states.get(inferences_id).state == str(start_count + 1))
    assert [event.data["id"] for event in events] == [row["id"]]

    # Home Assistant stops; an inference finishes; Home Assistant starts again.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    missed = await real_agent.meter_inference(hass, output_tokens=7)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert [event.data["id"] for event in events] == [row["id"], missed["id"]]
    assert hass.states.get(inferences_id).state == str(start_count + 2)
    await entry.runtime_data.coordinator.async_refresh()
    assert [event.data["id"] for event in events] == [row["id"], missed["id"]]


async def test_the_real_agents_storage_report_is_read_and_raises_no_repair(
    hass: HomeAssistant, real_agent: RealAgent, issue_registry: ir.IssueRegistry
) -> None:
    """The agent's `storage` object parses as the integration expects; healthy, no repair."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: real_agent.port, CONF_TOKEN: real_agent.token},
    )
    entry = result["result"]
    await hass.async_block_till_done()
    storage = entry.runtime_data.coordinator.data.status.storage
    assert storage is not None
    assert storage.healthy
    assert storage.pending_rows == 0
    assert storage.spool_capacity >= 1
    assert issue_registry.async_get_issue(DOMAIN, f"{entry.entry_id}_storage") is None
