"""Outages against the real agent (simulated source, its app on 127.0.0.1): Home Assistant
restarted mid-day, and the agent unreachable for minutes.

Home Assistant's polling runs on its own clock, moved with `async_fire_time_changed` instead of
waiting minutes; the agent's lease runs on the agent's real clock, so the gate cycles every
second here (a lease of three seconds), as in test_gate_real_agent.py. Covered elsewhere with the
test agent: an inference finished while Home Assistant was down is counted once
(test_coordinator.py), one log line each way while the agent is unreachable (test_coordinator.py,
test_gate.py); with the real agent: a restart counts once (test_real_agent.py), the lease runs
out when Home Assistant goes (test_gate_real_agent.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from aiohttp import web
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.joulegate.const import DOMAIN, EVENT_INFERENCE
from demo.procs import free_port

from .common import MockConfigEntryFactory, wait_until
from .fakes.home import GATE_OPTIONS, set_home
from .real_agent import RealAgent

TOTALS = ("sensor:energy", "sensor:inference_energy", "sensor:inferences", "sensor:output_tokens")
POLL = timedelta(seconds=10)  # the coordinator's default update interval
LEASE_S = 3.0


class Reachable(RealAgent):
    """The real agent whose HTTP side can be cut off and restored while it keeps running
    (sampler, meter, ledger and gate), as in a network outage."""

    def __init__(self, agent: Any, port: int) -> None:
        super().__init__(agent, port)
        self.runner: web.AppRunner | None = None

    async def serve(self) -> None:
        from joulegate_agent.api.app import build_app

        self.runner = web.AppRunner(build_app(self.agent), shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def cut(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()  # every connection closed, the event stream too
        self.runner = None

    def meter_directly(self, output_tokens: int) -> asyncio.Task[Any]:
        """An inference a non-HTTP runtime meters on the box itself (works while cut off)."""
        service = self.agent.inference
        window = service.open_explicit(model="local")
        task: asyncio.Task[Any] = service.finish_later(
            window, outcome="ok", output_tokens=output_tokens
        )
        return task


@asynccontextmanager
async def reachable_agent(tmp_path: Path) -> AsyncGenerator[Reachable]:
    from joulegate_agent.agent import Agent
    from joulegate_agent.config import AgentConfig

    port = free_port()
    agent = Agent(
        AgentConfig(
            host="127.0.0.1",
            port=port,
            data_dir=tmp_path / "agent",
            source="simulated",
            zeroconf=False,
            sample_rate_hz=20.0,
        )
    )
    await agent.start()
    reachable = Reachable(agent, port)
    await reachable.serve()
    try:
        yield reachable
    finally:
        await agent.inference.stop()
        if reachable.runner is not None:
            await reachable.runner.cleanup()
        await agent.stop()


@pytest.fixture
async def live_agent(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path
) -> AsyncGenerator[Reachable]:
    async with reachable_agent(tmp_path) as agent:
        yield agent


@pytest.fixture
def short_cycle() -> Any:
    with patch("custom_components.joulegate.gate.GATE_CYCLE", timedelta(seconds=1)):
        yield


async def setup_entry(
    hass: HomeAssistant, agent: Reachable, make_entry: MockConfigEntryFactory
) -> MockConfigEntry:
    entry = make_entry(agent, title="rig", unique_id=agent.agent.device_id, options=GATE_OPTIONS)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def sunny_cycle(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """The house exports with the battery full: the gate should open (no banking wait here)."""
    gate = entry.runtime_data.gate
    assert gate is not None
    gate.controller.update_settings(min_off_s=0.0, open_after_wh=0.0)
    set_home(hass, None, grid_w=-800, soc=100)
    await gate.async_run_cycle()
    await hass.async_block_till_done()


def reader(hass: HomeAssistant, entity_registry: er.EntityRegistry, device_id: str) -> Any:
    def state(key: str) -> str:
        platform, _, name = key.partition(":")
        entity_id = entity_registry.async_get_entity_id(platform, DOMAIN, f"{device_id}_{name}")
        assert entity_id is not None
        found = hass.states.get(entity_id)
        assert found is not None
        return found.state

    return state


async def poll(hass: HomeAssistant, times: int, moved: list[timedelta]) -> None:
    """`times` scheduled polls, by moving Home Assistant's clock one interval each."""
    for _ in range(times):
        moved[0] += POLL
        async_fire_time_changed(hass, dt_util.utcnow() + moved[0])
        await hass.async_block_till_done()


@pytest.mark.usefixtures("no_gate_timer", "short_cycle")
async def test_home_assistant_restarted_mid_day(
    hass: HomeAssistant,
    live_agent: Reachable,
    mock_config_entry_factory: MockConfigEntryFactory,
    entity_registry: er.EntityRegistry,
) -> None:
    """Totals come back where they were (never lower), the inference finished meanwhile counts
    once, the lease ran out while Home Assistant was away, and the gate is leased again."""
    entry = await setup_entry(hass, live_agent, mock_config_entry_factory)
    state = reader(hass, entity_registry, live_agent.agent.device_id)
    await sunny_cycle(hass, entry)
    assert (await live_agent.gate(hass))["source"] == "lease"
    events = async_capture_events(hass, EVENT_INFERENCE)
    for tokens in (11, 12):
        await live_agent.meter_inference(hass, output_tokens=tokens)
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    await wait_until(lambda: len(events) == 2)
    before = {key: float(state(key)) for key in TOTALS}

    assert await hass.config_entries.async_unload(entry.entry_id)  # Home Assistant stops
    await hass.async_block_till_done()
    missed = await live_agent.meter_inference(hass, output_tokens=13)
    await asyncio.sleep(LEASE_S + 0.3)
    gate = await live_agent.gate(hass)
    assert (gate["open"], gate["source"]) == (False, "fallback")

    assert await hass.config_entries.async_setup(entry.entry_id)  # and starts again
    await hass.async_block_till_done()
    after = {key: float(state(key)) for key in TOTALS}
    for key in TOTALS:
        assert after[key] >= before[key], key
    assert after["sensor:inferences"] == before["sensor:inferences"] + 1
    assert after["sensor:output_tokens"] == before["sensor:output_tokens"] + 13
    assert [event.data["id"] for event in events][-1] == missed["id"]
    assert len(events) == 3  # not missed, not counted twice

    await sunny_cycle(hass, entry)
    gate = await live_agent.gate(hass)
    assert (gate["open"], gate["source"]) == (True, "lease")


@pytest.mark.usefixtures("no_gate_timer", "short_cycle")
async def test_agent_unreachable_for_minutes(
    hass: HomeAssistant,
    live_agent: Reachable,
    mock_config_entry_factory: MockConfigEntryFactory,
    entity_registry: er.EntityRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Five minutes without the agent: its entities go unavailable, the log says so once and
    once more when it is back, the agent's lease runs out to its fallback meanwhile, and
    everything recovers by itself: the totals, the inference metered during the outage (once),
    and the gate's lease."""
    caplog.set_level(logging.INFO, logger="custom_components.joulegate")
    entry = await setup_entry(hass, live_agent, mock_config_entry_factory)
    state = reader(hass, entity_registry, live_agent.agent.device_id)
    await sunny_cycle(hass, entry)
    events = async_capture_events(hass, EVENT_INFERENCE)
    await live_agent.meter_inference(hass, output_tokens=5)
    moved = [timedelta(0)]
    await poll(hass, 1, moved)
    await wait_until(lambda: len(events) == 1)
    before = {key: float(state(key)) for key in TOTALS}
    caplog.clear()

    await live_agent.cut()
    during = live_agent.meter_directly(output_tokens=21)
    await poll(hass, 30, moved)  # five minutes of polls
    for key in (*TOTALS, "sensor:board_power"):
        assert state(key) == STATE_UNAVAILABLE, key
    await sunny_cycle(hass, entry)  # the controller cannot lease the agent's gate
    await asyncio.sleep(LEASE_S + 0.3)
    await during
    gate = live_agent.agent.inference.gate.state()
    assert (gate.open, gate.source) == (False, "fallback")
    assert "lease ran out" in gate.reason
    gone = [r for r in caplog.records if "Error fetching" in r.getMessage()]
    assert len(gone) == 1

    await live_agent.serve()
    await poll(hass, 2, moved)
    await wait_until(lambda: len(events) == 2)
    after = {key: float(state(key)) for key in TOTALS}
    for key in TOTALS:
        assert after[key] >= before[key], key
    assert after["sensor:inferences"] == before["sensor:inferences"] + 1
    back = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(back) == 1
    assert len([r for r in caplog.records if "Error fetching" in r.getMessage()]) == 1
    await sunny_cycle(hass, entry)
    gate_json = await live_agent.gate(hass)
    assert (gate_json["open"], gate_json["source"]) == (True, "lease")
    await poll(hass, 3, moved)
    assert len(events) == 2  # nothing counted twice
