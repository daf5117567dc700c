"""Sensors of a Joulegate agent: power, energy, inference work and its cost; the surplus gate."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    Platform,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfTemperature,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .accounting import Totals
from .batch_plan import PlanReason
from .const import (
    CONF_CARBON_INTENSITY,
    CONF_PV_ENERGY,
    UNIT_BATCHES,
    UNIT_G_CO2E_PER_INFERENCE,
    UNIT_INFERENCES,
    UNIT_INFERENCES_PER_HOUR,
    UNIT_J_PER_TOKEN,
    UNIT_REQUESTS,
    UNIT_TOKENS,
    UNIT_TOKENS_PER_SECOND,
    UNIT_WH_PER_INFERENCE,
)
from .coordinator import JoulegateDataUpdateCoordinator, JoulegateState
from .data import JoulegateConfigEntry
from .entity import JoulegateEntity, async_remove_entities
from .gate import JoulegateGateCoordinator
from .levels import LevelReason
from .models import BatchQueue, Board, Status
from .retired import async_retire_sensors
from .surplus import Reason

# All entities read the coordinator's data; nothing is polled per entity.
PARALLEL_UPDATES = 0

EMPTY_BATCH_QUEUE = BatchQueue.from_dict({})

# The least value a state shows as more than 0 (a microwatt-hour, a millionth of a percent).
STATE_FLOOR = 1e-6


@dataclass(frozen=True, kw_only=True)
class JoulegateSensorEntityDescription(SensorEntityDescription):
    """Describes a Joulegate sensor."""

    value_fn: Callable[[JoulegateState], StateType | datetime]
    attributes_fn: Callable[[JoulegateState], Mapping[str, Any] | None] | None = None
    # Whether the board can fill it: created at setup only then.
    exists_fn: Callable[[Board, Status], bool] = lambda _board, _status: True
    # Whether the agent says the board never fills it: only then is an earlier entity removed.
    unfillable_fn: Callable[[Board], bool] = lambda _board: False


def _clean(value: float) -> float:
    """0.0 for float noise (7.59e-19 Wh where the sun paid for all of it) and for -0.0."""
    return 0.0 if abs(value) < STATE_FLOOR else value


def _shown(value: StateType | datetime) -> StateType | Decimal | datetime:
    """A float as its state should read: 0.0 below a millionth, and never in exponent notation
    (Home Assistant writes a float to 15 digits, 1.23e-05 for a small one; a Decimal of the
    same digits reads 0.0000123). Order is kept, so a total that never decreases still never
    does."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    text = f"{_clean(value):.15}"
    return Decimal(text) if "e" in text else _clean(value)


def _last_inference_attributes(state: JoulegateState) -> Mapping[str, Any] | None:
    if (row := state.last_inference) is None:
        return None
    return {
        "inference_id": row.id,
        "output_tokens": row.output_tokens,
        "duration_s": row.duration_s,
        "j_per_token": row.j_per_token,
        "model": row.model,
        "outcome": row.outcome,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        **_energy_error(row.energy_error_j, row.energy_j),
    }


def _energy_error(error_j: float | None, energy_j: float) -> dict[str, float | None]:
    """The agent's bound on the energy, as "0.42 Wh ± 3 %" needs it (None from older agents)."""
    return {
        "energy_error_wh": None if error_j is None else round(error_j / 3600.0, 6),
        "energy_error_percent": (
            round(100.0 * error_j / energy_j, 1) if error_j is not None and energy_j > 0 else None
        ),
    }


def _last_inference_wh(state: JoulegateState) -> StateType:
    return row.wh if (row := state.last_inference) else None


def _has_batch_queue(_board: Board, status: Status) -> bool:
    return status.batches is not None


def _batches(state: JoulegateState) -> BatchQueue:
    """The agent's batch queue (an empty one for a status that lost it: the agent went back to
    a version without one while the entity exists)."""
    return state.status.batches or EMPTY_BATCH_QUEUE


SENSORS: tuple[JoulegateSensorEntityDescription, ...] = (
    JoulegateSensorEntityDescription(
        key="board_power",
        translation_key="board_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda state: state.status.power.board_w,
    ),
    JoulegateSensorEntityDescription(
        key="energy",
        translation_key="energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=3,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda state: state.status.energy.board_wh,
    ),
    JoulegateSensorEntityDescription(
        key="idle_power",
        translation_key="idle_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda state: state.status.idle_baseline_w,
    ),
    JoulegateSensorEntityDescription(
        key="power_mode",
        translation_key="power_mode",
        value_fn=lambda state: mode.name if (mode := state.status.power_mode) else None,
        # A status without a mode on a board with modes is nvpmodel rewriting its file: a blip.
        exists_fn=lambda board, status: board.power_modes is True or status.power_mode is not None,
        unfillable_fn=lambda board: board.power_modes is False,
    ),
    JoulegateSensorEntityDescription(
        key="inferences",
        translation_key="inferences",
        native_unit_of_measurement=UNIT_INFERENCES,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda state: state.status.inference.count,
    ),
    JoulegateSensorEntityDescription(
        key="output_tokens",
        translation_key="output_tokens",
        native_unit_of_measurement=UNIT_TOKENS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda state: state.status.inference.output_tokens,
    ),
    JoulegateSensorEntityDescription(
        key="inference_energy",
        translation_key="inference_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_display_precision=3,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda state: state.status.energy.inference_wh,
    ),
    JoulegateSensorEntityDescription(
        key="marginal_inference_energy",
        translation_key="marginal_inference_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_display_precision=3,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda state: state.status.energy.marginal_inference_wh,
    ),
    JoulegateSensorEntityDescription(
        key="last_inference_energy",
        translation_key="last_inference_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_display_precision=4,
        value_fn=_last_inference_wh,
        attributes_fn=_last_inference_attributes,
    ),
    # Energy per unit of work: no device class (none fits a ratio), state class
    # measurement so that Home Assistant keeps long-term statistics.
    JoulegateSensorEntityDescription(
        key="energy_per_inference",
        translation_key="energy_per_inference",
        native_unit_of_measurement=UNIT_WH_PER_INFERENCE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=4,
        value_fn=lambda state: state.ledger.energy_per_inference_wh,
    ),
    JoulegateSensorEntityDescription(
        key="energy_per_token",
        translation_key="energy_per_token",
        native_unit_of_measurement=UNIT_J_PER_TOKEN,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=3,
        value_fn=lambda state: state.ledger.energy_per_token_j,
    ),
    JoulegateSensorEntityDescription(
        key="tokens_per_second",
        translation_key="tokens_per_second",
        native_unit_of_measurement=UNIT_TOKENS_PER_SECOND,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda state: state.ledger.tokens_per_second,
    ),
    JoulegateSensorEntityDescription(
        key="deferred_requests",
        translation_key="deferred_requests",
        native_unit_of_measurement=UNIT_REQUESTS,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.status.queue.length,
        attributes_fn=lambda state: {"capacity": state.status.queue.capacity},
    ),
    # The batch queue (agents with one): what Home Assistant plans the deadline rule with.
    JoulegateSensorEntityDescription(
        key="batch_requests_waiting",
        translation_key="batch_requests_waiting",
        native_unit_of_measurement=UNIT_REQUESTS,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: _batches(state).requests_waiting,
        attributes_fn=lambda state: {
            "requests_running": _batches(state).requests_running,
            "late": _batches(state).late,
            "admitted": _batches(state).admitted,
        },
        exists_fn=_has_batch_queue,
    ),
    JoulegateSensorEntityDescription(
        key="batches_in_progress",
        translation_key="batches_in_progress",
        native_unit_of_measurement=UNIT_BATCHES,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: _batches(state).batches_in_progress,
        exists_fn=_has_batch_queue,
    ),
    JoulegateSensorEntityDescription(
        key="batch_energy_needed",
        translation_key="batch_energy_needed",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda state: _batches(state).energy_needed_wh,
        exists_fn=_has_batch_queue,
    ),
    JoulegateSensorEntityDescription(
        key="batch_next_deadline",
        translation_key="batch_next_deadline",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda state: _batches(state).next_deadline,
        exists_fn=_has_batch_queue,
    ),
    JoulegateSensorEntityDescription(
        key="batch_latest_start",
        translation_key="batch_latest_start",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda state: _batches(state).latest_start,
        exists_fn=_has_batch_queue,
    ),
    JoulegateSensorEntityDescription(
        key="max_temperature",
        translation_key="max_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.status.thermal.max_c,
    ),
)


def _rail_sensor(name: str) -> JoulegateSensorEntityDescription:
    def value(state: JoulegateState) -> StateType:
        rail = state.status.power.rail(name)
        return rail.power_w if rail and rail.available else None

    return JoulegateSensorEntityDescription(
        key=f"rail_power_{name}",
        translation_key="rail_power",
        translation_placeholders={"rail": name},
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=value,
    )


def _zone_sensor(zone: str) -> JoulegateSensorEntityDescription:
    return JoulegateSensorEntityDescription(
        key=f"temperature_{zone}",
        translation_key="zone_temperature",
        translation_placeholders={"zone": zone},
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.status.thermal.zones.get(zone),
    )


@dataclass(frozen=True, kw_only=True)
class JoulegateGateSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor of the surplus gate; `exists_fn` says whether the inputs allow it."""

    value_fn: Callable[[JoulegateGateCoordinator], StateType]
    attributes_fn: Callable[[JoulegateGateCoordinator], Mapping[str, Any] | None] | None = None
    exists_fn: Callable[[JoulegateGateCoordinator], bool] = lambda _: True


def _reason_attributes(gate: JoulegateGateCoordinator) -> Mapping[str, Any]:
    state = gate.data
    override = state.override
    return {
        "input_problems": dict(state.problems),
        "override": None if override is None else ("allow" if override.open else "block"),
        "override_until": None if override is None else override.until.isoformat(),
    }


def _plan_attributes(gate: JoulegateGateCoordinator) -> Mapping[str, Any]:
    plan = gate.data.batch_plan

    def moment(epoch: float | None) -> str | None:
        return None if epoch is None else dt_util.utc_from_timestamp(epoch).isoformat()

    return {
        "admitted": plan is not None and plan.admit,
        "deadline": moment(plan.deadline if plan else None),
        "latest_start": moment(plan.latest_start if plan else None),
        "expected_solar_wh": plan.expected_solar_wh if plan else None,
        "shortfall_wh": plan.shortfall_wh if plan else None,
        "late": plan is not None and plan.late,
    }


def _batch_share_attributes(gate: JoulegateGateCoordinator) -> Mapping[str, Any] | None:
    """Which batch the share is of, and its energy above idle by source so far."""
    if (latest := gate.accounting.latest_batch()) is None:
        return None
    batch_id, split = latest
    return {
        "batch_id": batch_id,
        "energy_above_idle_wh": split.total_wh,
        "solar_wh": split.solar_wh,
        "battery_wh": split.battery_wh,
        "grid_wh": split.grid_wh,
    }


def _battery_per_100(gate: JoulegateGateCoordinator) -> StateType:
    per_inference = gate.summary.battery_wh_per_inference
    capacity = gate.config.battery_capacity_wh
    if per_inference is None or not capacity:
        return None
    return 100 * per_inference / capacity * 100


def _energy_total(
    key: str, value_fn: Callable[[Totals], float], **kwargs: Any
) -> JoulegateGateSensorEntityDescription:
    """A lifetime total of inference energy above idle, as last saved with the ledger cursor
    (never a figure a crash could take back). In Wh: a rig's share is small, and a kWh state
    would read 1e-05 for its first inferences."""
    return JoulegateGateSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_display_precision=3,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda gate: value_fn(gate.agent.saved_totals),
        **kwargs,
    )


def _levels_table(gate: JoulegateGateCoordinator) -> Mapping[str, Any]:
    """What each level costs (W above idle, tokens/s, J/token; None: not measured yet); W above
    idle of a level not measured is the controller's assumption (`measured` false)."""
    return {
        "levels": [
            {
                "name": level.key,
                "w_above_idle": round(level.marginal_w, 2),
                "measured": level.measured,
                "tokens_per_s": None
                if level.tokens_per_s is None
                else round(level.tokens_per_s, 1),
                "j_per_token": None
                if level.joules_per_token is None
                else round(level.joules_per_token, 3),
            }
            for level in gate.rig.levels()
        ],
        "mode": None if gate.rig.options.mode is None else gate.rig.options.mode.value,
        "priority": gate.rig.options.priority,
    }


# A rig whose agent has levels: the level it runs, the power its site allots it and why.
LEVEL_SENSORS: tuple[JoulegateGateSensorEntityDescription, ...] = (
    JoulegateGateSensorEntityDescription(
        key="power_level",
        translation_key="power_level",
        value_fn=lambda gate: gate.data.level,
        attributes_fn=_levels_table,
        exists_fn=lambda gate: gate.rig.has_levels,
    ),
    JoulegateGateSensorEntityDescription(
        key="allotted_power",
        translation_key="allotted_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda gate: gate.data.allotted_w,
        exists_fn=lambda gate: gate.rig.has_levels,
    ),
    JoulegateGateSensorEntityDescription(
        key="allotment_reason",
        translation_key="allotment_reason",
        device_class=SensorDeviceClass.ENUM,
        options=sorted({*(r.value for r in Reason), *(r.value for r in LevelReason)}),
        value_fn=lambda gate: (
            gate.data.allotment_reason.value if gate.data.allotment_reason else None
        ),
        exists_fn=lambda gate: gate.rig.has_levels,
    ),
)
GATE_SENSORS: tuple[JoulegateGateSensorEntityDescription, ...] = (
    JoulegateGateSensorEntityDescription(
        key="gate_reason",
        translation_key="gate_reason",
        device_class=SensorDeviceClass.ENUM,
        options=[reason.value for reason in Reason],
        value_fn=lambda gate: gate.data.reason.value if gate.data.reason else None,
        attributes_fn=_reason_attributes,
    ),
    JoulegateGateSensorEntityDescription(
        key="batch_plan",
        translation_key="batch_plan",
        device_class=SensorDeviceClass.ENUM,
        options=[reason.value for reason in PlanReason],
        value_fn=lambda gate: plan.reason if (plan := gate.data.batch_plan) else PlanReason.IDLE,
        attributes_fn=_plan_attributes,
    ),
    JoulegateGateSensorEntityDescription(
        key="batch_solar_share",
        translation_key="batch_solar_share",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda gate: (
            latest[1].solar_share_pct if (latest := gate.accounting.latest_batch()) else None
        ),
        attributes_fn=_batch_share_attributes,
    ),
    JoulegateGateSensorEntityDescription(
        key="surplus_power",
        translation_key="surplus_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda gate: gate.data.surplus_w,
    ),
    JoulegateGateSensorEntityDescription(
        key="affordable_inferences",
        translation_key="affordable_inferences",
        native_unit_of_measurement=UNIT_INFERENCES_PER_HOUR,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda gate: gate.data.inferences_per_hour,
    ),
    # The sum first, then its three parts: solar + battery + grid = above idle, always.
    _energy_total("inference_energy_above_idle", lambda totals: totals.total_wh),
    _energy_total("inference_energy_above_idle_solar", lambda totals: totals.solar_wh),
    _energy_total(
        "inference_energy_above_idle_battery",
        lambda totals: totals.battery_wh,
        exists_fn=lambda gate: gate.config.has_battery,
    ),
    _energy_total(
        "inference_energy_above_idle_grid",
        lambda totals: totals.grid_wh,
        attributes_fn=lambda gate: {
            "unattributed_wh": _clean(gate.agent.saved_totals.unattributed_wh)
        },
    ),
    # Ratios over the most recent inferences (as the other per-inference means).
    JoulegateGateSensorEntityDescription(
        key="solar_share",
        translation_key="solar_share",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda gate: gate.summary.solar_share_pct,
        attributes_fn=lambda gate: {"inferences": gate.summary.recent},
    ),
    JoulegateGateSensorEntityDescription(
        key="carbon_per_inference",
        translation_key="carbon_per_inference",
        native_unit_of_measurement=UNIT_G_CO2E_PER_INFERENCE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=3,
        value_fn=lambda gate: gate.summary.carbon_g_per_inference,
        exists_fn=lambda gate: CONF_CARBON_INTENSITY in gate.config.entities,
    ),
    JoulegateGateSensorEntityDescription(
        key="battery_per_100_inferences",
        translation_key="battery_per_100_inferences",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=3,
        value_fn=_battery_per_100,
        exists_fn=lambda gate: bool(gate.config.has_battery and gate.config.battery_capacity_wh),
    ),
    JoulegateGateSensorEntityDescription(
        key="pv_yield_share",
        translation_key="pv_yield_share",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=3,
        value_fn=lambda gate: gate.summary.pv_yield_share_pct,
        attributes_fn=lambda gate: {
            "inference_wh_today": gate.summary.inference_wh_today,
            "pv_yield_today_wh": gate.summary.pv_yield_today_wh,
        },
        exists_fn=lambda gate: CONF_PV_ENERGY in gate.config.entities,
    ),
    *LEVEL_SENSORS,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: JoulegateConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the sensors of one agent (rails and zones are those it reports), and its gate's."""
    coordinator = entry.runtime_data.coordinator
    status = coordinator.data.status
    board = coordinator.info.board
    device_id = coordinator.info.device_id
    # Entities of an earlier version that the agent says this board never fills (Unknown for
    # good) go; never on one status's word, which may be a blip.
    async_remove_entities(
        hass,
        Platform.SENSOR,
        device_id,
        (description.key for description in SENSORS if description.unfillable_fn(board)),
    )
    descriptions = [
        *(description for description in SENSORS if description.exists_fn(board, status)),
        *(_rail_sensor(rail.name) for rail in status.power.rails),
        *(_zone_sensor(zone) for zone in sorted(status.thermal.zones)),
    ]
    async_add_entities(
        JoulegateSensorEntity(coordinator, description) for description in descriptions
    )
    gate = entry.runtime_data.gate
    gate_descriptions = [
        description
        for description in GATE_SENSORS
        if gate is not None and description.exists_fn(gate)
    ]
    given = {description.key for description in gate_descriptions}
    async_remove_entities(
        hass,
        Platform.SENSOR,
        device_id,
        (description.key for description in GATE_SENSORS if description.key not in given),
    )
    if gate is not None:
        async_retire_sensors(hass, entry.entry_id, entry.title, device_id)
        async_add_entities(
            JoulegateGateSensorEntity(gate, description) for description in gate_descriptions
        )


class JoulegateSensorEntity(JoulegateEntity[JoulegateDataUpdateCoordinator], SensorEntity):
    """A sensor of a Joulegate agent."""

    entity_description: JoulegateSensorEntityDescription

    @property
    def native_value(self) -> StateType | Decimal | datetime:
        """Return the sensor's value."""
        return _shown(self.entity_description.value_fn(self.coordinator.data))

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the sensor's attributes, if it has any."""
        if (attributes_fn := self.entity_description.attributes_fn) is None:
            return None
        return attributes_fn(self.coordinator.data)


class JoulegateGateSensorEntity(JoulegateEntity[JoulegateGateCoordinator], SensorEntity):
    """A sensor of the surplus gate."""

    entity_description: JoulegateGateSensorEntityDescription

    @property
    def native_value(self) -> StateType | Decimal | datetime:
        """Return the sensor's value."""
        return _shown(self.entity_description.value_fn(self.coordinator))

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the sensor's attributes, if it has any."""
        if (attributes_fn := self.entity_description.attributes_fn) is None:
            return None
        return attributes_fn(self.coordinator)
