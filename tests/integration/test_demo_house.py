"""The demo's simulated house, as its sensors show it in Home Assistant."""

from __future__ import annotations

from datetime import UTC, datetime

from demo.sunny_day import Flows


def test_a_reading_that_rounds_to_zero_is_not_minus_zero() -> None:
    """A battery idling at -0.04 W showed as "Battery -0 W"."""
    flows = Flows(
        sim_time=datetime(2026, 6, 21, 12, tzinfo=UTC),
        pv_w=0.0,
        clear_sky_w=0.0,
        house_w=300.0,
        rig_w=10.0,
        battery_w=-0.04,
        battery_soc=50.0,
        grid_w=-0.01,
        forecast_remaining_kwh=0.0,
        pv_energy_kwh=0.0,
        shade=0.0,
    )
    event = flows.as_event()
    assert str(event["battery_w"]) == "0.0"
    assert str(event["grid_w"]) == "0.0"
