"""Diagnostics for the Joulegate integration: agent, ledger, gate (the token is redacted)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .data import JoulegateConfigEntry
from .gate import JoulegateGateCoordinator
from .surplus import BatteryPolicy, GateMode

TO_REDACT = {CONF_TOKEN}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: JoulegateConfigEntry
) -> dict[str, Any]:
    """Return what is needed to understand a report, without the token."""
    data = entry.runtime_data
    coordinator = data.coordinator
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": dict(entry.options),
        },
        "info": dict(data.info.raw),
        "status": dict(coordinator.data.status.raw),
        "ledger": {
            "cursor": coordinator.ledger.cursor,
            "ledger_id": coordinator.ledger_id,
            "recent": [dict(row.raw) for row in coordinator.ledger.recent],
        },
        # What a restart (or a crash) starts from: the cursor and the totals, written together.
        "store": await coordinator.async_saved_state(),
        "event_stream": coordinator.event_stream,
        "last_update_success": coordinator.last_update_success,
        "gate": None if data.gate is None else _gate_diagnostics(data.gate),
    }


def _gate_diagnostics(gate: JoulegateGateCoordinator) -> dict[str, Any]:
    """The gate's configuration, settings and latest decision (no secrets here)."""
    config = gate.config
    state = gate.data
    site, rig = gate.site, gate.rig
    load = gate.house_load.profile
    settings = {
        key: value.value if isinstance(value, GateMode | BatteryPolicy) else value
        for key, value in asdict(gate.settings).items()
    }
    return {
        "config": {
            "grid_source": config.grid_source,
            "grid_sign": config.grid_sign,
            "battery_source": config.battery_source,
            "battery_sign": config.battery_sign,
            "entities": dict(config.entities),
            "battery_capacity_wh": config.battery_capacity_wh,
            "stale_after_s": config.stale_after.total_seconds(),
            "fail_open": config.fail_open,
            "inference_power_w": config.inference_power_w,
        },
        "mode": gate.mode.value,
        "settings": settings,
        "override": None if gate.override is None else gate.override.as_dict(),
        "state": {
            "open": state.open,
            "reason": state.reason.value if state.reason else None,
            "surplus_w": state.surplus_w,
            "need_w": state.need_w,
            "energy_per_inference_wh": state.energy_per_inference_wh,
            "problems": dict(state.problems),
            "agent_updated": state.agent_updated,
            "last_push_error": gate.last_push_error,
            "level": state.level,
            "allotted_w": state.allotted_w,
            "allotment_reason": state.allotment_reason.value if state.allotment_reason else None,
            "batch_plan": None if state.batch_plan is None else asdict(state.batch_plan),
        },
        # The house's rigs behind this grid meter, and this rig's ladder as the controller sees it.
        "site": {
            "allocates": site.allocates,
            "rigs": list(site.members),
            "leader": site.leader().key if site.members else None,
        },
        "rig": {
            "has_levels": rig.has_levels,
            "mode": None if rig.options.mode is None else rig.options.mode.value,
            "priority": rig.options.priority,
            "levels": [
                {
                    "name": level.key,
                    "w_above_idle": level.marginal_w,
                    "tokens_per_s": level.tokens_per_s,
                }
                for level in rig.levels()
            ],
        },
        "flows": None
        if gate.flows is None
        else {
            "grid_w": gate.flows.grid_w,
            "battery_w": gate.flows.battery_w,
            "battery_soc": gate.flows.battery_soc,
            "forecast_remaining_wh": gate.flows.forecast_remaining_wh,
            "forecast_tomorrow_wh": gate.flows.forecast_tomorrow_wh,
            # The forecast's detail from the forecast entities' attributes, as the planner has it.
            "forecast_detail": [
                {"start": _moment(p.start), "end": _moment(p.end), "wh": p.wh}
                for p in gate.flows.forecast_detail
            ],
            "pv_energy_wh": gate.flows.pv_energy_wh,
            "carbon_g_per_kwh": gate.flows.carbon_g_per_kwh,
        },
        # The house's expected load by local hour, from the recorder (None: not known).
        "house_load": None if load is None else asdict(load),
        "flow_samples": len(gate.history),
        "accounting": gate.accounting.as_dict(),
        "saved_totals": asdict(gate.agent.saved_totals),
    }


def _moment(epoch: float) -> str:
    return dt_util.as_local(dt_util.utc_from_timestamp(epoch)).isoformat()
