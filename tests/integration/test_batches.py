"""The batch queue in Home Assistant, against the fake agent: its sensors, batch rows in the
accounting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.joulegate.const import CONF_PV_FORECAST_TOMORROW, EVENT_BATCH_FINISHED
from custom_components.joulegate.gate import JoulegateGateCoordinator
from custom_components.joulegate.surplus import GateMode
from demo.ha_config import EXAMPLE_DASHBOARD, dashboard_entities

from .common import wait_until
from .fakes.agent import FakeAgent
from .fakes.home import FORECAST_TOMORROW, GATE_OPTIONS, set_state
from .test_gate import ALLOWED, CARBON, GRID_WH, SHARE, Day, infer, value

WAITING = "sensor.orin_rooftop_batch_requests_waiting"
IN_PROGRESS = "sensor.orin_rooftop_batches_in_progress"
NEEDED = "sensor.orin_rooftop_batch_energy_still_needed"
NEXT_DEADLINE = "sensor.orin_rooftop_next_batch_deadline"
LATEST_START = "sensor.orin_rooftop_batch_latest_start"
BATCH_SENSORS = (WAITING, IN_PROGRESS, NEEDED, NEXT_DEADLINE, LATEST_START)


@pytest.fixture
def mock_agent(mock_agent: FakeAgent) -> FakeAgent:
    """An agent with a batch queue, empty."""
    mock_agent.count_batches()
    return mock_agent


@pytest.fixture
def options() -> dict[str, Any]:
    """A home with a signed grid meter, a battery and every optional input."""
    return dict(GATE_OPTIONS)


async def test_a_batch_run_on_the_grid_leaves_the_per_inference_figures_alone(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """A chat at noon on sunshine, then a batch's request at night on the grid: the grid total
    grows by the batch's energy, the rolling figures per inference stay the chat's."""
    entry = gate.config_entry
    run = Day(hass, gate).run
    at = await run(day + timedelta(hours=13), 3, grid_w=-800, soc=100, pv_kwh=108)
    await infer(hass, mock_agent, entry, at)
    await run(at + timedelta(seconds=10), 1, grid_w=-800, soc=100, pv_kwh=108)
    share, carbon = value(hass, SHARE), value(hass, CARBON)
    per_inference = gate.data.energy_per_inference_wh
    assert share == 100

    at = await run(day + timedelta(hours=23), 3, grid_w=300, battery_w=0, soc=20, pv_kwh=110)
    mock_agent.finish_inference(
        marginal_j=900.0, energy_j=1000.0, ended_at=at, duration=20.0, batch_id="batch_17"
    )
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    assert value(hass, GRID_WH) == pytest.approx(900.0 / 3600)
    assert value(hass, SHARE) == share
    assert value(hass, CARBON) == carbon
    await run(at + timedelta(seconds=10), 1, grid_w=300, battery_w=0, soc=20, pv_kwh=110)
    assert gate.data.energy_per_inference_wh == per_inference


async def test_the_batch_queue_sensors_show_what_the_agent_has_left(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """Two batches waiting: their requests, the energy they need, the first deadline and the
    earliest latest start."""
    soon = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    mock_agent.add_batch("batch_17", deadline=soon, requests=300, request_s=30.0, request_wh=0.08)
    mock_agent.add_batch("batch_18", deadline=soon + timedelta(days=6), requests=2100)
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert value(hass, WAITING) == 2400
    assert value(hass, IN_PROGRESS) == 2
    assert value(hass, NEEDED) == pytest.approx(2400 * 0.08)
    assert hass.states.get(NEEDED).attributes["unit_of_measurement"] == "Wh"
    assert hass.states.get(NEXT_DEADLINE).state == soon.isoformat()
    latest = soon - timedelta(seconds=300 * 30.0)
    assert hass.states.get(LATEST_START).state == latest.isoformat()
    attributes = hass.states.get(WAITING).attributes
    assert (attributes["requests_running"], attributes["late"]) == (0, 0)

    mock_agent.finish_batch("batch_17")
    await mock_config_entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    assert value(hass, WAITING) == 2100
    assert value(hass, IN_PROGRESS) == 1


async def test_the_energy_still_needed_is_unknown_while_a_batch_has_nothing_to_go_by(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """A batch of a model that has not run yet: requests waiting, no estimate of their energy."""
    soon = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    mock_agent.add_batch("batch_17", deadline=soon, requests=12, request_s=None)
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert value(hass, WAITING) == 12
    assert hass.states.get(NEEDED).state == "unknown"


async def test_an_agent_without_a_batch_queue_gets_no_batch_sensors(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    del mock_agent.status["batches"]
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert [hass.states.get(entity_id) for entity_id in BATCH_SENSORS] == [None] * 5


DEADLINE_LEASE = {"open": True, "lease_s": 30, "reason": "deadline", "scope": "batch"}
PLAN = "sensor.orin_rooftop_batch_plan"


async def night_with_a_batch(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    gate: JoulegateGateCoordinator,
    day: datetime,
    due_in: timedelta = timedelta(hours=1, minutes=30),
    **batch: Any,
) -> datetime:
    """22:00, the house on the grid and no PV to come; a batch of 2.5 h (300 requests of 30 s)
    due `due_in` from then."""
    start = day + timedelta(hours=22)
    mock_agent.add_batch("batch_17", deadline=start + due_in, **batch)
    await gate.agent.async_refresh()
    return await Day(hass, gate).run(start, 2, grid_w=300, soc=20, forecast_kwh=0)


async def test_a_deadline_the_sun_cannot_meet_leases_the_gate_for_batch_work_only(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """Past its latest start, with no sun to come: batch work runs (reason `deadline`), and
    interactive traffic still waits for the sun."""
    await night_with_a_batch(hass, mock_agent, gate, day)
    assert mock_agent.gate_puts[-1] == DEADLINE_LEASE
    assert mock_agent.gate["open"] is False
    assert mock_agent.gate["batch_open"] is True
    assert hass.states.get(ALLOWED).state == "off"
    assert hass.states.get(PLAN).state == "deadline"
    attributes = hass.states.get(PLAN).attributes
    assert datetime.fromisoformat(attributes["deadline"]) == day + timedelta(hours=23, minutes=30)
    assert attributes["late"] is True


async def test_a_deadline_far_away_waits_for_its_latest_start(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """Waiting costs no deadline and no sunshine: nothing runs before the latest start."""
    await night_with_a_batch(hass, mock_agent, gate, day, due_in=timedelta(hours=20))
    assert mock_agent.gate_puts[-1] == {"open": False, "lease_s": 30, "reason": "no_surplus"}
    assert hass.states.get(PLAN).state == "waiting"
    latest = day + timedelta(hours=42) - timedelta(seconds=300 * 30 * 1.1 + 30 + 10)
    assert datetime.fromisoformat(hass.states.get(PLAN).attributes["latest_start"]) == latest


async def test_the_thermal_limit_wins_over_a_deadline(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    mock_agent.status["thermal"] = {"zones": {"gpu-thermal": 81.0}, "max_c": 81.0}
    await night_with_a_batch(hass, mock_agent, gate, day)
    assert mock_agent.gate_puts[-1] == {"open": False, "lease_s": 30, "reason": "too_hot"}
    assert hass.states.get(PLAN).state == "too_hot"


async def test_a_batch_that_lets_itself_expire_gets_no_deadline_run(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    await night_with_a_batch(
        hass, mock_agent, gate, day, metadata={"joulegate_when_sun_fails": "expire"}
    )
    assert mock_agent.gate_puts[-1]["open"] is False
    assert hass.states.get(PLAN).state == "expire"


@pytest.mark.parametrize("options", [GATE_OPTIONS | {"batch_when_sun_fails": "expire"}])
async def test_the_options_default_is_for_batches_that_do_not_choose(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    await night_with_a_batch(hass, mock_agent, gate, day)
    assert mock_agent.gate_puts[-1]["open"] is False
    mock_agent.batches[0]["metadata"] = {"joulegate_when_sun_fails": "grid"}
    mock_agent.add_batch("batch_18", deadline=day + timedelta(days=5))  # the list is read again
    await gate.agent.async_refresh()
    await Day(hass, gate).run(day + timedelta(hours=22, minutes=2), 1, grid_w=300, soc=20)
    assert mock_agent.gate_puts[-1] == DEADLINE_LEASE


async def test_a_gate_forced_off_runs_no_deadline_work(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    await gate.async_set_mode(GateMode.NEVER)
    await night_with_a_batch(hass, mock_agent, gate, day)
    assert mock_agent.gate_puts[-1] == {"open": False, "lease_s": 30, "reason": "forced_off"}


BATCH_SHARE = "sensor.orin_rooftop_batch_solar_share"


async def test_a_finished_batch_is_announced_with_its_energy_and_solar_share(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """Three requests on the noon sun, one at night on the grid: "batch 17: 75 % solar", in
    the event the agent's `batch` event brings about and in the batch solar share sensor."""
    events = async_capture_events(hass, EVENT_BATCH_FINISHED)
    entry = gate.config_entry
    mock_agent.add_batch("batch_17", deadline=day + timedelta(days=1), requests=4)
    run = Day(hass, gate).run
    at = await run(day + timedelta(hours=13), 3, grid_w=-800, soc=100, pv_kwh=108)
    for n in range(3):
        mock_agent.finish_inference(
            marginal_j=36.0,
            energy_j=45.0,
            ended_at=at - timedelta(seconds=2 * n),
            duration=2.0,
            batch_id="batch_17",
        )
    await entry.runtime_data.coordinator.async_refresh()
    at = await run(day + timedelta(hours=23), 3, grid_w=300, battery_w=0, soc=20, pv_kwh=110)
    mock_agent.finish_inference(
        marginal_j=36.0, energy_j=45.0, ended_at=at, duration=2.0, batch_id="batch_17"
    )
    mock_agent.finish_batch("batch_17")
    await wait_until(lambda: events)
    await hass.async_block_till_done()
    (event,) = events
    assert event.data["batch_id"] == "batch_17"
    assert event.data["status"] == "completed"
    assert event.data["requests_completed"] == 4
    assert event.data["energy_wh"] == pytest.approx(4 * 45.0 / 3600)
    assert event.data["energy_above_idle_wh"] == pytest.approx(4 * 36.0 / 3600)
    assert event.data["solar_share_pct"] == pytest.approx(75.0)
    assert event.data["grid_wh"] == pytest.approx(36.0 / 3600)
    assert value(hass, BATCH_SHARE) == pytest.approx(75.0)
    assert hass.states.get(BATCH_SHARE).attributes["batch_id"] == "batch_17"


async def test_the_example_dashboard_s_batch_cards_show_entities_the_integration_makes(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator
) -> None:
    """The batch queue's cards (progress, plan, solar share) name entities that exist."""
    named = dashboard_entities(EXAMPLE_DASHBOARD.read_text(encoding="utf-8"))
    batch_cards = {entity_id for entity_id in named if "batch" in entity_id}
    assert {*BATCH_SENSORS, PLAN, BATCH_SHARE} <= batch_cards
    assert [e for e in sorted(batch_cards) if hass.states.get(e) is None] == []


@pytest.mark.parametrize("case", [(60, "deadline"), (10, "battery_low")])
async def test_a_batch_that_may_use_the_battery_runs_for_its_deadline_above_the_reserve(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    gate: JoulegateGateCoordinator,
    day: datetime,
    case: tuple[int, str],
) -> None:
    soc, plan = case
    start = day + timedelta(hours=22)
    mock_agent.add_batch(
        "batch_17",
        deadline=start + timedelta(hours=1),
        metadata={"joulegate_when_sun_fails": "battery"},
    )
    await gate.agent.async_refresh()
    await Day(hass, gate).run(start, 2, grid_w=0, battery_w=300, soc=soc, forecast_kwh=0)
    assert hass.states.get(PLAN).state == plan
    assert (mock_agent.gate_puts[-1] == DEADLINE_LEASE) is (plan == "deadline")


TOMORROW_OPTIONS = GATE_OPTIONS | {CONF_PV_FORECAST_TOMORROW: FORECAST_TOMORROW}


@pytest.mark.parametrize("options", [TOMORROW_OPTIONS])
async def test_tomorrow_s_forecast_keeps_a_batch_due_tomorrow_waiting_for_the_sun(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """Nothing more today, a sunny day tomorrow before the deadline (18:00): the surplus gate
    will run it, so the plan is `on_sun` (without tomorrow's forecast it is `waiting`)."""
    set_state(hass, FORECAST_TOMORROW, 40.0, None)
    await night_with_a_batch(hass, mock_agent, gate, day, due_in=timedelta(hours=20))
    assert hass.states.get(PLAN).state == "on_sun"


@pytest.mark.parametrize("options", [TOMORROW_OPTIONS])
async def test_tomorrow_s_figure_brings_no_sun_before_sunrise(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """Due tomorrow at 05:00, before the sun rises at the home (the tests' San Diego, any time of
    year): tomorrow's 40 kWh come after the deadline, so the plan waits for its latest start
    (the battery full: none of it would go there)."""
    set_state(hass, FORECAST_TOMORROW, 40.0, None)
    start = day + timedelta(hours=22)
    mock_agent.add_batch("batch_17", deadline=start + timedelta(hours=7))
    await gate.agent.async_refresh()
    await Day(hass, gate).run(start, 2, grid_w=300, soc=98, forecast_kwh=0)
    assert hass.states.get(PLAN).state == "waiting"


@pytest.mark.parametrize("options", [TOMORROW_OPTIONS])
async def test_the_forecast_entity_s_hourly_detail_says_when_tomorrow_s_sun_comes(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """Due tomorrow at 14:00: tomorrow's 40 kWh spread over its daylight would cover it, but the
    entity's detail (Open-Meteo's `wh_period`) puts the sun from 15:00 to 19:00."""
    tomorrow = day + timedelta(days=1)
    afternoon = {(tomorrow + timedelta(hours=h)).isoformat(): 10_000 for h in range(15, 19)}
    set_state(hass, FORECAST_TOMORROW, 40.0, None, wh_period=afternoon)
    await night_with_a_batch(hass, mock_agent, gate, day, due_in=timedelta(hours=16))
    assert hass.states.get(PLAN).state == "waiting"
    set_state(hass, FORECAST_TOMORROW, 40.0, None)
    await Day(hass, gate).run(day + timedelta(hours=22, minutes=1), 1, grid_w=300, soc=20)
    assert hass.states.get(PLAN).state == "on_sun"


@pytest.mark.parametrize("options", [TOMORROW_OPTIONS])
async def test_diagnostics_show_the_planner_s_forecast_inputs(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    """Tomorrow's figure, the forecast's detail as periods, and the house's load (none here)."""
    noon = day + timedelta(days=1, hours=12)
    set_state(hass, FORECAST_TOMORROW, 40.0, None, wh_period={noon.isoformat(): 4200})
    await Day(hass, gate).run(day + timedelta(hours=22), 1, grid_w=300, soc=20)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, gate.config_entry)
    flows = diagnostics["gate"]["flows"]
    assert flows["forecast_tomorrow_wh"] == 40_000.0
    assert flows["forecast_detail"] == [
        {
            "start": noon.isoformat(),
            "end": (noon + timedelta(hours=1)).isoformat(),
            "wh": 4200.0,
        }
    ]
    assert diagnostics["gate"]["house_load"] is None
