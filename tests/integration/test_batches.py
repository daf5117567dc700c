"""The batch queue in Home Assistant, against the test agent: batch rows in the accounting."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.joulegate.gate import GateRunner

from .fake_agent import FakeAgent
from .home import GATE_OPTIONS
from .test_gate import CARBON, GRID_WH, SHARE, Day, infer, value


@pytest.fixture
def options() -> dict[str, Any]:
    """A home with a signed grid meter, a battery and every optional input."""
    return dict(GATE_OPTIONS)


async def test_a_batch_run_on_the_grid_leaves_the_per_inference_figures_alone(
    hass: HomeAssistant, agent: FakeAgent, gate: GateRunner, day: datetime
) -> None:
    """A chat at noon on sunshine, then a batch's request at night on the grid: the grid total
    grows by the batch's energy, the rolling figures per inference stay the chat's."""
    entry = gate.entry
    run = Day(hass, gate).run
    at = await run(day + timedelta(hours=13), 3, grid_w=-800, soc=100, pv_kwh=108)
    await infer(hass, agent, entry, at)
    await run(at + timedelta(seconds=10), 1, grid_w=-800, soc=100, pv_kwh=108)
    share, carbon = value(hass, SHARE), value(hass, CARBON)
    per_inference = gate.state.energy_per_inference_wh
    assert share == 100

    at = await run(day + timedelta(hours=23), 3, grid_w=300, battery_w=0, soc=20, pv_kwh=110)
    agent.finish_inference(
        marginal_j=900.0, energy_j=1000.0, ended_at=at, duration=20.0, batch_id="batch_17"
    )
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    assert value(hass, GRID_WH) == pytest.approx(900.0 / 3600)
    assert value(hass, SHARE) == share
    assert value(hass, CARBON) == carbon
    await run(at + timedelta(seconds=10), 1, grid_w=300, battery_w=0, soc=20, pv_kwh=110)
    assert gate.state.energy_per_inference_wh == per_inference
