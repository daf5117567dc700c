"""The actions joulegate.allow_inference and joulegate.block_inference, and their errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.joulegate.const import DOMAIN
from custom_components.joulegate.gate import JoulegateGateCoordinator

from .fakes.agent import FakeAgent
from .fakes.home import GATE_OPTIONS, set_home

REASON = "sensor.orin_rooftop_gate_reason"
MODE = "select.orin_rooftop_gate_mode"


@pytest.fixture
def options() -> dict[str, Any]:
    """A home with a surplus gate."""
    return dict(GATE_OPTIONS)


@pytest.fixture
async def gate(
    hass: HomeAssistant, no_gate_timer: None, init_integration: MockConfigEntry
) -> JoulegateGateCoordinator:
    """The gate, on a night with no surplus."""
    runner = init_integration.runtime_data.gate
    assert runner is not None
    set_home(hass, None, grid_w=300, battery_w=0)
    await runner.async_run_cycle()
    await hass.async_block_till_done()
    assert hass.states.get(REASON).state == "no_surplus"
    return runner


async def call(hass: HomeAssistant, service: str, **data: Any) -> None:
    await hass.services.async_call(DOMAIN, service, data, blocking=True)


async def test_allow_for_a_while_then_back_to_the_mode(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
) -> None:
    await call(
        hass,
        "allow_inference",
        config_entry_id=init_integration.entry_id,
        duration={"hours": 1},
    )
    reason = hass.states.get(REASON)
    assert reason.state == "forced_on"
    assert reason.attributes["override"] == "allow"
    until = dt_util.parse_datetime(reason.attributes["override_until"])
    assert until is not None
    assert mock_agent.gate_puts[-1] == {"open": True, "lease_s": 30, "reason": "forced_on"}
    assert hass.states.get(MODE).state == "solar"  # the mode itself is kept

    # The override survives a restart.
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    gate = init_integration.runtime_data.gate
    assert gate is not None
    assert gate.override is not None
    assert gate.override.until == until

    # An hour later, the mode applies again.
    later = until + timedelta(seconds=1)
    set_home(hass, later, grid_w=300, battery_w=0)
    await gate.async_run_cycle(later)
    await hass.async_block_till_done()
    reason = hass.states.get(REASON)
    assert reason.state == "no_surplus"
    assert reason.attributes["override"] is None
    assert mock_agent.gate_puts[-1]["open"] is False


async def test_block_without_a_duration_sets_the_mode(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
) -> None:
    await call(hass, "block_inference", config_entry_id=init_integration.entry_id)
    assert hass.states.get(MODE).state == "never"
    assert hass.states.get(REASON).state == "forced_off"
    assert mock_agent.gate_puts[-1]["reason"] == "forced_off"

    # Allowed for a while; choosing a mode ends that at once.
    await call(
        hass,
        "allow_inference",
        config_entry_id=init_integration.entry_id,
        duration={"minutes": 30},
    )
    assert hass.states.get(REASON).state == "forced_on"
    await hass.services.async_call(
        "select", "select_option", {"entity_id": MODE, "option": "solar"}, blocking=True
    )
    assert hass.states.get(REASON).state == "no_surplus"
    assert gate.override is None


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"config_entry_id": "nope"}, "entry_not_found"),
        ({"duration": {"seconds": 0}}, "invalid_duration"),
        ({"duration": {"days": 8}}, "invalid_duration"),
    ],
)
async def test_invalid_calls(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
    data: dict[str, Any],
    key: str,
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await call(
            hass, "allow_inference", **({"config_entry_id": init_integration.entry_id} | data)
        )
    assert err.value.translation_key == key


async def test_another_integrations_entry_is_not_found(
    hass: HomeAssistant, gate: JoulegateGateCoordinator
) -> None:
    other = MockConfigEntry(domain="sun")
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "block_inference", config_entry_id=other.entry_id)
    assert err.value.translation_key == "entry_not_found"


async def test_an_unloaded_entry(
    hass: HomeAssistant, init_integration: MockConfigEntry, gate: JoulegateGateCoordinator
) -> None:
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "block_inference", config_entry_id=init_integration.entry_id)
    assert err.value.translation_key == "entry_not_loaded"
    assert err.value.translation_placeholders == {"agent": "orin-rooftop"}


@pytest.mark.parametrize("options", [{}])
async def test_an_entry_without_a_gate(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "allow_inference", config_entry_id=init_integration.entry_id)
    assert err.value.translation_key == "gate_not_configured"


async def test_the_agent_does_not_take_it(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
) -> None:
    """Saved, and sent again every cycle, but the user learns the agent has not taken it."""
    mock_agent.fail_status = 503
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "block_inference", config_entry_id=init_integration.entry_id)
    assert err.value.translation_key == "gate_not_updated"
    assert "503" in err.value.translation_placeholders["error"]
    assert hass.states.get(MODE).state == "never"
