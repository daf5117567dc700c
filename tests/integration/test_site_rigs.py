"""Two rigs behind one grid meter, in Home Assistant against two test agents: one site splits
the house's surplus by priority, and each gate leases the level its share pays for.

Time is the test's, as in test_gate: each cycle runs with its own time, and the meters and the
agents' power follow the levels leased (the rigs' draw is in the grid meter).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.template import Template
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.joulegate.const import CONF_LEVEL_MODE, CONF_PRIORITY
from custom_components.joulegate.gate import JoulegateGateCoordinator
from demo.ha_config import EXAMPLE_DASHBOARD

from .common import MockAgentFactory, MockConfigEntryFactory
from .fakes.agent import FakeAgent, power_document
from .fakes.home import BATTERY, GATE_OPTIONS, GRID, SOC, set_home

# The test runs every cycle at its own time.
pytestmark = pytest.mark.usefixtures("no_gate_timer")

type EntryFor = Callable[[FakeAgent, str, dict[str, Any]], MockConfigEntry]

CYCLE = timedelta(seconds=10)
A_LEVELS = [("L1", 4.0, 8.0), ("L2", 8.0, 20.0), ("L3", 12.0, 22.0)]
B_LEVELS = [("B1", 5.0, 6.0), ("B2", 10.0, 11.0)]
WATTS = {name: w for name, w, _ in [*A_LEVELS, *B_LEVELS]}


@pytest.fixture
def options() -> dict[str, Any]:
    """Rig A: the first rig, priority 2, following the sun with its levels."""
    return GATE_OPTIONS | {CONF_PRIORITY: 2, CONF_LEVEL_MODE: "fastest"}


@pytest.fixture
async def agent_b(mock_agent_factory: MockAgentFactory) -> FakeAgent:
    """A second agent on another box, less efficient."""
    fake = await mock_agent_factory(device_id="rigb00000000002", hostname="rig-b")
    fake.power = power_document(B_LEVELS)
    return fake


@pytest.fixture
def entry_for(mock_config_entry_factory: MockConfigEntryFactory) -> EntryFor:
    """A config entry of an agent's rig with the house's gate inputs and these options."""

    def make(agent: FakeAgent, title: str, options: dict[str, Any]) -> MockConfigEntry:
        return mock_config_entry_factory(
            agent, title=title, unique_id=agent.info["device_id"], options=GATE_OPTIONS | options
        )

    return make


class House:
    """Both gates cycle at each time; the grid meter sees the rigs' draw at their levels."""

    def __init__(self, hass: HomeAssistant, rigs: list[tuple[FakeAgent, MockConfigEntry]]) -> None:
        self.hass = hass
        self.rigs = rigs

    def draw(self, agent: FakeAgent) -> float:
        if agent.power is None or not agent.gate["open"]:
            return 0.0
        return WATTS.get(str(agent.power["current"]), 0.0)

    async def run(self, start: datetime, count: int, export_w: float) -> None:
        for i in range(count):
            at = start + i * CYCLE
            total = 0.0
            for agent, entry in self.rigs:
                draw = self.draw(agent)
                total += draw
                agent.status["power"]["board_w"] = agent.status["idle"]["baseline_w"] + draw
                await entry.runtime_data.coordinator.async_refresh()
            # A full battery: battery first gives the rigs all the surplus.
            set_home(self.hass, at, grid_w=total - export_w, soc=99.0)
            for _, entry in self.rigs:
                gate: JoulegateGateCoordinator = entry.runtime_data.gate
                await gate.async_run_cycle(at)
        await self.hass.async_block_till_done()


async def start_rigs(hass: HomeAssistant, *rigs: tuple[FakeAgent, MockConfigEntry]) -> House:
    """Set up each rig's entry, its agent idle; the first agent has A_LEVELS unless it has some."""
    first = rigs[0][0]
    first.power = first.power or power_document(A_LEVELS)
    for agent, entry in rigs:
        agent.status["power"]["board_w"] = agent.status["idle"]["baseline_w"]
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return House(hass, list(rigs))


def power_levels_section() -> dict[str, Any]:
    """The example dashboard's Power levels section."""
    dashboard = yaml.safe_load(EXAMPLE_DASHBOARD.read_text(encoding="utf-8"))
    sections = dashboard["views"][0]["sections"]
    (section,) = [s for s in sections if s["cards"][0].get("heading") == "Power levels"]
    return dict(section)


def power_levels_table(hass: HomeAssistant) -> list[str]:
    """The lines of the section's cost table, rendered as Home Assistant renders it."""
    cards = power_levels_section()["cards"]
    (markdown,) = [card["content"] for card in cards if card["type"] == "markdown"]
    table = Template(markdown, hass).async_render(parse_result=False)
    return [line for line in table.splitlines() if line.strip()]


def start() -> datetime:
    return dt_util.start_of_local_day(dt_util.now() + timedelta(days=2)) + timedelta(hours=12)


@pytest.fixture
async def split_site(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    agent_b: FakeAgent,
    mock_config_entry: MockConfigEntry,
    entry_for: EntryFor,
) -> MockConfigEntry:
    """Rig A (priority 2) and rig B (priority 1) behind one grid meter, 15 minutes of 18 W
    exported without the rigs; returns rig B's entry."""
    entry_b = entry_for(agent_b, "rig-b", {CONF_PRIORITY: 1, CONF_LEVEL_MODE: "fastest"})
    house = await start_rigs(hass, (mock_agent, mock_config_entry), (agent_b, entry_b))
    await house.run(start(), 90, export_w=18.0)
    return entry_b


@pytest.mark.usefixtures("split_site")
async def test_two_rigs_on_one_grid_meter_split_the_surplus_by_priority(
    hass: HomeAssistant, mock_agent: FakeAgent, agent_b: FakeAgent
) -> None:
    agent = mock_agent
    # 18 W: A (first) takes its top 12 W, B runs on 5 W of the rest.
    assert (agent.power or {})["current"] == "L3"
    assert (agent_b.power or {})["current"] == "B1"
    assert agent.gate_puts[-1]["open"]
    assert agent_b.gate_puts[-1]["open"]
    assert hass.states.get("sensor.orin_rooftop_power_level").state == "L3"
    assert float(hass.states.get("sensor.rig_b_power_allotted").state) == 5.0
    assert hass.states.get("sensor.rig_b_allotment_reason").state == "higher_priority"


async def test_a_lone_rig_with_levels_runs_the_level_the_surplus_pays_for(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
) -> None:
    agent = mock_agent
    house = await start_rigs(hass, (agent, mock_config_entry))
    await house.run(start(), 60, export_w=10.0)
    assert (agent.power or {})["current"] == "L2"
    assert agent.gate_puts[-1]["open"]
    assert hass.states.get("sensor.orin_rooftop_allotment_reason").state == "surplus_limited"
    levels = hass.states.get("sensor.orin_rooftop_power_level").attributes["levels"]
    assert levels[1] == {
        "name": "L2",
        "w_above_idle": 8.0,
        "measured": True,
        "tokens_per_s": 20.0,
        "j_per_token": 0.4,
    }


async def test_the_gate_closes_only_below_the_lowest_level_and_leaves_it_lowest(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
) -> None:
    agent = mock_agent
    house = await start_rigs(hass, (agent, mock_config_entry))
    await house.run(start(), 60, export_w=5.0)
    assert agent.gate_puts[-1]["open"]
    assert (agent.power or {})["current"] == "L1"
    await house.run(start() + 60 * CYCLE, 3, export_w=3.0)
    assert not agent.gate_puts[-1]["open"]
    assert agent.power_puts[-1]["level"] == "L1"
    assert hass.states.get("sensor.orin_rooftop_power_level").state == "L1"


async def test_a_change_refused_for_the_dwell_time_renews_the_level_the_agent_holds(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
) -> None:
    # Unrenewed, the agent's lease on L1 would run out and the box fall back to its own settings
    # (the demo's 25W mode, the rig's Power level unknown) until the dwell time had passed.
    agent = mock_agent
    house = await start_rigs(hass, (agent, mock_config_entry))
    await house.run(start(), 60, export_w=5.0)
    assert (agent.power or {})["current"] == "L1"
    agent.in_dwell = True
    agent.power_puts.clear()
    await house.run(start() + 60 * CYCLE, 30, export_w=50.0)
    assert {put["level"] for put in agent.power_puts} == {"L1", "L3"}
    assert agent.power_puts[-1]["level"] == "L1"
    assert hass.states.get("sensor.orin_rooftop_power_level").state == "L1"


async def test_a_renewal_refused_for_the_dwell_time_is_not_a_failure(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Someone set L2 on the box (joulegate-agent power set) behind Home Assistant's back: the
    # renewal of L1 is then a change too, refused until the dwell time has passed.
    agent = mock_agent
    house = await start_rigs(hass, (agent, mock_config_entry))
    await house.run(start(), 60, export_w=5.0)
    (agent.power or {})["current"] = "L2"
    agent.in_dwell = True
    await house.run(start() + 60 * CYCLE, 12, export_w=50.0)
    assert {"L1", "L3"} <= {put["level"] for put in agent.power_puts[-6:]}
    assert "Could not" not in caplog.text
    assert hass.states.get("sensor.orin_rooftop_power_level").state == "unknown"


async def test_efficiency_mode_leases_the_most_tokens_per_joule_the_surplus_pays_for(
    hass: HomeAssistant, mock_agent: FakeAgent, entry_for: EntryFor
) -> None:
    agent = mock_agent
    entry = entry_for(agent, "orin-rooftop", {CONF_LEVEL_MODE: "efficient"})
    house = await start_rigs(hass, (agent, entry))
    # 20 W pays for L3 (12 W, 0.55 J/token), but L2 (8 W, 0.4 J/token) gives more per joule.
    await house.run(start(), 90, export_w=20.0)
    assert (agent.power or {})["current"] == "L2"


async def test_a_rig_whose_levels_are_not_chosen_keeps_the_on_off_gate(
    hass: HomeAssistant, mock_agent: FakeAgent, entry_for: EntryFor
) -> None:
    agent = mock_agent
    entry = entry_for(agent, "orin-rooftop", {})
    house = await start_rigs(hass, (agent, entry))
    await house.run(start(), 30, export_w=50.0)
    assert agent.gate_puts[-1]["open"]
    assert agent.power_puts == []
    assert hass.states.get("sensor.orin_rooftop_power_level") is None


async def test_the_options_show_what_each_level_costs_and_choose_mode_and_priority(
    hass: HomeAssistant, mock_agent: FakeAgent, entry_for: EntryFor
) -> None:
    agent = mock_agent
    entry = entry_for(agent, "orin-rooftop", {})
    await start_rigs(hass, (agent, entry))
    agent.power = power_document([("L1", 4.0, 8.0), ("L2", 8.0, 20.0), ("L3", None, None)])
    set_home(hass, None, grid_w=-300.0)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid_source": "signed", "battery_source": "signed"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "grid_power": GRID,
            "grid_sign": "import_positive",
            "battery_power": BATTERY,
            "battery_sign": "discharge_positive",
            "battery_soc": SOC,
        },
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"stale_after": 300, "inference_power": 10.0, "fail_open": False}
    )
    assert result["step_id"] == "levels"
    table = result["description_placeholders"]["levels"]
    assert "| L2 | 8.0 | 20.0 | 0.400 |" in table
    assert "| L3 | not measured | not measured | not measured |" in table
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"level_mode": "efficient", "priority": 3}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert (entry.options["level_mode"], entry.options["priority"]) == ("efficient", 3)


async def test_a_level_not_measured_yet_shows_its_power_as_assumed(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    # The controller counts L3 at the gate's inference power, never less than L2's 8 W; the
    # table must not pass that off as a measurement.
    mock_agent.power = power_document([("L1", 4.0, 8.0), ("L2", 8.0, 20.0), ("L3", None, None)])
    await start_rigs(hass, (mock_agent, mock_config_entry))
    levels = hass.states.get("sensor.orin_rooftop_power_level").attributes["levels"]
    assert [(level["name"], level["measured"]) for level in levels] == [
        ("L1", True),
        ("L2", True),
        ("L3", False),
    ]
    assert power_levels_table(hass)[-1] == "| L3 | 8.0 (assumed) | not measured | - |"


async def test_a_deadline_run_leases_the_rigs_top_level_while_the_gate_stays_closed(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
) -> None:
    """The planner's latest start assumes a run at full speed: no surplus pays for a level, but
    a batch past its latest start runs at the top one, for batch work only."""
    agent = mock_agent
    house = await start_rigs(hass, (agent, mock_config_entry))
    agent.add_batch("batch_17", deadline=start() + timedelta(hours=1))
    await house.run(start(), 3, export_w=0.0)
    assert agent.gate_puts[-1]["scope"] == "batch"
    assert agent.power_puts[-1] == {"level": "L3", "lease_s": 30, "reason": "deadline"}
    assert hass.states.get("sensor.orin_rooftop_allotment_reason").state == "deadline"


async def test_diagnostics_show_the_site_its_rigs_and_each_rigs_levels_and_share(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    mock_config_entry: MockConfigEntry,
    split_site: MockConfigEntry,
) -> None:
    gate = (await get_diagnostics_for_config_entry(hass, hass_client, split_site))["gate"]
    assert gate["site"] == {
        "allocates": True,
        "rigs": [mock_config_entry.entry_id, split_site.entry_id],
        "leader": mock_config_entry.entry_id,
    }
    assert gate["rig"] == {
        "has_levels": True,
        "mode": "fastest",
        "priority": 1,
        "levels": [
            {"name": "B1", "w_above_idle": 5.0, "tokens_per_s": 6.0},
            {"name": "B2", "w_above_idle": 10.0, "tokens_per_s": 11.0},
        ],
    }
    assert gate["state"]["level"] == "B1"
    assert gate["state"]["allotted_w"] == 5.0
    assert gate["state"]["allotment_reason"] == "higher_priority"


async def test_the_example_dashboard_shows_the_level_and_what_each_level_costs(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    house = await start_rigs(hass, (mock_agent, mock_config_entry))
    await house.run(start(), 60, export_w=10.0)
    tiles = [card["entity"] for card in power_levels_section()["cards"] if card["type"] == "tile"]
    assert [hass.states.get(entity_id).state for entity_id in tiles] == [
        "L2",
        "8.0",
        "surplus_limited",
    ]
    assert power_levels_table(hass) == [
        "| Level | W above idle | tokens/s | J/token |",
        "|:--|--:|--:|--:|",
        "| L1 | 4.0 | 8.0 | 0.5 |",
        "| L2 | 8.0 | 20.0 | 0.4 |",
        "| L3 | 12.0 | 22.0 | 0.545 |",
    ]
