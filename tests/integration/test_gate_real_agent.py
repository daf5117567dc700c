"""The surplus gate against the real agent: the agent's gate follows the home, inferences
metered by the agent are attributed, and when Home Assistant goes the lease runs out.

The day is compressed into seconds of real time (the agent's clock is real), so the
controller's banked-energy wait and minimum off time are set to zero here; the test against
the test agent plays them out on the test's own clock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.joulegate.const import DOMAIN
from custom_components.joulegate.gate import JoulegateGateCoordinator

from .common import MockConfigEntryFactory, wait_until
from .fakes.home import GATE_OPTIONS, set_home
from .real_agent import RealAgent


@pytest.fixture
def short_cycle() -> Any:
    """A one-second cycle: the agent's lease is three seconds."""
    with patch("custom_components.joulegate.gate.GATE_CYCLE", timedelta(seconds=1)):
        yield


@pytest.mark.usefixtures("no_gate_timer", "short_cycle")
async def test_a_day_with_the_real_agent(
    hass: HomeAssistant,
    real_agent: RealAgent,
    mock_config_entry_factory: MockConfigEntryFactory,
    entity_registry: er.EntityRegistry,
) -> None:
    device_id = real_agent.agent.device_id
    entry = mock_config_entry_factory(
        real_agent, title="rig", unique_id=device_id, options=GATE_OPTIONS
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    gate: JoulegateGateCoordinator | None = entry.runtime_data.gate
    assert gate is not None
    gate.controller.update_settings(min_off_s=0.0, open_after_wh=0.0)
    coordinator = entry.runtime_data.coordinator

    # The agent learns its idle baseline first (no inference for a couple of seconds).
    async def learnt() -> bool:
        await coordinator.async_refresh()
        return coordinator.data.status.idle_baseline_w is not None

    async with asyncio.timeout(10):
        while not await learnt():  # noqa: ASYNC110
            await asyncio.sleep(0.2)

    def entity(key: str) -> str:
        platform, _, name = key.partition(":")
        entity_id = entity_registry.async_get_entity_id(platform, DOMAIN, f"{device_id}_{name}")
        assert entity_id is not None
        return entity_id

    def state(key: str) -> str:
        return hass.states.get(entity(key)).state

    async def phase(
        home: dict[str, float], output_tokens: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The home's meters read `home` while an inference runs; the gate cycles meanwhile.

        Returns the agent's gate after the cycle and the inference's ledger row.
        """
        window = await real_agent.open_window(hass)
        await asyncio.sleep(0.3)  # the simulated board warms up to its inference power
        await coordinator.async_refresh()
        set_home(hass, None, **home)
        await gate.async_run_cycle()
        agent_gate = await real_agent.gate(hass)
        await asyncio.sleep(0.2)
        row = await real_agent.end_window(hass, window, output_tokens)
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        await asyncio.sleep(0.1)  # the next phase's flows come well after this window
        return agent_gate, row

    # Night: the battery holds the grid at zero. Closed; the inference ran on the battery.
    agent_gate, night = await phase({"grid_w": 0, "battery_w": 300}, 10)
    assert (state("binary_sensor:inference_allowed"), state("sensor:gate_reason")) == (
        "off",
        "no_surplus",
    )
    assert agent_gate["open"] is False
    assert agent_gate["source"] == "lease"
    assert agent_gate["reason"] == "no_surplus"
    assert 0 < agent_gate["lease_remaining_s"] <= 3

    # A cloud at noon: the grid imports. Closed; that inference came from the grid.
    agent_gate, cloud = await phase({"grid_w": 300, "soc": 100}, 20)
    assert agent_gate["open"] is False
    assert state("sensor:gate_reason") == "no_surplus"

    # Sun, the battery full, the house exports: the agent's gate opens.
    agent_gate, sunny = await phase({"grid_w": -800, "soc": 100}, 30)
    assert state("binary_sensor:inference_allowed") == "on"
    assert state("sensor:gate_reason") == "surplus"
    assert (agent_gate["open"], agent_gate["source"], agent_gate["reason"]) == (
        True,
        "lease",
        "surplus",
    )
    await wait_until(lambda: state("binary_sensor:gate") == "on")  # the agent's own sensor

    # Each inference's energy above idle, where it came from.
    def wh(row: dict[str, Any]) -> float:
        assert row["marginal_j"] is not None
        return max(0.0, row["marginal_j"]) / 3600

    assert min(wh(night), wh(cloud), wh(sunny)) > 0
    battery = float(state("sensor:inference_energy_above_idle_battery"))
    grid = float(state("sensor:inference_energy_above_idle_grid"))
    solar = float(state("sensor:inference_energy_above_idle_solar"))
    assert battery == pytest.approx(wh(night))
    assert grid == pytest.approx(wh(cloud))
    assert solar == pytest.approx(wh(sunny))
    assert grid * 300 / 1000 == pytest.approx(float(state("sensor:carbon_per_inference")) * 3)

    # The figures add up: the sum sensor is the three sources, and the ledger rows' energy above
    # idle; the agent's inference energy (idle share included) is more.
    above_idle = float(state("sensor:inference_energy_above_idle"))
    assert above_idle == pytest.approx(solar + battery + grid)
    assert above_idle == pytest.approx(wh(night) + wh(cloud) + wh(sunny))
    rows = (night, cloud, sunny)
    assert sum(row["energy_j"] for row in rows) / 3600 > above_idle

    # Home Assistant stops: nothing is sent, and the agent's lease runs out to its fallback.
    puts_before = (await real_agent.gate(hass))["changed_at"]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    still = await real_agent.gate(hass)
    assert (still["open"], still["source"], still["changed_at"]) == (True, "lease", puts_before)
    await asyncio.sleep(3.2)
    fallback = await real_agent.gate(hass)
    assert (fallback["open"], fallback["source"]) == (False, "fallback")
