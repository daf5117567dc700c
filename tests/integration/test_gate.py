"""The surplus gate in Home Assistant, against the test agent: a day of a home with a battery.

Time is the test's: each cycle is run with its own time, and every meter reports at that time,
so the controller's timing (banking, minimum off time, staleness) plays out as in a real day.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.joulegate.const import DOMAIN, EVENT_INFERENCE
from custom_components.joulegate.gate import JoulegateGateCoordinator
from custom_components.joulegate.sensor import LEVEL_SENSORS
from custom_components.joulegate.surplus import BatteryPolicy, GateMode, Settings

from .common import DEVICE_ID, GATE_ENTITY_KEYS, wait_until
from .fakes.agent import TOKEN, FakeAgent, load_json
from .fakes.home import CAPACITY_KWH, FORECAST, GATE_OPTIONS, GRID, set_home, set_state

CYCLE = timedelta(seconds=10)
ALLOWED = "binary_sensor.orin_rooftop_inference_allowed"
REASON = "sensor.orin_rooftop_gate_reason"
SURPLUS = "sensor.orin_rooftop_surplus_for_inference"
ABOVE_IDLE = "sensor.orin_rooftop_inference_energy_above_idle"
SOLAR = "sensor.orin_rooftop_inference_energy_above_idle_from_solar"
BATTERY_WH = "sensor.orin_rooftop_inference_energy_above_idle_from_battery"
GRID_WH = "sensor.orin_rooftop_inference_energy_above_idle_from_grid"
SHARE = "sensor.orin_rooftop_inference_solar_share"
CARBON = "sensor.orin_rooftop_co2e_per_inference"
BATTERY_USE = "sensor.orin_rooftop_battery_use_per_100_inferences"
PV_SHARE = "sensor.orin_rooftop_inference_share_of_pv_yield_today"
AFFORDABLE = "sensor.orin_rooftop_affordable_inferences"


@pytest.fixture
def options() -> dict[str, Any]:
    """A home with a signed grid meter, a battery and every optional input."""
    return dict(GATE_OPTIONS)


class Day:
    """Drives the gate through a day: the home's meters report every cycle."""

    def __init__(self, hass: HomeAssistant, gate: JoulegateGateCoordinator) -> None:
        """Start with no readings."""
        self.hass = hass
        self.gate = gate
        self.home: dict[str, Any] | None = None

    async def run(self, start: datetime, count: int, **home: Any) -> datetime:
        """`count` cycles from `start` with these readings; return the last cycle's time.

        The previous readings lasted until just before `start` (one cycle of them is run
        there), so the time between phases is not credited to the new readings.
        """
        if self.home is not None and self.home != home:
            await self._cycle(start - CYCLE, self.home)
        self.home = home
        at = start
        for i in range(count):
            at = start + i * CYCLE
            await self._cycle(at, home)
        await self.hass.async_block_till_done()
        return at

    async def _cycle(self, at: datetime, home: dict[str, Any]) -> None:
        set_home(self.hass, at, **home)
        await self.gate.async_run_cycle(at)


async def infer(
    hass: HomeAssistant,
    agent: FakeAgent,
    entry: MockConfigEntry,
    ended_at: datetime,
    *,
    marginal_j: float = 36.0,
    duration: float = 2.0,
) -> None:
    """An inference finishes on the agent; Home Assistant reads the ledger."""
    agent.finish_inference(
        marginal_j=marginal_j, energy_j=marginal_j + 9, ended_at=ended_at, duration=duration
    )
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()


def value(hass: HomeAssistant, entity_id: str) -> float:
    """A sensor's state as a number."""
    return float(hass.states.get(entity_id).state)


def gate_of(hass: HomeAssistant) -> tuple[str, str]:
    """The inference-allowed sensor and the reason."""
    return hass.states.get(ALLOWED).state, hass.states.get(REASON).state


async def test_a_day_of_a_home_with_a_battery(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """Night on the battery, a charging morning, a sunny noon, a cloud, a stale evening."""
    entry = gate.config_entry
    lease = {"lease_s": 30}
    run = Day(hass, gate).run

    # 02:00, the battery holds the grid at zero: closed, and not because of the policy.
    at = await run(day + timedelta(hours=2), 3, grid_w=0, battery_w=300, pv_kwh=100)
    assert gate_of(hass) == ("off", "no_surplus")
    assert mock_agent.gate_puts[-1] == {"open": False, "reason": "no_surplus", **lease}
    assert hass.states.get(SURPLUS).state == "0.0"
    await infer(hass, mock_agent, entry, at)  # 18 W for 2 s, all from the battery

    # 09:00, the battery takes all the sun: battery first keeps the gate closed.
    at = await run(day + timedelta(hours=9), 3, grid_w=0, battery_w=-2000, soc=50, pv_kwh=102)
    assert gate_of(hass) == ("off", "battery_first")
    await infer(hass, mock_agent, entry, at)  # charge power the battery did not get: solar

    # 13:00, the battery is full and the house exports: the gate opens once a minute's worth
    # (two at the measured inference power) of surplus is banked.
    start = day + timedelta(hours=13)
    at = await run(start, 1, grid_w=-800, soc=100, pv_kwh=108)
    assert gate_of(hass) == ("off", "waiting_for_surplus")
    at = await run(start + CYCLE, 20, grid_w=-800, soc=100, pv_kwh=108)
    assert gate_of(hass) == ("on", "surplus")
    assert mock_agent.gate_puts[-1] == {"open": True, "reason": "surplus", **lease}
    assert mock_agent.gate["open"] is True
    assert value(hass, SURPLUS) == pytest.approx(800)
    need = gate.data.need_w
    assert need is not None
    # The rig can use only its own inference power of the 800 W.
    assert need < 800
    assert value(hass, AFFORDABLE) == pytest.approx(need / gate.data.energy_per_inference_wh)
    await infer(hass, mock_agent, entry, at)  # exported otherwise: solar

    # The rig runs at 10 W above idle and the meter sees it: its own draw is added back.
    mock_agent.status["power"]["board_w"] = mock_agent.status["idle"]["baseline_w"] + 10
    await entry.runtime_data.coordinator.async_refresh()
    at = await run(at + CYCLE, 3, grid_w=-790, soc=100, pv_kwh=108)
    assert gate_of(hass) == ("on", "surplus")
    assert value(hass, SURPLUS) == pytest.approx(800)
    mock_agent.status["power"]["board_w"] = mock_agent.status["idle"]["baseline_w"]
    await entry.runtime_data.coordinator.async_refresh()

    # 13:30, a cloud: the grid imports, the gate closes at the first reading.
    cloud = day + timedelta(hours=13, minutes=30)
    at = await run(cloud, 1, grid_w=300, soc=99, pv_kwh=108.5)
    assert gate_of(hass) == ("off", "no_surplus")
    assert mock_agent.gate_puts[-1] == {"open": False, "reason": "no_surplus", **lease}
    await infer(hass, mock_agent, entry, at)  # all grid, 300 g/kWh
    # The sun is back a minute later, but the gate waits the minimum off time.
    at = await run(cloud + timedelta(minutes=1), 3, grid_w=-800, soc=99, pv_kwh=108.5)
    assert gate_of(hass) == ("off", "minimum_off_time")
    at = await run(cloud + timedelta(minutes=5), 20, grid_w=-800, soc=99, pv_kwh=109)
    assert gate_of(hass) == ("on", "surplus")

    # 16:00, only 3 W spare: a 9 W inference is a third solar, two thirds grid.
    at = await run(day + timedelta(hours=16), 3, grid_w=-3, soc=100, pv_kwh=112)
    assert gate_of(hass) == ("off", "no_surplus")
    await infer(hass, mock_agent, entry, at, marginal_j=18.0)

    # 21:00, the grid meter stopped reporting six minutes ago: fail-safe, and it says why.
    evening = day + timedelta(hours=21)
    set_home(hass, evening - timedelta(minutes=6), grid_w=0, battery_w=300, pv_kwh=112)
    set_state(hass, "sensor.battery_power", 0.3, evening)
    await gate.async_run_cycle(evening)
    await hass.async_block_till_done()
    assert gate_of(hass) == ("off", "input_unavailable")
    assert hass.states.get(REASON).attributes["input_problems"] == {"grid_power": "stale"}
    assert mock_agent.gate_puts[-1] == {"open": False, "reason": "input_unavailable", **lease}
    await infer(hass, mock_agent, entry, evening)  # no flows known at its time: counted as grid

    # The attribution, against a hand calculation (Wh).
    rows = 0.01  # 36 J
    solar = rows + rows + 0.005 / 3  # charging morning, noon, 3 of 9 W at 16:00
    battery = rows  # night
    grid = rows + 0.005 * 2 / 3 + rows  # cloud, 6 of 9 W at 16:00, the stale evening
    assert value(hass, SOLAR) == pytest.approx(solar)
    assert value(hass, BATTERY_WH) == pytest.approx(battery)
    assert value(hass, GRID_WH) == pytest.approx(grid)
    assert solar + battery + grid == pytest.approx(6 * rows - 0.005)
    assert value(hass, ABOVE_IDLE) == pytest.approx(solar + battery + grid)
    assert hass.states.get(GRID_WH).attributes["unattributed_wh"] == pytest.approx(rows)
    assert value(hass, SHARE) == pytest.approx(100 * solar / (solar + battery + grid))
    assert hass.states.get(SHARE).attributes["inferences"] == 6
    # Grams per inference over the inferences whose grid carbon is known (not the stale one).
    grams = (rows / 1000 * 300 + 0.005 * 2 / 3 / 1000 * 300) / 5
    assert value(hass, CARBON) == pytest.approx(grams)
    assert value(hass, BATTERY_USE) == pytest.approx(
        battery / 6 * 100 / (CAPACITY_KWH * 1000) * 100
    )
    # Today's PV yield: 100 kWh at night to 112 kWh at four.
    assert value(hass, PV_SHARE) == pytest.approx(100 * (solar + battery + grid) / 12_000)

    # Totals survive a restart and never drop.
    before = {entity: value(hass, entity) for entity in (ABOVE_IDLE, SOLAR, BATTERY_WH, GRID_WH)}
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert {entity: value(hass, entity) for entity in before} == pytest.approx(before)


async def test_settings_entities_change_the_gate_and_are_kept(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    """Mode, policy and numbers act at once and survive a reload."""
    noon = day + timedelta(hours=12)
    set_home(hass, noon, grid_w=0, battery_w=-1500, soc=50)

    async def select(entity_id: str, option: str) -> None:
        await hass.services.async_call(
            "select", "select_option", {"entity_id": entity_id, "option": option}, blocking=True
        )

    async def number(entity_id: str, value: float) -> None:
        await hass.services.async_call(
            "number", "set_value", {"entity_id": entity_id, "value": value}, blocking=True
        )

    await select("select.orin_rooftop_gate_mode", "never")
    assert gate_of(hass) == ("off", "forced_off")
    assert mock_agent.gate_puts[-1]["reason"] == "forced_off"
    await select("select.orin_rooftop_gate_mode", "always")
    assert gate_of(hass) == ("on", "forced_on")
    assert mock_agent.gate_puts[-1] == {"open": True, "lease_s": 30, "reason": "forced_on"}

    await select("select.orin_rooftop_gate_mode", "solar")
    await select("select.orin_rooftop_battery_policy", "inference_first")
    await number("number.orin_rooftop_battery_reserve", 55)
    await number("number.orin_rooftop_surplus_margin", 25)
    await number("number.orin_rooftop_thermal_limit", 70)
    await number("number.orin_rooftop_minimum_off_time", 60)
    settings = gate.settings
    assert (settings.reserve_soc, settings.margin_w, settings.thermal_limit_c) == (55, 25, 70)
    assert settings.min_off_s == 60
    # Below the reserve, inference first leaves the battery's charge alone.
    await gate.async_run_cycle(noon)
    await hass.async_block_till_done()
    assert gate_of(hass)[1] == "battery_reserve"

    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get("select.orin_rooftop_battery_policy").state == "inference_first"
    assert hass.states.get("select.orin_rooftop_gate_mode").state == "solar"
    assert hass.states.get("number.orin_rooftop_battery_reserve").state == "55.0"
    assert hass.states.get("number.orin_rooftop_surplus_margin").state == "25.0"
    assert hass.states.get("number.orin_rooftop_thermal_limit").state == "70.0"
    assert hass.states.get("number.orin_rooftop_minimum_off_time").state == "60.0"


@pytest.mark.parametrize("options", [GATE_OPTIONS | {"fail_open": True}])
async def test_a_user_may_choose_to_fail_open(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """Nothing reported at all: open, and it says why."""
    await gate.async_run_cycle(day)
    await hass.async_block_till_done()
    assert gate_of(hass) == ("on", "input_unavailable")
    assert mock_agent.gate_puts[-1]["open"] is True
    assert set(hass.states.get(REASON).attributes["input_problems"]) == set(gate.config.entities)


@pytest.mark.parametrize(
    "case",
    [
        ({"thermal": {"zones": {"gpu-thermal": 81.0}, "max_c": 81.0}}, "too_hot"),
        ({"throttling": {"active": True, "reasons": ["thermal"]}}, "throttling"),
    ],
)
async def test_a_hot_or_throttling_rig_closes_even_when_allowed(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    gate: JoulegateGateCoordinator,
    day: datetime,
    case: tuple[dict[str, Any], str],
) -> None:
    status, reason = case
    await gate.async_set_mode(GateMode.ALWAYS)
    mock_agent.status.update(status)
    await gate.agent.async_refresh()
    set_home(hass, day, grid_w=-500)
    await gate.async_run_cycle(day)
    await hass.async_block_till_done()
    assert gate_of(hass) == ("off", reason)


@pytest.mark.parametrize(
    "options",
    [
        {key: value for key, value in GATE_OPTIONS.items() if key != "pv_forecast"}
        | {"battery_capacity": None}
    ],
)
async def test_balanced_is_not_offered_without_a_forecast(
    hass: HomeAssistant, gate: JoulegateGateCoordinator, hass_storage: dict[str, Any]
) -> None:
    """A policy stored earlier that the inputs no longer allow falls back to battery first."""
    assert hass.states.get("select.orin_rooftop_battery_policy").attributes["options"] == [
        "battery_first",
        "inference_first",
    ]
    assert (
        "sensor.orin_rooftop_battery_use_per_100_inferences" not in hass.states.async_entity_ids()
    )


async def test_balanced_without_a_forecast_reading_fails_safe(
    hass: HomeAssistant, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    await gate.async_set_policy(BatteryPolicy.BALANCED)
    set_home(hass, day, grid_w=-500, battery_w=0, soc=60)
    set_state(hass, FORECAST, "unavailable", day)
    await gate.async_run_cycle(day)
    await hass.async_block_till_done()
    assert gate_of(hass) == ("off", "input_unavailable")
    assert hass.states.get(REASON).attributes["input_problems"] == {"pv_forecast": "unavailable"}


async def test_stored_settings_that_no_longer_fit_are_replaced(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    no_gate_timer: None,
) -> None:
    hass_storage[f"joulegate.{mock_config_entry.entry_id}.gate"] = {
        "version": 1,
        "key": f"joulegate.{mock_config_entry.entry_id}.gate",
        "data": {
            "mode": "sometimes",
            "policy": "whatever",
            "reserve_soc": "high",
            "override": {"open": True, "until": "never"},
        },
    }
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(mock_config_entry, options=GATE_OPTIONS)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    gate = mock_config_entry.runtime_data.gate
    assert gate is not None
    assert gate.mode is GateMode.SOLAR
    assert gate.settings.policy is BatteryPolicy.BATTERY_FIRST
    assert gate.settings.reserve_soc == Settings().reserve_soc
    assert gate.override is None


async def test_a_sensor_blip_keeps_the_gate_open_and_a_long_outage_closes_it(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """One unavailable grid reading is ridden through on the last good one; past the hold time
    the gate closes and says why."""
    at = await Day(hass, gate).run(day + timedelta(hours=13), 30, grid_w=-800, soc=100)
    assert gate_of(hass) == ("on", "surplus")
    blip = at + CYCLE
    set_home(hass, blip, grid_w=-800, soc=100)
    set_state(hass, GRID, "unavailable", blip)
    await gate.async_run_cycle(blip)
    await hass.async_block_till_done()
    assert gate_of(hass) == ("on", "surplus")
    assert mock_agent.gate_puts[-1]["open"] is True
    outage = at + timedelta(seconds=gate.settings.hold_s + 1)
    set_home(hass, outage, grid_w=-800, soc=100)
    set_state(hass, GRID, "unavailable", outage)
    await gate.async_run_cycle(outage)
    await hass.async_block_till_done()
    assert gate_of(hass) == ("off", "input_unavailable")
    assert mock_agent.gate_puts[-1]["open"] is False


async def test_the_agent_unreachable(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    gate: JoulegateGateCoordinator,
    day: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The rig's power is unknown: fail-safe; the lease is not taken; one log line each way."""
    mock_agent.fail_status = 500
    await gate.agent.async_refresh()
    for i in range(2):
        set_home(hass, day + i * CYCLE, grid_w=-500)
        await gate.async_run_cycle(day + i * CYCLE)
    await hass.async_block_till_done()
    assert gate_of(hass) == ("off", "input_unavailable")
    assert hass.states.get(ALLOWED).attributes["agent_updated"] is False
    assert caplog.text.count("Could not set the gate") == 1
    # Settings stay usable while the agent is away.
    assert hass.states.get("select.orin_rooftop_gate_mode").state == "solar"

    mock_agent.fail_status = None
    await gate.agent.async_refresh()
    set_home(hass, day + 2 * CYCLE, grid_w=-500)
    await gate.async_run_cycle(day + 2 * CYCLE)
    await hass.async_block_till_done()
    assert hass.states.get(ALLOWED).attributes["agent_updated"] is True
    assert "is set again" in caplog.text


async def test_a_bad_input_raises_a_repair_issue_once_it_lasts(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    """The gate fails safe at once; the issue comes after the stale time and goes when fixed."""
    issue_id = f"{init_integration.entry_id}_grid_power"

    async def cycle(at: datetime, grid: Any, **attributes: Any) -> None:
        set_home(hass, at, grid_w=0)
        set_state(hass, GRID, grid, at, **attributes)
        await gate.async_run_cycle(at)
        await hass.async_block_till_done()

    await cycle(day, 5, unit_of_measurement="A")
    assert gate_of(hass) == ("off", "input_unavailable")
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await cycle(day + timedelta(minutes=4), 5, unit_of_measurement="A")
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await cycle(day + timedelta(minutes=5), 5, unit_of_measurement="A")
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "input_bad_unit"
    assert issue.translation_placeholders == {
        "agent": "orin-rooftop",
        "entity_id": GRID,
        "detail": "A",
    }

    # Now it is not a number: a new problem, a new wait.
    await cycle(day + timedelta(minutes=6), "n/a")
    assert issue_registry.async_get_issue(DOMAIN, issue_id).translation_key == "input_bad_unit"
    await cycle(day + timedelta(minutes=12), "n/a")
    assert issue_registry.async_get_issue(DOMAIN, issue_id).translation_key == "input_not_numeric"

    # Fixed: the issue goes.
    await cycle(day + timedelta(minutes=13), -200)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    # An entity that goes away; unloading the entry takes its issues along.
    hass.states.async_remove(GRID)
    for minutes in (14, 20):
        set_home(hass, day + timedelta(minutes=minutes), grid_w=0)
        hass.states.async_remove(GRID)
        await gate.async_run_cycle(day + timedelta(minutes=minutes))
    assert issue_registry.async_get_issue(DOMAIN, issue_id).translation_key == "input_missing"
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_unloading_stops_the_leases_without_closing_the_gate(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    """Home Assistant going away sends nothing: the agent's lease runs out by itself."""
    await gate.async_set_mode(GateMode.ALWAYS)
    puts = len(mock_agent.gate_puts)
    assert mock_agent.gate_puts[-1]["open"] is True
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert len(mock_agent.gate_puts) == puts
    assert mock_agent.gate["open"] is True


async def test_the_timer_runs_a_cycle_every_ten_seconds(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """Without the tests' hand on the clock: the first cycle at setup, then the timer."""
    assert init_integration.runtime_data.gate is not None
    puts = len(mock_agent.gate_puts)
    assert puts >= 1
    set_home(hass, None, grid_w=-500)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    # The timer runs its cycle as a background task.
    await wait_until(lambda: len(mock_agent.gate_puts) > puts)
    assert mock_agent.gate_puts[-1]["lease_s"] == 30


async def test_a_refused_request_counts_nothing(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    mock_agent.finish_inference(outcome="refused", energy_j=0, marginal_j=0, ended_at=day)
    await init_integration.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    assert gate.summary.inferences == 0
    assert value(hass, SOLAR) == 0


async def test_a_hand_fired_inference_event_counts_nothing(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    """The event is for automations; only rows read from the agent's ledger count."""
    row = load_json("inferences.json")["items"][-1] | {
        "id": 999,
        "marginal_j": 36.0,
        "ended_at": day.isoformat(),
    }
    hass.bus.async_fire(EVENT_INFERENCE, {"config_entry_id": init_integration.entry_id, **row})
    await hass.async_block_till_done()
    assert gate.summary.inferences == 0


async def test_diagnostics_include_the_gate(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    set_home(hass, day, grid_w=-500, battery_w=0, soc=100)
    await gate.async_run_cycle(day)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert TOKEN not in str(diagnostics)
    gate_part = diagnostics["gate"]
    assert gate_part["config"]["entities"]["grid_power"] == GRID
    assert gate_part["mode"] == "solar"
    assert gate_part["settings"]["policy"] == "battery_first"
    assert gate_part["state"]["reason"] == gate.data.reason
    assert gate_part["state"]["surplus_w"] == 500
    assert gate_part["flows"]["grid_w"] == -500
    assert gate_part["flow_samples"] >= 1
    assert gate_part["override"] is None


@pytest.mark.usefixtures("no_gate_timer")
async def test_requests_queued_together_do_not_divide_the_rigs_measured_need(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry, day: datetime
) -> None:
    # Five requests sent at once to a one-slot server: their windows overlap while they wait,
    # and 105 J above idle over the 50 s the rig ran is 2.1 W, not 105 J over the 150 s summed.
    mock_agent.rows = []
    for n in range(5):
        seconds = 10.0 * (n + 1)
        mock_agent.finish_inference(
            marginal_j=21.0, ended_at=day + timedelta(seconds=seconds), duration=seconds
        )
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    gate = mock_config_entry.runtime_data.gate
    set_home(hass, day, grid_w=-500, battery_w=0, soc=100)
    await gate.async_run_cycle(day + timedelta(minutes=1))
    assert gate.data.need_w == pytest.approx(2.1)


async def test_gate_entities(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    entity_registry: er.EntityRegistry,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    """Every gate entity of an agent without power levels (those have three more,
    test_site_rigs), its registry entry and its state, after a cycle on export."""
    set_home(hass, day, grid_w=-500, battery_w=0, soc=100)
    await gate.async_run_cycle(day)
    await hass.async_block_till_done()
    prefix = f"{DEVICE_ID}_"
    entries = [
        entry
        for entry in er.async_entries_for_config_entry(entity_registry, gate.config_entry.entry_id)
        if entry.unique_id.removeprefix(prefix) in GATE_ENTITY_KEYS
    ]
    levels = {description.key for description in LEVEL_SENSORS}
    assert {entry.unique_id.removeprefix(prefix) for entry in entries} == GATE_ENTITY_KEYS - levels
    for entry in sorted(entries, key=lambda e: e.entity_id):
        assert entry == snapshot(name=f"{entry.entity_id}-entry")
        assert hass.states.get(entry.entity_id) == snapshot(name=f"{entry.entity_id}-state")


@pytest.mark.parametrize(
    "options",
    [
        {
            "grid_source": "signed",
            "grid_power": GRID,
            "grid_sign": "import_positive",
            "stale_after": 300,
            "fail_open": False,
            "inference_power": 10.0,
        }
    ],
)
async def test_a_home_without_a_battery(
    hass: HomeAssistant, mock_agent: FakeAgent, gate: JoulegateGateCoordinator, day: datetime
) -> None:
    """No battery entities; the export opens the gate, import closes it."""
    ids = hass.states.async_entity_ids()
    for absent in (
        "select.orin_rooftop_battery_policy",
        "number.orin_rooftop_battery_reserve",
        BATTERY_WH,
        BATTERY_USE,
        CARBON,
        PV_SHARE,
    ):
        assert absent not in ids
    run = Day(hass, gate).run
    await run(day + timedelta(hours=12), 20, grid_w=-300)
    assert gate_of(hass) == ("on", "surplus")
    await run(day + timedelta(hours=18), 1, grid_w=200)
    assert gate_of(hass) == ("off", "no_surplus")


async def test_setup_retry_keeps_what_was_counted(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """The agent's status fails on the first refresh: setup retries, the saved totals stay."""
    key = f"joulegate.{mock_config_entry.entry_id}.ledger"
    saved = {"device_id": DEVICE_ID, "ledger_id": mock_agent.ledger_id, "cursor": 17}
    saved["accounting"] = {"solar_wh": 1.5, "battery_wh": 0.5, "grid_wh": 0.25}
    hass_storage[key] = {"version": 2, "minor_version": 1, "key": key, "data": saved}
    mock_agent.status = {"unexpected": True}
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert hass_storage[key]["data"]["accounting"]["solar_wh"] == 1.5
    assert hass_storage[key]["data"]["cursor"] == 17


async def test_a_stored_policy_the_inputs_no_longer_allow(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_config_entry: MockConfigEntry,
    no_gate_timer: None,
) -> None:
    """Balanced was chosen, then the forecast removed: battery first."""
    key = f"joulegate.{mock_config_entry.entry_id}.gate"
    hass_storage[key] = {"version": 1, "key": key, "data": {"policy": "balanced"}}
    mock_config_entry.add_to_hass(hass)
    options = {k: v for k, v in GATE_OPTIONS.items() if k != "pv_forecast"}
    hass.config_entries.async_update_entry(mock_config_entry, options=options)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get("select.orin_rooftop_battery_policy").state == "battery_first"


async def test_the_pv_meter_is_saved_with_the_next_row_and_at_unload(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_agent: FakeAgent,
    gate: JoulegateGateCoordinator,
    day: datetime,
) -> None:
    """Each cycle's PV reading is saved with the next row, not on a timer that each new reading
    postpones; a crash before that re-counts the meter's rise from the saved reading, once."""
    key = f"joulegate.{gate.config_entry.entry_id}.ledger"
    run = Day(hass, gate).run
    at = await run(day + timedelta(hours=10), 3, grid_w=-100, pv_kwh=50.0)
    await infer(hass, mock_agent, gate.config_entry, at)
    assert hass_storage[key]["data"]["accounting"]["pv_last_wh"] == pytest.approx(50_000)
    await run(at + CYCLE, 3, grid_w=-100, pv_kwh=50.5)
    assert await hass.config_entries.async_unload(gate.config_entry.entry_id)
    assert hass_storage[key]["data"]["accounting"]["pv_last_wh"] == pytest.approx(50_500)
