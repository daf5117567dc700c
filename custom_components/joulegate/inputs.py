"""The home's entities that feed the surplus gate: which ones, and their readings in W, Wh, %.

Units are converted with Home Assistant's unit converters. A reading is refused (None, with the
problem named) when its entity is missing, unavailable or unknown, reports a unit that cannot be
converted, a state that is not a finite number, or, for power flows, has not been reported for
longer than the stale time. A refused reading is not yet an outage: the surplus controller rides
through it on the input's last good reading for `Settings.hold_s` (30 s, three cycles).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from homeassistant.const import (
    ATTR_UNIT_OF_MEASUREMENT,
    PERCENTAGE,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    UnitOfEnergy,
    UnitOfPower,
)
from homeassistant.core import HomeAssistant
from homeassistant.util.unit_conversion import EnergyConverter, PowerConverter

from .batch_plan import Period
from .const import (
    BATTERY_SOURCE_CHARGE_DISCHARGE,
    BATTERY_SOURCE_SIGNED,
    CONF_BATTERY_CAPACITY,
    CONF_BATTERY_CHARGE,
    CONF_BATTERY_DISCHARGE,
    CONF_BATTERY_POWER,
    CONF_BATTERY_SIGN,
    CONF_BATTERY_SOC,
    CONF_BATTERY_SOURCE,
    CONF_CARBON_INTENSITY,
    CONF_FAIL_OPEN,
    CONF_GRID_EXPORT,
    CONF_GRID_IMPORT,
    CONF_GRID_POWER,
    CONF_GRID_SIGN,
    CONF_GRID_SOURCE,
    CONF_INFERENCE_POWER,
    CONF_LOAD_POWER,
    CONF_PV_ENERGY,
    CONF_PV_FORECAST,
    CONF_PV_FORECAST_TOMORROW,
    CONF_PV_POWER,
    CONF_STALE_AFTER,
    DEFAULT_INFERENCE_POWER,
    DEFAULT_STALE_AFTER,
    GRID_SOURCE_IMPORT_EXPORT,
    GRID_SOURCE_PV_LOAD,
    GRID_SOURCE_SIGNED,
    SIGN_CHARGE_POSITIVE,
    SIGN_EXPORT_POSITIVE,
)
from .forecast import forecast_detail


class Kind(StrEnum):
    """What an input measures, and so which units it may have."""

    POWER = "power"
    PERCENT = "percent"
    ENERGY = "energy"
    CARBON = "carbon"


class Problem(StrEnum):
    """Why an input has no usable reading."""

    MISSING = "missing"
    UNAVAILABLE = "unavailable"
    STALE = "stale"
    BAD_UNIT = "bad_unit"
    NOT_NUMERIC = "not_numeric"


# Problems that the user has to fix (a Repairs issue), as opposed to passing outages.
LASTING_PROBLEMS = frozenset({Problem.MISSING, Problem.BAD_UNIT, Problem.NOT_NUMERIC})

# gCO2e/kWh and equivalents: g/kWh = kg/MWh; lb/MWh (as WattTime reports) in grams.
_CARBON_UNIT = re.compile(
    r"^\s*(?P<mass>g|kg|lbs?)\s*(?:co2\s*(?:e|eq)?)?\s*/\s*(?P<energy>kwh|mwh)\s*$",
    re.IGNORECASE,
)
_GRAMS = {"g": 1.0, "kg": 1000.0, "lb": 453.59237, "lbs": 453.59237}
_PER_KWH = {"kwh": 1.0, "mwh": 1 / 1000}


def _carbon_factor(unit: str | None) -> float | None:
    if unit is None or (match := _CARBON_UNIT.match(unit)) is None:
        return None
    return _GRAMS[match["mass"].lower()] * _PER_KWH[match["energy"].lower()]


def converter(kind: Kind, unit: str | None) -> Callable[[float], float] | None:
    """A function to W, %, Wh or gCO2e/kWh from `unit`; None when the unit cannot be used."""
    if kind is Kind.POWER:
        if unit not in PowerConverter.VALID_UNITS:
            return None
        return PowerConverter.converter_factory(unit, UnitOfPower.WATT)
    if kind is Kind.ENERGY:
        if unit not in EnergyConverter.VALID_UNITS:
            return None
        return EnergyConverter.converter_factory(unit, UnitOfEnergy.WATT_HOUR)
    if kind is Kind.PERCENT:
        return (lambda value: value) if unit == PERCENTAGE else None
    factor = _carbon_factor(unit)
    return None if factor is None else (lambda value: value * factor)


@dataclass(frozen=True, slots=True)
class Reading:
    """One input's value in its base unit, or the problem that stops it."""

    entity_id: str
    value: float | None
    problem: Problem | None = None
    detail: str | None = None  # the unusable unit or state


def read_entity(
    hass: HomeAssistant,
    entity_id: str,
    kind: Kind,
    *,
    now: datetime | None = None,
    stale_after: timedelta | None = None,
) -> Reading:
    """Read one entity's state, converted; staleness counts from its last report."""
    state = hass.states.get(entity_id)
    if state is None:
        return Reading(entity_id, None, Problem.MISSING)
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    convert = converter(kind, unit)
    if state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return Reading(entity_id, None, Problem.UNAVAILABLE)
    if convert is None:
        return Reading(entity_id, None, Problem.BAD_UNIT, str(unit) if unit else "")
    try:
        raw = float(state.state)
    except ValueError:
        raw = math.nan
    if not math.isfinite(raw):
        return Reading(entity_id, None, Problem.NOT_NUMERIC, state.state)
    if stale_after is not None and now is not None and now - state.last_reported > stale_after:
        return Reading(entity_id, None, Problem.STALE)
    value = convert(raw)
    if not math.isfinite(value):  # 1e308 kW is a finite state but no power in W
        return Reading(entity_id, None, Problem.NOT_NUMERIC, state.state)
    return Reading(entity_id, value)


def flow_error(hass: HomeAssistant, entity_id: str, kind: Kind) -> str | None:
    """Why the options flow refuses an entity (an error key), or None.

    An entity that is unavailable right now (an inverter asleep at night) is accepted when its
    unit is usable or not known yet; a unit that is known and wrong, or a state that is not a
    number, is refused.
    """
    state = hass.states.get(entity_id)
    if state is None:
        return "entity_missing"
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    unavailable = state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN)
    if converter(kind, unit) is None and not (unavailable and unit is None):
        return f"unit_{kind.value}"
    if unavailable:
        return None
    reading = read_entity(hass, entity_id, kind)
    return "not_numeric" if reading.problem is Problem.NOT_NUMERIC else None


# Role (= its option key) -> what it measures. Power flows are checked for staleness; a state of
# charge, a forecast, a PV energy meter and a carbon intensity change slowly and are updated by
# their integrations every 15 minutes to an hour, so they count only when unavailable.
ROLE_KINDS: Mapping[str, Kind] = {
    CONF_GRID_POWER: Kind.POWER,
    CONF_GRID_IMPORT: Kind.POWER,
    CONF_GRID_EXPORT: Kind.POWER,
    CONF_PV_POWER: Kind.POWER,
    CONF_LOAD_POWER: Kind.POWER,
    CONF_BATTERY_POWER: Kind.POWER,
    CONF_BATTERY_CHARGE: Kind.POWER,
    CONF_BATTERY_DISCHARGE: Kind.POWER,
    CONF_BATTERY_SOC: Kind.PERCENT,
    CONF_PV_FORECAST: Kind.ENERGY,
    CONF_PV_FORECAST_TOMORROW: Kind.ENERGY,
    CONF_PV_ENERGY: Kind.ENERGY,
    CONF_CARBON_INTENSITY: Kind.CARBON,
}


@dataclass(frozen=True, slots=True)
class Flows:
    """The home's flows at one moment, signed as the controller wants them."""

    grid_w: float | None  # + import, - export
    battery_w: float | None  # + discharge, - charge
    battery_soc: float | None
    forecast_remaining_wh: float | None
    pv_energy_wh: float | None
    carbon_g_per_kwh: float | None
    readings: Mapping[str, Reading] = field(default_factory=dict)
    forecast_tomorrow_wh: float | None = None
    forecast_detail: tuple[Period, ...] = ()  # from the forecast entities' attributes

    @property
    def problems(self) -> dict[str, Reading]:
        """The inputs without a usable reading, by role."""
        return {role: r for role, r in self.readings.items() if r.problem is not None}


def _sub(a: float | None, b: float | None) -> float | None:
    """a - b, or None when either is unknown or the difference overflows."""
    if a is None or b is None or not math.isfinite(a - b):
        return None
    return a - b


OPTIONAL_ROLES = (
    CONF_PV_FORECAST,
    CONF_PV_FORECAST_TOMORROW,
    CONF_PV_ENERGY,
    CONF_CARBON_INTENSITY,
)
# The forecast entities whose attributes may hold the forecast's detail (`forecast`).
FORECAST_ROLES = (CONF_PV_FORECAST, CONF_PV_FORECAST_TOMORROW)


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    """The gate's inputs and behaviour, as chosen in the options flow."""

    grid_source: str
    grid_sign: float  # multiplies the signed grid sensor into + import
    battery_source: str | None
    battery_sign: float  # multiplies the signed battery sensor into + discharge
    entities: Mapping[str, str]  # role -> entity id
    battery_capacity_wh: float | None
    stale_after: timedelta
    fail_open: bool
    inference_power_w: float

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> GateConfig | None:
        """The gate's configuration, or None when the gate is not set up."""
        grid_source = options.get(CONF_GRID_SOURCE)
        if grid_source not in (GRID_SOURCE_SIGNED, GRID_SOURCE_IMPORT_EXPORT, GRID_SOURCE_PV_LOAD):
            return None
        battery_source = options.get(CONF_BATTERY_SOURCE)
        if battery_source not in (BATTERY_SOURCE_SIGNED, BATTERY_SOURCE_CHARGE_DISCHARGE):
            battery_source = None
        capacity = options.get(CONF_BATTERY_CAPACITY)
        return cls(
            grid_source=grid_source,
            grid_sign=-1.0 if options.get(CONF_GRID_SIGN) == SIGN_EXPORT_POSITIVE else 1.0,
            battery_source=battery_source,
            battery_sign=-1.0 if options.get(CONF_BATTERY_SIGN) == SIGN_CHARGE_POSITIVE else 1.0,
            entities={
                role: options[role]
                for role in cls.roles(grid_source, battery_source)
                if options.get(role)
            },
            battery_capacity_wh=float(capacity) * 1000 if capacity and battery_source else None,
            stale_after=timedelta(seconds=options.get(CONF_STALE_AFTER, DEFAULT_STALE_AFTER)),
            fail_open=bool(options.get(CONF_FAIL_OPEN, False)),
            inference_power_w=float(options.get(CONF_INFERENCE_POWER, DEFAULT_INFERENCE_POWER)),
        )

    @staticmethod
    def roles(grid_source: str, battery_source: str | None) -> list[str]:
        """The roles a combination of sources uses: required ones first, then optional ones."""
        roles = {
            GRID_SOURCE_SIGNED: [CONF_GRID_POWER],
            GRID_SOURCE_IMPORT_EXPORT: [CONF_GRID_IMPORT, CONF_GRID_EXPORT],
            GRID_SOURCE_PV_LOAD: [CONF_PV_POWER, CONF_LOAD_POWER],
        }.get(grid_source, [])
        if battery_source == BATTERY_SOURCE_SIGNED:
            roles += [CONF_BATTERY_POWER, CONF_BATTERY_SOC]
        elif battery_source == BATTERY_SOURCE_CHARGE_DISCHARGE:
            roles += [CONF_BATTERY_CHARGE, CONF_BATTERY_DISCHARGE, CONF_BATTERY_SOC]
        return [*roles, *OPTIONAL_ROLES]

    @property
    def meter_key(self) -> tuple[str, ...]:
        """The house's grid meter: the gates that read the same one share a site (`site`)."""
        grid = self.roles(self.grid_source, None)[: -len(OPTIONAL_ROLES)]
        return (self.grid_source, *(self.entities.get(role, "") for role in grid))

    @property
    def has_battery(self) -> bool:
        """Whether the home has a battery the gate accounts for."""
        return self.battery_source is not None

    def signed_flows(self, values: Mapping[str, float]) -> tuple[float | None, float | None]:
        """Grid (+ import, - export) and battery (+ discharge, - charge) W from the roles' values
        in W, in the configured sources and signs: the live readings, or an hour's statistics.
        None where a value they need is missing."""
        value = values.get
        battery_w: float | None = None
        if self.battery_source == BATTERY_SOURCE_SIGNED:
            power = value(CONF_BATTERY_POWER)
            battery_w = None if power is None else power * self.battery_sign
        elif self.battery_source == BATTERY_SOURCE_CHARGE_DISCHARGE:
            battery_w = _sub(value(CONF_BATTERY_DISCHARGE), value(CONF_BATTERY_CHARGE))

        grid_w: float | None
        if self.grid_source == GRID_SOURCE_SIGNED:
            power = value(CONF_GRID_POWER)
            grid_w = None if power is None else power * self.grid_sign
        elif self.grid_source == GRID_SOURCE_IMPORT_EXPORT:
            grid_w = _sub(value(CONF_GRID_IMPORT), value(CONF_GRID_EXPORT))
        else:
            # PV + grid + battery discharge = house load.
            grid_w = _sub(value(CONF_LOAD_POWER), value(CONF_PV_POWER))
            if grid_w is not None and self.has_battery:
                grid_w = _sub(grid_w, battery_w)
        return grid_w, battery_w

    def read(self, hass: HomeAssistant, now: datetime) -> Flows:
        """Read every configured input and combine them into signed flows."""
        readings = {
            role: read_entity(
                hass,
                entity_id,
                ROLE_KINDS[role],
                now=now,
                stale_after=self.stale_after if ROLE_KINDS[role] is Kind.POWER else None,
            )
            for role, entity_id in self.entities.items()
        }
        values = {role: r.value for role, r in readings.items() if r.value is not None}
        grid_w, battery_w = self.signed_flows(values)
        return Flows(
            grid_w=grid_w,
            battery_w=battery_w,
            battery_soc=values.get(CONF_BATTERY_SOC),
            forecast_remaining_wh=values.get(CONF_PV_FORECAST),
            pv_energy_wh=values.get(CONF_PV_ENERGY),
            carbon_g_per_kwh=values.get(CONF_CARBON_INTENSITY),
            readings=readings,
            forecast_tomorrow_wh=values.get(CONF_PV_FORECAST_TOMORROW),
            forecast_detail=forecast_detail(
                *(
                    state.attributes
                    for role in FORECAST_ROLES
                    if role in self.entities
                    and (state := hass.states.get(self.entities[role])) is not None
                )
            ),
        )
