"""The planner's forecast inputs from what forecast integrations and statistics give (pure Python,
no Home Assistant): hourly detail from a forecast entity's attributes, the house's load profile
from hourly means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from custom_components.joulegate.batch_plan import LoadProfile, Period
from custom_components.joulegate.forecast import derived_load, forecast_detail, load_profile

BRISBANE = timezone(timedelta(hours=10))
NOON = datetime(2026, 6, 22, 12, 0, tzinfo=BRISBANE)
H = 3600.0


def at(hour: float) -> float:
    return (NOON + timedelta(hours=hour - 12)).timestamp()


def solcast(hours: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """Solcast's detail as its sensor holds it: period_start a datetime in the local zone."""
    return [
        {
            "period_start": NOON + timedelta(hours=start - 12),
            "pv_estimate": kw,
            "pv_estimate10": kw * 0.6,
            "pv_estimate90": kw * 1.2,
        }
        for start, kw in hours
    ]


def test_solcast_s_hourly_detail_is_average_kilowatts_for_each_hour() -> None:
    attributes = {"detailedHourly": solcast([(11, 2.5), (12, 3.0)])}
    assert forecast_detail(attributes) == (
        Period(at(11), at(12), 2500.0),
        Period(at(12), at(13), 3000.0),
    )


def test_solcast_s_half_hourly_detail_counts_half_an_hour_each() -> None:
    attributes = {"detailedForecast": solcast([(12, 3.0), (12.5, 2.0)])}
    assert forecast_detail(attributes) == (
        Period(at(12), at(12.5), 1500.0),
        Period(at(12.5), at(13), 1000.0),
    )


def test_solcast_s_detail_read_back_as_text_is_the_same() -> None:
    """Attributes restored or passed through a template hold ISO strings, not datetimes."""
    rows = [{"period_start": "2026-06-22T12:00:00+10:00", "pv_estimate": 1.2}]
    assert forecast_detail({"detailedHourly": rows}) == (Period(at(12), at(13), 1200.0),)


def test_open_meteo_s_wh_period_is_energy_in_the_period_starting_then() -> None:
    """Open-Meteo Solar Forecast (as Forecast.Solar) keys Wh by the period's start, ISO text."""
    attributes = {
        "watts": {"2026-06-22T12:00:00+10:00": 3100},
        "wh_period": {
            "2026-06-22T12:00:00+10:00": 2900,
            "2026-06-22T13:00:00+10:00": 2500,
            "2026-06-22T11:00:00+10:00": 2700,
        },
    }
    assert forecast_detail(attributes) == (
        Period(at(11), at(12), 2700.0),
        Period(at(12), at(13), 2900.0),
        Period(at(13), at(14), 2500.0),
    )


def test_a_wh_period_of_quarter_hours_keeps_its_step() -> None:
    attributes = {
        "wh_period": {
            "2026-06-22T12:00:00+10:00": 700,
            "2026-06-22T12:15:00+10:00": 650,
        }
    }
    assert forecast_detail(attributes) == (
        Period(at(12), at(12.25), 700.0),
        Period(at(12.25), at(12.5), 650.0),
    )


def test_a_wh_period_starting_off_the_hour_keeps_its_hours() -> None:
    """Forecast.Solar-style keys: the first at sunrise, two minutes before the hour; each period
    runs to the next key, the hours stay hours."""
    attributes = {
        "wh_period": {
            "2026-06-22T05:58:00+10:00": 10,
            "2026-06-22T06:00:00+10:00": 400,
            "2026-06-22T07:00:00+10:00": 900,
        }
    }
    assert forecast_detail(attributes) == (
        Period(at(5 + 58 / 60), at(6), 10.0),
        Period(at(6), at(7), 400.0),
        Period(at(7), at(8), 900.0),
    )


def test_a_wh_period_over_two_days_does_not_spread_an_evening_over_the_night() -> None:
    attributes = {
        "wh_period": {
            "2026-06-22T17:00:00+10:00": 300,
            "2026-06-22T18:00:00+10:00": 100,
            "2026-06-23T06:00:00+10:00": 200,
            "2026-06-23T07:00:00+10:00": 800,
        }
    }
    assert forecast_detail(attributes) == (
        Period(at(17), at(18), 300.0),
        Period(at(18), at(19), 100.0),
        Period(at(30), at(31), 200.0),
        Period(at(31), at(32), 800.0),
    )


def test_bad_entries_are_skipped_and_the_rest_kept() -> None:
    rows: list[Any] = [
        "not a row",
        {"period_start": "yesterday", "pv_estimate": 1.0},
        {"period_start": "2026-06-22T12:00:00", "pv_estimate": 1.0},  # no zone
        {"period_start": NOON, "pv_estimate": "lots"},
        {"period_start": NOON, "pv_estimate": -1.0},
        {"period_start": NOON, "pv_estimate": float("nan")},
        {"period_start": NOON, "pv_estimate": True},
        {"pv_estimate": 1.0},
        {"period_start": NOON + timedelta(hours=1), "pv_estimate": 0.8},
    ]
    assert forecast_detail({"detailedHourly": rows}) == (Period(at(13), at(14), 800.0),)


@pytest.mark.parametrize(
    "attributes",
    [
        {"detailedHourly": [{"period_start": NOON, "pv_estimate": 10**400}]},
        {"detailedHourly": [{"period_start": NOON, "pv_estimate": 1e306}]},  # inf Wh
        {"wh_period": {NOON.isoformat(): 10**400}},
    ],
)
def test_numbers_too_large_to_be_energy_are_skipped(attributes: dict[str, Any]) -> None:
    assert forecast_detail(attributes) == ()


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"detailedHourly": "soon"},
        {"detailedHourly": []},
        {"wh_period": ["2026-06-22T12:00:00+10:00"]},
        {"wh_period": {"noon": 100}},
        {"friendly_name": "Forecast remaining today", "unit_of_measurement": "kWh"},
    ],
)
def test_an_entity_without_usable_detail_gives_none(attributes: dict[str, Any]) -> None:
    assert forecast_detail(attributes) == ()


def test_two_entities_detail_is_joined_and_an_hour_both_give_counts_once() -> None:
    """Today's and tomorrow's entities; where both cover an hour, the first one's is kept."""
    today = {"detailedHourly": solcast([(12, 3.0), (13, 2.0)])}
    tomorrow = {"wh_period": {(NOON + timedelta(hours=1)).isoformat(): 9999, "x": 1}}
    later = {"detailedHourly": solcast([(36, 1.0)])}
    assert forecast_detail(today, tomorrow, later) == (
        Period(at(12), at(13), 3000.0),
        Period(at(13), at(14), 2000.0),
        Period(at(36), at(37), 1000.0),
    )


def test_the_load_profile_is_the_median_of_each_local_hour() -> None:
    samples = [(hour, 300.0) for hour in range(24)] + [(hour, 500.0) for hour in range(24)]
    samples += [(19, 1400.0)]
    profile = load_profile(samples, time_zone="Australia/Brisbane")
    assert profile is not None
    assert profile.time_zone == "Australia/Brisbane"
    assert profile.hourly_w[3] == 400.0
    assert profile.hourly_w[19] == 500.0


def test_one_day_s_outlier_does_not_move_the_load_profile() -> None:
    """A lifetime PV meter that read 0 for a moment: the recorder counts a reset, and that hour's
    change is the whole lifetime total, 12 MWh. The other six days' 600 W stand."""
    samples = [(13, 600.0)] * 6 + [(13, 12_000_000.0)]
    profile = load_profile(samples, time_zone="UTC")
    assert profile is not None
    assert profile.hourly_w[13] == 600.0
    assert profile.hourly_w[14] == 600.0


def test_an_hour_without_statistics_takes_the_median_of_all_hours() -> None:
    samples = [(hour, 400.0) for hour in range(23)] + [(7, 1550.0)]
    profile = load_profile(samples, time_zone="UTC")
    assert profile is not None
    assert profile.hourly_w[23] == 400.0


def test_no_statistics_no_load_profile() -> None:
    assert load_profile([], time_zone="UTC") is None


def test_the_load_profile_skips_means_that_are_no_power() -> None:
    samples = [(hour, 250.0) for hour in range(24)] + [(2, float("nan")), (2, -30.0), (25, 9.0)]
    assert load_profile(samples, time_zone="UTC") == LoadProfile((250.0,) * 24, "UTC")


def test_the_load_profile_is_read_in_local_time() -> None:
    profile = load_profile([(hour, float(hour)) for hour in range(24)], "Australia/Brisbane")
    assert profile is not None
    assert profile.watts(datetime(2026, 6, 22, 9, 30, tzinfo=UTC).timestamp()) == 19.0


def test_the_house_s_load_is_pv_plus_grid_import_plus_battery_discharge() -> None:
    """1000 Wh of PV in the hour, 400 W exported, 200 W into the battery: the house drew 400 W."""
    assert derived_load({at(10): 1000.0}, {at(10): -400.0}, {at(10): -200.0}) == [(at(10), 400.0)]


def test_without_a_battery_the_house_s_load_is_pv_plus_grid_import() -> None:
    assert derived_load({at(10): 300.0}, {at(10): 250.0}, None) == [(at(10), 550.0)]


def test_an_hour_that_a_meter_misses_gives_no_load() -> None:
    pv = {at(9): 100.0, at(10): 200.0, at(11): 300.0}
    grid = {at(9): 50.0, at(10): 50.0}
    battery = {at(10): 0.0, at(11): 0.0}
    assert derived_load(pv, grid, battery) == [(at(10), 250.0)]


def test_an_hour_whose_meters_disagree_gives_no_load() -> None:
    """More exported than the PV made (meters that read at other moments): the hour tells
    nothing about the house, not that it drew none."""
    pv = {at(10): 100.0, at(11): 500.0}
    grid = {at(10): -300.0, at(11): -300.0}
    assert derived_load(pv, grid, None) == [(at(11), 200.0)]
