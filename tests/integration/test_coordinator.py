"""Tests of the coordinator: ledger cursor, event stream, availability."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.joulegate.const import DOMAIN, EVENT_INFERENCE
from custom_components.joulegate.models import Inference

from .common import DEVICE_ID, ENTRY_ID, saved_file, wait_until
from .fakes.agent import FakeAgent, load_json

LEDGER_KEY = f"{DOMAIN}.{ENTRY_ID}.ledger"
INFERENCES = "sensor.orin_rooftop_inferences"
LAST_ENERGY = "sensor.orin_rooftop_last_inference_energy"
PER_INFERENCE = "sensor.orin_rooftop_energy_per_inference"
BOARD_POWER = "sensor.orin_rooftop_board_power"


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


def _announced(events: list[Any]) -> list[int]:
    return [event.data["id"] for event in events]


async def _poll(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """One scheduled poll, as the update interval triggers it."""
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()


async def test_inference_while_home_assistant_was_down_is_counted_once(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Acceptance: an inference that finished while Home Assistant was stopped is
    taken in exactly once when it starts again: not missed, not counted twice."""
    events = async_capture_events(hass, EVENT_INFERENCE)
    # First start: the history is read for the rolling means, not announced.
    assert hass_storage[LEDGER_KEY]["data"]["cursor"] == 17
    assert _announced(events) == []
    before = float(_state(hass, PER_INFERENCE))

    # Home Assistant stops.
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()

    # Meanwhile the rig finishes an inference.
    mock_agent.finish_inference(output_tokens=40, energy_j=12.0)

    # Home Assistant starts again.
    assert await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()

    assert _announced(events) == [18]
    assert events[0].data["agent_device_id"] == DEVICE_ID
    assert events[0].data["config_entry_id"] == ENTRY_ID
    assert _state(hass, INFERENCES) == "13"
    assert float(_state(hass, LAST_ENERGY)) == pytest.approx(12.0 / 3600)
    # The rolling mean holds row 18 once: rows 15 (0.01 Wh), 17 (0.008722 Wh) and
    # 18 (12 J); row 16 was refused and drew nothing.
    expected = (0.01 + 0.008722 + 12.0 / 3600) / 3
    assert float(_state(hass, PER_INFERENCE)) == pytest.approx(expected)
    assert float(_state(hass, PER_INFERENCE)) != pytest.approx(before)
    assert hass_storage[LEDGER_KEY]["data"]["cursor"] == 18

    # Later polls and a second restart take nothing in again.
    await _poll(hass, init_integration)
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    await _poll(hass, init_integration)
    assert _announced(events) == [18]
    assert float(_state(hass, PER_INFERENCE)) == pytest.approx(expected)


async def test_event_stream_shows_an_inference_at_once(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """A finished inference reaches Home Assistant without waiting for a poll,
    and the poll that follows does not count it again."""
    events = async_capture_events(hass, EVENT_INFERENCE)
    await wait_until(lambda: mock_agent.stream_connections == 1)
    coordinator = init_integration.runtime_data.coordinator
    assert coordinator.event_stream in ("connecting", "connected")

    mock_agent.finish_inference(output_tokens=50, energy_j=18.0)
    await wait_until(lambda: _state(hass, INFERENCES) == "13")
    assert coordinator.event_stream == "connected"
    assert float(_state(hass, LAST_ENERGY)) == pytest.approx(18.0 / 3600)
    attributes = hass.states.get(LAST_ENERGY).attributes
    assert attributes["output_tokens"] == 50
    assert attributes["inference_id"] == 18

    await _poll(hass, init_integration)
    assert _announced(events) == [18]

    # Gate changes come through the stream too.
    mock_agent.gate.update(open=True, reason="surplus", source="lease")
    mock_agent.status["gate"] = mock_agent.gate
    mock_agent.publish("gate", mock_agent.gate)
    await wait_until(lambda: _state(hass, "binary_sensor.orin_rooftop_inference_gate") == "on")


async def test_event_stream_reconnects(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """The agent ends the stream (it restarted): the integration connects again."""
    await wait_until(lambda: mock_agent.stream_connections == 1)
    mock_agent.close_streams()
    await wait_until(lambda: mock_agent.stream_connections == 2)
    mock_agent.finish_inference()
    await wait_until(lambda: _state(hass, INFERENCES) == "13")


async def test_event_stream_retries_after_server_error(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """A failing stream is retried with back-off until it works again."""
    await wait_until(lambda: mock_agent.stream_connections == 1)
    mock_agent.fail_status = 500
    mock_agent.close_streams()
    coordinator = init_integration.runtime_data.coordinator
    await wait_until(lambda: coordinator.event_stream == "reconnecting")
    mock_agent.fail_status = None
    await wait_until(lambda: mock_agent.stream_connections == 2)


async def test_event_stream_with_bad_event_reconnects(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """An unreadable event drops the connection, which is made again."""
    await wait_until(lambda: mock_agent.stream_connections == 1)
    mock_agent.publish("inference", {"id": "not a row"})
    await wait_until(lambda: mock_agent.stream_connections == 2)


async def test_an_event_line_over_the_read_limit_reconnects_the_stream(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 200 KiB line (over aiohttp's 128 KiB) is reported once; the stream comes back."""
    await wait_until(lambda: mock_agent.stream_connections == 1)
    mock_agent.publish("note", "x" * 200_000)
    await wait_until(lambda: mock_agent.stream_connections == 2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert ["Event stream of orin-rooftop failed" in r.getMessage() for r in warnings] == [True]
    mock_agent.finish_inference()
    await wait_until(lambda: _state(hass, INFERENCES) == "13")


async def test_an_unexpected_error_in_the_stream_is_logged_and_the_stream_reconnects(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever the client raises, the stream task lives on: logged with its traceback."""
    await wait_until(lambda: mock_agent.stream_connections == 1)
    client = init_integration.runtime_data.client
    real_events = client.events
    calls = 0

    def events() -> AsyncIterator[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the client")
        return real_events()

    with patch.object(client, "events", events):
        mock_agent.close_streams()
        await wait_until(lambda: mock_agent.stream_connections == 2)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "a bug in the client" in caplog.text
    mock_agent.finish_inference()
    await wait_until(lambda: _state(hass, INFERENCES) == "13")


async def test_event_stream_stops_on_rejected_token(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """The token is rotated: the stream stops, the next poll starts reauthentication."""
    await wait_until(lambda: mock_agent.stream_connections == 1)
    mock_agent.token = "rotated"
    mock_agent.close_streams()
    coordinator = init_integration.runtime_data.coordinator
    await wait_until(lambda: coordinator.event_stream == "stopped: authentication failed")

    await _poll(hass, init_integration)
    assert _state(hass, BOARD_POWER) == STATE_UNAVAILABLE
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_polling_when_agent_has_no_event_stream(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without an event stream the integration polls at the update interval."""
    mock_agent.events_enabled = False
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    coordinator = mock_config_entry.runtime_data.coordinator
    await wait_until(lambda: coordinator.event_stream == "unsupported")
    assert "offers no event stream; polling only" in caplog.text

    events = async_capture_events(hass, EVENT_INFERENCE)
    mock_agent.finish_inference()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await wait_until(lambda: _state(hass, INFERENCES) == "13")
    assert _announced(events) == [18]


async def test_unreachable_agent_logged_once_each_way(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Agent unreachable: entities unavailable, one log line when it goes and one
    when it comes back, and nothing lost in between."""
    port = mock_agent.port
    events = async_capture_events(hass, EVENT_INFERENCE)
    caplog.set_level(logging.DEBUG, logger="custom_components.joulegate")
    await wait_until(lambda: mock_agent.stream_connections == 1)
    await mock_agent.stop()
    # The event stream notices too, and keeps trying, quietly (debug level).
    await wait_until(lambda: "Event stream of orin-rooftop lost" in caplog.text)
    caplog.clear()
    for _ in range(3):
        await _poll(hass, init_integration)
        assert _state(hass, BOARD_POWER) == STATE_UNAVAILABLE
    assert _state(hass, "binary_sensor.orin_rooftop_inference_gate") == STATE_UNAVAILABLE
    gone = [r for r in caplog.records if "Error fetching Joulegate orin-rooftop data" in r.message]
    assert len(gone) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r not in gone]
    assert gone[0].levelname == "ERROR"

    mock_agent.finish_inference(energy_j=9.0)  # finished while unreachable
    await mock_agent.start(port=port)
    for _ in range(2):
        await _poll(hass, init_integration)
    assert _state(hass, BOARD_POWER) == "4.52"
    back = [
        r for r in caplog.records if "Fetching Joulegate orin-rooftop data recovered" in r.message
    ]
    assert len(back) == 1
    assert _announced(events) == [18]


async def test_ledger_pages_through_a_backlog(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """Many rows at once are read page by page, in order, each once."""
    mock_agent.events_enabled = False
    mock_agent.max_page = 2
    events = async_capture_events(hass, EVENT_INFERENCE)
    for _ in range(5):
        mock_agent.finish_inference()
    mock_agent.inference_queries.clear()
    with patch("custom_components.joulegate.coordinator.LEDGER_MAX_PAGES_PER_UPDATE", 2):
        await _poll(hass, init_integration)
        assert _announced(events) == [18, 19, 20, 21]
        await _poll(hass, init_integration)
    assert _announced(events) == [18, 19, 20, 21, 22]
    assert [after for after, _ in mock_agent.inference_queries] == [17, 19, 21]


async def test_a_poll_with_no_new_row_reads_no_ledger_page(
    hass: HomeAssistant, mock_agent: FakeAgent, init_integration: MockConfigEntry
) -> None:
    """The status names the newest row: while it is the one already read, the ledger is not
    asked (an idle rig costs one request per poll, not two)."""
    mock_agent.events_enabled = False
    mock_agent.inference_queries.clear()
    await _poll(hass, init_integration)
    assert mock_agent.inference_queries == []
    mock_agent.finish_inference()
    await _poll(hass, init_integration)
    assert [after for after, _ in mock_agent.inference_queries] == [17]


async def test_ledger_that_starts_over_is_read_from_the_start(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The agent's ledger was reset (ids start again at 1): do not wait for id 18."""
    events = async_capture_events(hass, EVENT_INFERENCE)
    mock_agent.rows = []
    mock_agent.status["inference"]["last"] = None
    await _poll(hass, init_integration)
    assert "starts over" in caplog.text
    assert _state(hass, LAST_ENERGY) == "unknown"

    mock_agent.finish_inference()
    await _poll(hass, init_integration)
    assert _announced(events) == [1]


async def test_first_start_with_empty_ledger(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A new agent with no inference yet."""
    mock_agent.rows = []
    mock_agent.status["inference"]["last"] = None
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass_storage[LEDGER_KEY]["data"]["cursor"] == 0
    assert mock_agent.inference_queries == []
    assert _state(hass, PER_INFERENCE) == "unknown"
    assert _state(hass, "sensor.orin_rooftop_energy_per_token") == "unknown"
    assert _state(hass, "sensor.orin_rooftop_tokens_per_second") == "unknown"


async def test_saved_cursor_is_resumed(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A cursor saved before a stop: the rows after it are taken in, those before not."""
    row15 = load_json("inferences.json")["items"][0]
    hass_storage[LEDGER_KEY] = saved_file(
        LEDGER_KEY, {"device_id": DEVICE_ID, "cursor": 15, "recent": [row15, {"broken": 1}]}
    )
    events = async_capture_events(hass, EVENT_INFERENCE)
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert _announced(events) == [16, 17]
    assert mock_config_entry.runtime_data.coordinator.ledger.cursor == 17


async def test_saved_cursor_of_another_agent_is_ignored(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Saved state that belongs to another device id is not used."""
    hass_storage[LEDGER_KEY] = saved_file(
        LEDGER_KEY, {"device_id": "someone-else", "cursor": 999, "recent": []}
    )
    events = async_capture_events(hass, EVENT_INFERENCE)
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert _announced(events) == []
    assert hass_storage[LEDGER_KEY]["data"]["cursor"] == 17
    assert hass_storage[LEDGER_KEY]["data"]["device_id"] == DEVICE_ID


async def test_a_failing_row_listener_loses_no_row_and_no_event(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    init_integration: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rows are past the cursor once announced: an error in one listener must not fail the
    update or keep the later rows from the event bus and from the other listeners."""
    coordinator = init_integration.runtime_data.coordinator
    seen: list[int] = []

    def failing(row: Inference) -> None:
        raise RuntimeError(f"cannot take row {row.id}")

    init_integration.async_on_unload(coordinator.async_add_row_listener(failing))
    init_integration.async_on_unload(
        coordinator.async_add_row_listener(lambda row: seen.append(row.id))
    )
    events = async_capture_events(hass, EVENT_INFERENCE)
    mock_agent.finish_inference()
    mock_agent.finish_inference()
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert coordinator.last_update_success
    assert _announced(events) == [18, 19]
    assert seen == [18, 19]
    assert "Error handling ledger row 18" in caplog.text
