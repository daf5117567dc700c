"""The ledger cursor and the energy totals across restarts, crashes, migrations and new ledgers.

A crash is played out on the saved files: `hass_storage` holds what is on disk, so a copy of it
taken at the moment of the crash, put back before the next start, is what a killed Home
Assistant finds (a clean unload in between would flush what the crash lost).
"""

from __future__ import annotations

import copy
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from homeassistant.util.file import WriteError
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.joulegate.const import DOMAIN, EVENT_INFERENCE
from custom_components.joulegate.gate import JoulegateGateCoordinator

from .common import DEVICE_ID, ENTRY_ID, saved_file
from .fakes.agent import FakeAgent, load_json
from .fakes.home import GATE_OPTIONS, set_home

LEDGER_KEY = f"{DOMAIN}.{ENTRY_ID}.ledger"
ACCOUNTING_KEY = f"{DOMAIN}.{ENTRY_ID}.accounting"
ABOVE_IDLE = "sensor.orin_rooftop_inference_energy_above_idle"
SOLAR = "sensor.orin_rooftop_inference_energy_above_idle_from_solar"
BATTERY = "sensor.orin_rooftop_inference_energy_above_idle_from_battery"
GRID = "sensor.orin_rooftop_inference_energy_above_idle_from_grid"
TOTALS = (ABOVE_IDLE, SOLAR, BATTERY, GRID)
PER_INFERENCE = "sensor.orin_rooftop_energy_per_inference"
PER_TOKEN = "sensor.orin_rooftop_energy_per_token"
SPEED = "sensor.orin_rooftop_tokens_per_second"
LAST_ENERGY = "sensor.orin_rooftop_last_inference_energy"

ROW_J = 36.0  # each row's energy above idle: 0.01 Wh


@pytest.fixture
def options() -> dict[str, Any]:
    """A home with a battery: the gate counts every row."""
    return dict(GATE_OPTIONS)


def value(hass: HomeAssistant, entity_id: str) -> float:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return float(state.state)


def totals(hass: HomeAssistant) -> dict[str, float]:
    return {entity_id: value(hass, entity_id) for entity_id in TOTALS}


async def start(hass: HomeAssistant, entry: MockConfigEntry) -> JoulegateGateCoordinator:
    """Start (or start again) the entry, the home exporting."""
    set_home(hass, None, grid_w=-500)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    gate = entry.runtime_data.gate
    assert gate is not None
    await gate.async_run_cycle()
    await hass.async_block_till_done()
    return gate


async def start_first(hass: HomeAssistant, entry: MockConfigEntry) -> JoulegateGateCoordinator:
    """The entry is added and started for the first time."""
    entry.add_to_hass(hass)
    return await start(hass, entry)


async def infer(hass: HomeAssistant, agent: FakeAgent, entry: MockConfigEntry, n: int) -> None:
    """`n` inferences finish now on the agent; Home Assistant reads them."""
    for _ in range(n):
        agent.finish_inference(marginal_j=ROW_J, energy_j=ROW_J + 9, ended_at=dt_util.utcnow())
    await read_agent(hass, entry)


async def read_agent(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Home Assistant reads what the agent has now."""
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()


async def crash_and_restart(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    on_disk: dict[str, Any],
) -> JoulegateGateCoordinator:
    """Home Assistant dies with `on_disk` saved, and starts again."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    hass_storage.clear()
    hass_storage.update(copy.deepcopy(on_disk))
    return await start(hass, entry)


@pytest.mark.usefixtures("no_gate_timer")
@pytest.mark.parametrize("crash", ["before the write", "after the write"])
async def test_a_crash_loses_nothing_and_counts_nothing_twice(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    crash: str,
) -> None:
    """Killed just before or just after the rows' write: after the restart each row counts
    once, and no total is ever lower than it was shown before the crash."""
    await start_first(hass, mock_config_entry)
    await infer(hass, mock_agent, mock_config_entry, 2)
    # The sensors change only once the write is done: what they showed at the crash.
    shown, on_disk = totals(hass), copy.deepcopy(hass_storage)
    await infer(hass, mock_agent, mock_config_entry, 3)
    assert value(hass, ABOVE_IDLE) == pytest.approx(5 * ROW_J / 3600)
    if crash == "after the write":
        shown, on_disk = totals(hass), copy.deepcopy(hass_storage)

    await crash_and_restart(hass, mock_config_entry, hass_storage, on_disk)

    after = totals(hass)
    assert after[ABOVE_IDLE] == pytest.approx(5 * ROW_J / 3600)
    assert after[ABOVE_IDLE] == pytest.approx(after[SOLAR] + after[BATTERY] + after[GRID])
    for entity_id in TOTALS:
        assert after[entity_id] >= shown[entity_id] - 1e-12, entity_id
    assert hass_storage[LEDGER_KEY]["data"]["cursor"] == mock_agent.rows[-1]["id"]


@pytest.mark.usefixtures("no_gate_timer")
async def test_a_total_is_shown_only_once_it_is_written(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Whenever a total changes state, the file already holds it (with the cursor that counted
    it): a crash at any moment after restarts from what the sensor showed, never below it."""
    await start_first(hass, mock_config_entry)
    seen: list[tuple[float, float]] = []

    def on_change(event: Any) -> None:
        new_state = event.data["new_state"]
        if event.data["entity_id"] == ABOVE_IDLE and new_state.state != "unavailable":
            saved = hass_storage[LEDGER_KEY]["data"]
            accounting = saved["accounting"]
            on_disk = accounting["solar_wh"] + accounting["battery_wh"] + accounting["grid_wh"]
            seen.append((float(new_state.state), on_disk))

    hass.bus.async_listen("state_changed", on_change)
    for _ in range(3):
        await infer(hass, mock_agent, mock_config_entry, 1)
        gate = mock_config_entry.runtime_data.gate
        assert gate is not None
        await gate.async_run_cycle()  # a gate cycle between the count and the write shows too
        await hass.async_block_till_done()
    changed = [(shown, on_disk) for shown, on_disk in seen if shown > 0]
    assert changed
    for shown, on_disk in changed:
        assert shown == pytest.approx(on_disk)


@pytest.mark.usefixtures("no_gate_timer")
async def test_a_total_that_could_not_be_written_is_not_shown(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A full disk: Home Assistant's Store logs the failed write and returns. The sensors keep
    what is on disk (a restart would come back to it, and a lower total_increasing state is a
    new meter cycle to the recorder), and show the rest once a write succeeds."""
    await start_first(hass, mock_config_entry)
    await infer(hass, mock_agent, mock_config_entry, 2)
    with patch(
        "homeassistant.helpers.storage.Store._async_write_data",
        side_effect=WriteError("[Errno 28] No space left on device"),
    ):
        await infer(hass, mock_agent, mock_config_entry, 3)
    assert value(hass, ABOVE_IDLE) == pytest.approx(2 * ROW_J / 3600)

    await infer(hass, mock_agent, mock_config_entry, 1)
    assert value(hass, ABOVE_IDLE) == pytest.approx(6 * ROW_J / 3600)


@pytest.mark.usefixtures("no_gate_timer")
async def test_rows_whose_write_failed_are_announced_once_across_a_crash(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Rows whose cursor could not be written are announced once it is: a crash before that
    reads them again after the restart, and they are announced then, not twice."""
    events = async_capture_events(hass, EVENT_INFERENCE)
    await start_first(hass, mock_config_entry)
    with patch(
        "homeassistant.helpers.storage.Store._async_write_data",
        side_effect=WriteError("[Errno 28] No space left on device"),
    ):
        await infer(hass, mock_agent, mock_config_entry, 2)
        on_disk = copy.deepcopy(hass_storage)
    await crash_and_restart(hass, mock_config_entry, hass_storage, on_disk)
    await infer(hass, mock_agent, mock_config_entry, 1)
    assert [event.data["id"] for event in events] == [row["id"] for row in mock_agent.rows[-3:]]


@pytest.mark.usefixtures("no_gate_timer")
async def test_version_1_files_are_migrated_into_one(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """The cursor file and the totals file of version 1 become one file; the totals carry on."""
    hass_storage[LEDGER_KEY] = saved_file(
        LEDGER_KEY,
        {
            "device_id": DEVICE_ID,
            "cursor": 17,
            "recent": load_json("inferences.json")["items"],
        },
    )
    hass_storage[ACCOUNTING_KEY] = saved_file(
        ACCOUNTING_KEY, {"solar_wh": 2.0, "battery_wh": 0.5, "grid_wh": 0.25, "inferences": 40}
    )
    await start_first(hass, mock_config_entry)

    assert ACCOUNTING_KEY not in hass_storage
    saved = hass_storage[LEDGER_KEY]
    assert saved["version"] == 2
    assert saved["data"]["cursor"] == 17
    assert saved["data"]["accounting"]["solar_wh"] == 2.0
    assert totals(hass) == {ABOVE_IDLE: 2.75, SOLAR: 2.0, BATTERY: 0.5, GRID: 0.25}
    # Nothing read again: the cursor held.
    await infer(hass, mock_agent, mock_config_entry, 1)
    assert value(hass, ABOVE_IDLE) == pytest.approx(2.75 + ROW_J / 3600)
    assert hass_storage[LEDGER_KEY]["data"]["ledger_id"] == mock_agent.ledger_id


@pytest.mark.usefixtures("no_gate_timer")
async def test_a_version_1_totals_file_without_a_cursor_file_is_kept(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    hass_storage[ACCOUNTING_KEY] = saved_file(
        ACCOUNTING_KEY, {"solar_wh": 1.0, "battery_wh": 0.0, "grid_wh": 0.5}
    )
    await start_first(hass, mock_config_entry)
    assert ACCOUNTING_KEY not in hass_storage
    assert hass_storage[LEDGER_KEY]["data"]["accounting"]["grid_wh"] == 0.5
    assert value(hass, ABOVE_IDLE) == 1.5


@pytest.mark.usefixtures("no_gate_timer")
@pytest.mark.parametrize("ledger_id", ["ledger-0001", None], ids=["with ledger_id", "older agent"])
async def test_a_restart_counts_only_the_rows_it_did_not_count(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    ledger_id: str | None,
) -> None:
    """An agent that names its ledger and one from before ledger identities: the same."""
    mock_agent.ledger_id = ledger_id
    events = async_capture_events(hass, EVENT_INFERENCE)
    await start_first(hass, mock_config_entry)
    await infer(hass, mock_agent, mock_config_entry, 2)
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    mock_agent.finish_inference(marginal_j=ROW_J, energy_j=ROW_J + 9)
    await start(hass, mock_config_entry)
    assert [event.data["id"] for event in events] == [18, 19, 20]
    assert value(hass, ABOVE_IDLE) == pytest.approx(3 * ROW_J / 3600)
    assert hass_storage[LEDGER_KEY]["data"]["ledger_id"] == ledger_id


@pytest.mark.usefixtures("no_gate_timer")
async def test_a_new_ledger_starts_the_cursor_over_and_keeps_the_totals(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """The agent's ledger was started over and already holds more rows than the cursor: ids
    alone cannot tell, the ledger's identity does. Every row of the new ledger counts once."""
    events = async_capture_events(hass, EVENT_INFERENCE)
    await start_first(hass, mock_config_entry)
    await infer(hass, mock_agent, mock_config_entry, 2)  # rows 18 and 19
    before = value(hass, ABOVE_IDLE)

    mock_agent.start_ledger_over("ledger-0002")
    await infer(hass, mock_agent, mock_config_entry, 25)  # rows 1-25 of the new ledger

    assert [event.data["id"] for event in events] == [18, 19, *range(1, 26)]
    assert value(hass, ABOVE_IDLE) == pytest.approx(before + 25 * ROW_J / 3600)
    saved = hass_storage[LEDGER_KEY]["data"]
    assert (saved["ledger_id"], saved["cursor"]) == ("ledger-0002", 25)


@pytest.mark.usefixtures("no_gate_timer")
async def test_a_ledger_started_over_while_home_assistant_was_down(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    events = async_capture_events(hass, EVENT_INFERENCE)
    await start_first(hass, mock_config_entry)
    await infer(hass, mock_agent, mock_config_entry, 1)
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)

    mock_agent.start_ledger_over("ledger-0002")
    for _ in range(20):
        mock_agent.finish_inference(marginal_j=ROW_J, energy_j=ROW_J + 9)
    await start(hass, mock_config_entry)

    assert [event.data["id"] for event in events] == [18, *range(1, 21)]
    assert value(hass, ABOVE_IDLE) == pytest.approx(21 * ROW_J / 3600)
    assert hass_storage[LEDGER_KEY]["data"]["ledger_id"] == "ledger-0002"


@pytest.mark.usefixtures("no_gate_timer")
async def test_an_older_agent_whose_ledger_starts_over_is_read_from_the_start(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
) -> None:
    """Without a ledger identity the newest row below the cursor still tells (as before)."""
    mock_agent.ledger_id = None
    events = async_capture_events(hass, EVENT_INFERENCE)
    await start_first(hass, mock_config_entry)
    mock_agent.start_ledger_over(None)
    await infer(hass, mock_agent, mock_config_entry, 3)
    assert [event.data["id"] for event in events] == [1, 2, 3]
    assert value(hass, ABOVE_IDLE) == pytest.approx(3 * ROW_J / 3600)


async def test_the_averages_are_known_right_after_a_restart(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """The rolling window is read from the agent's ledger at start, not waited for."""
    hass_storage[LEDGER_KEY] = saved_file(
        LEDGER_KEY,
        {"device_id": DEVICE_ID, "ledger_id": mock_agent.ledger_id, "cursor": 17},
        version=2,
    )
    events = async_capture_events(hass, EVENT_INFERENCE)
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    # Rows 15 (0.01 Wh) and 17 (0.008722 Wh); 16 was refused.
    assert value(hass, PER_INFERENCE) == pytest.approx((0.01 + 0.008722) / 2)
    assert hass.states.get(PER_TOKEN).state != "unknown"
    assert hass.states.get(SPEED).state != "unknown"
    assert events == []  # read for the averages, not announced or counted


async def test_the_averages_after_a_restart_reach_past_a_batch(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A batch ran 150 requests since the last chats: the restored means are the chats', read
    from before the batch's rows, not the batch's nor none."""
    for _ in range(150):
        mock_agent.finish_inference(energy_j=900.0, output_tokens=2000, duration=30.0, batch_id="b")
    hass_storage[LEDGER_KEY] = saved_file(
        LEDGER_KEY,
        {
            "device_id": DEVICE_ID,
            "ledger_id": mock_agent.ledger_id,
            "cursor": mock_agent.rows[-1]["id"],
        },
        version=2,
    )
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    # Rows 15 (0.01 Wh) and 17 (0.008722 Wh); 16 was refused.
    assert value(hass, PER_INFERENCE) == pytest.approx((0.01 + 0.008722) / 2)


async def test_last_inference_energy_is_the_last_that_ran(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """A refused request drew nothing: it is not the last inference."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    mock_agent.finish_inference(energy_j=18.0)
    mock_agent.finish_inference(energy_j=0.0, output_tokens=0, outcome="refused")
    await read_agent(hass, mock_config_entry)
    last = hass.states.get(LAST_ENERGY)
    assert float(last.state) == pytest.approx(18.0 / 3600)
    assert last.attributes["outcome"] == "ok"


async def test_no_state_reads_in_exponent_notation_or_as_minus_zero(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    mock_agent.status["power"]["board_w"] = -0.0
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    mock_agent.finish_inference(energy_j=0.054)  # 15 µWh
    await read_agent(hass, mock_config_entry)
    assert hass.states.get(LAST_ENERGY).state == "0.000015"
    assert hass.states.get("sensor.orin_rooftop_board_power").state == "0.0"
    for state in hass.states.async_all("sensor"):
        assert "e-" not in state.state, state
        assert state.state != "-0.0", state


@pytest.mark.usefixtures("no_gate_timer")
async def test_the_old_source_sensors_are_retired_with_a_repair_not_lowered(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    entity_registry: er.EntityRegistry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Version 1's "Inference energy from solar/battery/grid" (kWh) go; their successors, with
    new unique ids, carry on with the same totals, and a repair issue says so."""
    mock_config_entry.add_to_hass(hass)
    old = {
        key: entity_registry.async_get_or_create(
            "sensor",
            DOMAIN,
            f"{DEVICE_ID}_inference_energy_{key}",
            config_entry=mock_config_entry,
            suggested_object_id=f"orin_rooftop_inference_energy_from_{key}",
        ).entity_id
        for key in ("solar", "battery", "grid")
    }
    hass_storage[ACCOUNTING_KEY] = saved_file(
        ACCOUNTING_KEY, {"solar_wh": 1.0, "battery_wh": 0.25, "grid_wh": 0.5}
    )
    await start(hass, mock_config_entry)

    for entity_id in old.values():
        assert entity_registry.async_get(entity_id) is None
        assert hass.states.get(entity_id) is None
    assert totals(hass) == {ABOVE_IDLE: 1.75, SOLAR: 1.0, BATTERY: 0.25, GRID: 0.5}
    issue = issue_registry.async_get_issue(DOMAIN, f"{ENTRY_ID}_retired_energy_sensors")
    assert issue is not None
    assert issue.translation_key == "retired_energy_sensors"
    assert issue.translation_placeholders is not None
    assert old["solar"] in issue.translation_placeholders["entities"]

    # Removing the entry removes the issue.
    assert await hass.config_entries.async_remove(mock_config_entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, f"{ENTRY_ID}_retired_energy_sensors") is None
