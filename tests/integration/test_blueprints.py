"""The automation blueprints: valid against Home Assistant's blueprint schema, and they work."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml
from pytest_homeassistant_custom_component.common import async_fire_time_changed, async_mock_service

from custom_components.joulegate.const import EVENT_BATCH_FINISHED

BLUEPRINTS = Path(__file__).parents[2] / "blueprints" / "automation" / "joulegate"
ALLOWED = "binary_sensor.orin_rooftop_inference_allowed"
REASON = "sensor.orin_rooftop_gate_reason"


@pytest.mark.parametrize(
    "name",
    [
        "run_script_while_inference_allowed.yaml",
        "notify_gate_closed_all_day.yaml",
        "notify_batch_finished.yaml",
    ],
)
def test_blueprint_is_valid(name: str) -> None:
    """The blueprint passes the automation blueprint schema, every input defined."""
    blueprint = Blueprint(
        load_yaml(BLUEPRINTS / name),  # type: ignore[arg-type]
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )
    assert blueprint.domain == "automation"
    assert blueprint.metadata["source_url"].endswith(name)
    assert blueprint.inputs


async def _use(hass: HomeAssistant, tmp_path: Path, name: str, inputs: dict[str, object]) -> None:
    """Install the blueprint in a config folder of its own and set up an automation from it."""
    hass.config.config_dir = str(tmp_path)
    folder = tmp_path / "blueprints" / "automation" / "joulegate"
    folder.mkdir(parents=True)
    shutil.copy(BLUEPRINTS / name, folder / name)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "alias": name.removesuffix(".yaml"),
                "use_blueprint": {"path": f"joulegate/{name}", "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get(f"automation.{name.removesuffix('.yaml')}") is not None


async def test_run_script_while_inference_allowed(hass: HomeAssistant, tmp_path: Path) -> None:
    """The script starts when the gate allows inference and stops when it closes."""
    hass.states.async_set(ALLOWED, "off")
    turned_on = async_mock_service(hass, "script", "turn_on")
    turned_off = async_mock_service(hass, "script", "turn_off")
    await _use(
        hass,
        tmp_path,
        "run_script_while_inference_allowed.yaml",
        {"allowed_sensor": ALLOWED, "job_script": "script.batch_prompts"},
    )

    hass.states.async_set(ALLOWED, "on")
    await hass.async_block_till_done()
    assert [call.data["entity_id"] for call in turned_on] == [["script.batch_prompts"]]
    hass.states.async_set(ALLOWED, "off")
    await hass.async_block_till_done()
    assert [call.data["entity_id"] for call in turned_off] == [["script.batch_prompts"]]
    # Unavailable (the entry unloaded) stops it too.
    hass.states.async_set(ALLOWED, "on")
    await hass.async_block_till_done()
    hass.states.async_set(ALLOWED, "unavailable")
    await hass.async_block_till_done()
    assert len(turned_on) == 2
    assert len(turned_off) == 2


async def test_notify_when_closed_all_day(
    hass: HomeAssistant, tmp_path: Path, freezer: FrozenDateTimeFactory
) -> None:
    """A day of a closed gate sends one notification, with the reason."""
    hass.states.async_set(ALLOWED, "on", {"friendly_name": "orin-rooftop Inference allowed"})
    hass.states.async_set(REASON, "surplus")
    created = async_mock_service(hass, "persistent_notification", "create")
    await _use(
        hass,
        tmp_path,
        "notify_gate_closed_all_day.yaml",
        {"allowed_sensor": ALLOWED, "reason_sensor": REASON},
    )

    hass.states.async_set(ALLOWED, "off", {"friendly_name": "orin-rooftop Inference allowed"})
    hass.states.async_set(REASON, "no_surplus")
    await hass.async_block_till_done()
    freezer.tick(timedelta(hours=23))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert created == []

    freezer.tick(timedelta(hours=1, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(created) == 1
    message = created[0].data["message"]
    assert "orin-rooftop Inference allowed" in message
    assert "24.0 hours" in message
    assert "no_surplus" in message


async def test_notify_when_a_batch_finishes(hass: HomeAssistant, tmp_path: Path) -> None:
    """The finished batch's energy and solar share in one message; a failed one is told too,
    unless only completed ones are asked for."""
    created = async_mock_service(hass, "persistent_notification", "create")
    await _use(hass, tmp_path, "notify_batch_finished.yaml", {})
    finished = {
        "batch_id": "batch_17",
        "status": "completed",
        "requests_completed": 300,
        "requests_failed": 0,
        "energy_wh": 24.123,
        "solar_share_pct": 96.2,
    }
    hass.bus.async_fire(EVENT_BATCH_FINISHED, finished)
    await hass.async_block_till_done()
    hass.bus.async_fire(
        EVENT_BATCH_FINISHED, finished | {"status": "expired", "solar_share_pct": None}
    )
    await hass.async_block_till_done()
    messages = [" ".join(call.data["message"].split()) for call in created]
    assert messages == [
        "batch_17 completed: 300 requests (0 failed), 24.1 Wh, solar share 96 %.",
        "batch_17 expired: 300 requests (0 failed), 24.1 Wh, solar share unknown.",
    ]


async def test_notify_only_completed_batches(hass: HomeAssistant, tmp_path: Path) -> None:
    created = async_mock_service(hass, "persistent_notification", "create")
    await _use(hass, tmp_path, "notify_batch_finished.yaml", {"only_completed": True})
    hass.bus.async_fire(EVENT_BATCH_FINISHED, {"batch_id": "batch_18", "status": "expired"})
    await hass.async_block_till_done()
    assert created == []
