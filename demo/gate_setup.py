"""Configure the Joulegate entry for the demo through the options flow's REST API.

What a user does under Settings -> Devices & services -> Joulegate -> Configure: the solar surplus
gate with the simulated house's sensors (one signed grid sensor, + import; one signed battery
sensor, + discharge; the battery's level; the PV forecast and yield), then the gate's battery
policy on its select entity.
"""

from __future__ import annotations

from typing import Any

from demo.ha_client import HomeAssistantClient, HomeAssistantError
from demo.sunny_day import Site

# Readings older than this count as unavailable (the driver sends one every 2 s).
STALE_AFTER_S = 60
POLICY = "balanced"


def gate_answers(
    *,
    battery: bool = True,
    forecast: bool = True,
    site: Site | None = None,
    stale_after_s: int = STALE_AFTER_S,
    level_mode: str = "off",
    priority: int = 0,
) -> list[dict[str, Any]]:
    """The options flow's answers, form by form, for the demo house's template sensors; the
    last form (the simulated agent's power levels) chooses the level mode and the priority."""
    site = site or Site()
    sensors: dict[str, Any] = {
        "grid_power": "sensor.demo_grid_power",
        "grid_sign": "import_positive",
    }
    extras: dict[str, Any] = {
        "stale_after": stale_after_s,
        "inference_power": 10.0,
        "fail_open": False,
    }
    if battery:
        sensors |= {
            "battery_power": "sensor.demo_battery_power",
            "battery_sign": "discharge_positive",
            "battery_soc": "sensor.demo_battery_level",
        }
        extras["battery_capacity"] = site.battery_wh / 1000
    if forecast:
        extras |= {
            "pv_forecast": "sensor.demo_pv_forecast_remaining",
            "pv_energy": "sensor.demo_pv_energy",
        }
    return [
        {"grid_source": "signed", "battery_source": "signed" if battery else "none"},
        sensors,
        extras,
        {"level_mode": level_mode, "priority": priority},
    ]


def has_gate_options(first_form: dict[str, Any]) -> bool:
    """Whether the options open at the solar gate's first form."""
    return first_form.get("type") == "form" and first_form.get("step_id") == "gate"


async def configure(
    ha: HomeAssistantClient, entry_id: str, *, level_mode: str = "off", priority: int = 0
) -> str:
    """Set the options; returns a sentence about the gate for the demo's banner."""
    first = await ha.options_form(entry_id)
    if not has_gate_options(first):
        raise HomeAssistantError(f"the options do not open at the solar gate: {first}", body=first)
    answers = gate_answers(level_mode=level_mode, priority=priority)
    result = await ha.options_flow(entry_id, *answers)
    if result.get("type") != "create_entry":
        raise HomeAssistantError(f"the gate's options were not saved: {result}", body=result)
    levels = "" if level_mode == "off" else f", power levels {level_mode}, priority {priority}"
    return f"solar gate on the simulated house's grid and battery sensors{levels}"


async def set_policy(ha: HomeAssistantClient, entities: dict[str, str], policy: str) -> bool:
    """Choose the gate's battery policy on its select entity (False when there is none)."""
    select = entities.get("battery_policy")
    if select is None:
        return False
    state = await ha.state(select)
    if state is None or policy not in state["attributes"].get("options", []):
        return False
    if state["state"] != policy:
        await ha.post("/api/services/select/select_option", {"entity_id": select, "option": policy})
    return True


# The controller's minimum off time runs on the wall clock; the demo's day is sped up ~40 times,
# so the default 5 minutes would keep the gate shut for over three simulated hours after every
# cloud. Where the integration offers it as a number entity, the demo shortens it.
DEMO_MIN_OFF_S = 60.0


async def shorten_min_off(ha: HomeAssistantClient, entities: dict[str, str]) -> bool:
    """Set the gate's minimum off time to DEMO_MIN_OFF_S, if there is an entity for it."""
    for key, entity_id in entities.items():
        if not entity_id.startswith("number.") or not ("off_time" in key or "min_off" in key):
            continue
        state = await ha.state(entity_id)
        if state is None:
            return False
        unit = state["attributes"].get("unit_of_measurement")
        value = DEMO_MIN_OFF_S / 60 if unit == "min" else DEMO_MIN_OFF_S
        await ha.post("/api/services/number/set_value", {"entity_id": entity_id, "value": value})
        return True
    return False
