"""Property tests for the gate's readers of the home's entities (custom_components/joulegate/
inputs.py): whatever state an entity holds (not a number, NaN, infinities, negative, huge, wrong
or missing unit, unavailable), reading it never raises and gives either a finite number in the
base unit or a named problem; and the signed flows built from any set of states are finite or
unknown, never NaN or infinite.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from custom_components.joulegate.inputs import (
    ROLE_KINDS,
    GateConfig,
    Kind,
    Problem,
    converter,
    read_entity,
)

from .fakes.home import GATE_OPTIONS

SETTINGS = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
UNITS = [None, "W", "kW", "MW", "mW", "GW", "Wh", "kWh", "MWh", "%", "gCO2eq/kWh", "A", "", "°C"]
NUMBERS = st.one_of(
    st.floats(),  # NaN and infinities included
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0.0, -0.0, -1.0, -250.5, 1e308, -1e308, 5e-324]),
)
STATES = st.one_of(
    NUMBERS.map(str),
    st.sampled_from(
        [
            "unavailable",
            "unknown",
            "",
            " ",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "1_000",
            "0x10",
        ]
    ),
    st.sampled_from(["importing", "on", "charging", "12 W", "1,5", "\u0663\u0664", "None"]),
    st.text(max_size=12),
)
NOW = dt_util.utcnow()
ANY_READING_PROBLEMS = {Problem.UNAVAILABLE, Problem.BAD_UNIT, Problem.NOT_NUMERIC, Problem.STALE}


def check_reading(value: float | None, problem: Problem | None) -> None:
    if problem is None:
        assert value is not None
        assert math.isfinite(value), value
    else:
        assert value is None
        assert problem in ANY_READING_PROBLEMS


@pytest.mark.parametrize(
    "kind",
    [
        Kind.POWER,
        Kind.ENERGY,
        Kind.PERCENT,
        Kind.CARBON,
    ],
)
async def test_any_entity_state_reads_as_a_finite_value_or_a_problem(
    hass: HomeAssistant, kind: Kind
) -> None:
    entity = "sensor.input"

    @SETTINGS
    @given(state=STATES, unit=st.sampled_from(UNITS), age_s=st.integers(0, 3600))
    @example(state="1e308", unit="kW", age_s=0)  # finite, but not once converted to W
    @example(state="1e308", unit="kWh", age_s=0)  # nor to Wh
    def read(state: str, unit: str | None, age_s: int) -> None:
        attributes = {} if unit is None else {"unit_of_measurement": unit}
        reported = NOW - timedelta(seconds=age_s)
        hass.states.async_set(entity, state, attributes, timestamp=reported.timestamp())
        reading = read_entity(hass, entity, kind, now=NOW, stale_after=timedelta(minutes=5))
        check_reading(reading.value, reading.problem)
        if state in ("unavailable", "unknown"):
            assert reading.problem is Problem.UNAVAILABLE
        elif converter(kind, unit) is None:
            assert reading.problem is Problem.BAD_UNIT
        else:
            try:
                number = float(state)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                assert reading.problem is Problem.NOT_NUMERIC

    read()


@pytest.mark.parametrize("kind", [Kind.POWER, Kind.ENERGY])
async def test_negative_readings_keep_their_sign_through_the_units(
    hass: HomeAssistant, kind: Kind
) -> None:
    """A signed meter (grid export, battery charge) reads the same magnitude either way."""
    entity = "sensor.signed"
    units = ["W", "kW", "MW"] if kind is Kind.POWER else ["Wh", "kWh", "MWh"]

    @SETTINGS
    @given(value=st.floats(min_value=0, max_value=1e9), unit=st.sampled_from(units))
    def read(value: float, unit: str) -> None:
        readings = []
        for signed in (value, -value):
            hass.states.async_set(entity, str(signed), {"unit_of_measurement": unit})
            readings.append(read_entity(hass, entity, kind).value)
        plus, minus = readings
        assert plus is not None
        assert minus is not None
        assert minus == pytest.approx(-plus)

    read()


async def test_flows_from_any_states_are_finite_or_unknown(hass: HomeAssistant) -> None:
    """The gate's signed flows from any mix of states of its configured entities."""
    config = GateConfig.from_options(GATE_OPTIONS)
    assert config is not None
    roles = sorted(config.entities)

    @SETTINGS
    @given(
        st.fixed_dictionaries({role: st.tuples(STATES, st.sampled_from(UNITS)) for role in roles})
    )
    def read(states: dict[str, tuple[str, str | None]]) -> None:
        for role, (state, unit) in states.items():
            attributes: dict[str, Any] = {} if unit is None else {"unit_of_measurement": unit}
            hass.states.async_set(config.entities[role], state, attributes)
        flows = config.read(hass, dt_util.utcnow())
        for value in (
            flows.grid_w,
            flows.battery_w,
            flows.battery_soc,
            flows.forecast_remaining_wh,
            flows.pv_energy_wh,
            flows.carbon_g_per_kwh,
        ):
            assert value is None or math.isfinite(value), flows
        for role, reading in flows.readings.items():
            assert role in ROLE_KINDS
            check_reading(reading.value, reading.problem)

    read()
