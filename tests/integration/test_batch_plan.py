"""The deadline planner for batch work (pure Python, no Home Assistant)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.joulegate.batch_plan import (
    Batch,
    LoadProfile,
    Period,
    PlanInputs,
    PlanReason,
    PlanSettings,
    WhenSunFails,
    expected_solar_s,
    forecast_periods,
    plan,
)
from custom_components.joulegate.surplus import BatteryPolicy

H = 3600.0
RIG_W = 10.0
NO_BATTERY = PlanSettings(
    policy=BatteryPolicy.INFERENCE_FIRST, margin_share=0.1, hold_s=900.0, cycle_s=10.0
)


def batch(deadline: float, run_h: float, longest_s: float = 30.0, **kw: object) -> Batch:
    """A batch needing `run_h` hours at the rig's RIG_W."""
    return Batch(
        deadline=deadline,
        energy_wh=run_h * RIG_W,
        run_s=run_h * H,
        longest_s=longest_s,
        **kw,  # type: ignore[arg-type]
    )


def sunny(start_h: float, end_h: float, watts: float = 2000.0) -> Period:
    return Period(start_h * H, end_h * H, watts * (end_h - start_h))


def latest_start(deadline: float, run_h: float, longest_s: float = 30.0) -> float:
    """Deadline minus the run, the longest request, a tenth of the run and a 10-s cycle."""
    return deadline - run_h * H - longest_s - 0.1 * run_h * H - 10.0


def test_nothing_waiting_admits_nothing() -> None:
    result = plan(PlanInputs(now=0.0, batches=[]), NO_BATTERY)
    assert (result.admit, result.reason, result.latest_start) == (False, PlanReason.IDLE, None)


def test_a_batch_the_forecast_sun_covers_waits_for_surplus() -> None:
    inputs = PlanInputs(now=0.0, batches=[batch(24 * H, 2.5)], forecast=[sunny(8, 16)])
    result = plan(inputs, NO_BATTERY)
    assert (result.admit, result.reason) == (False, PlanReason.ON_SUN)
    assert result.shortfall_wh == 0.0
    assert result.expected_solar_wh == pytest.approx(25.0)


def test_without_enough_sun_the_deadline_run_waits_for_the_latest_start() -> None:
    inputs = PlanInputs(now=0.0, batches=[batch(24 * H, 2.5)], forecast=[sunny(8, 9)])
    result = plan(inputs, NO_BATTERY)
    assert (result.admit, result.reason) == (False, PlanReason.WAITING)
    assert result.latest_start == pytest.approx(latest_start(24 * H, 2.5))
    # one sunny hour, of which 70 % is counted on: 0.7 h of the 2.5 h, the rest from the grid
    assert result.expected_solar_wh == pytest.approx(7.0)
    assert result.shortfall_wh == pytest.approx(18.0)


def test_at_the_latest_start_batch_work_is_admitted_for_the_run_it_needs() -> None:
    now = latest_start(24 * H, 2.5)
    result = plan(PlanInputs(now=now, batches=[batch(24 * H, 2.5)]), NO_BATTERY)
    assert (result.admit, result.reason) == (True, PlanReason.DEADLINE)
    assert result.for_s == pytest.approx(2.5 * H)
    assert not result.late
    assert not plan(PlanInputs(now=now - 10.0, batches=[batch(24 * H, 2.5)]), NO_BATTERY).admit


def test_the_margin_holds_the_longest_request_and_a_share_of_the_run() -> None:
    long_requests = batch(24 * H, 2.5, longest_s=600.0)
    result = plan(PlanInputs(now=0.0, batches=[long_requests]), NO_BATTERY)
    assert result.latest_start == pytest.approx(24 * H - 2.5 * H - 600.0 - 0.25 * H - 10.0)


def test_a_run_due_before_the_next_cycle_starts_at_this_one() -> None:
    minute_cycles = PlanSettings(policy=BatteryPolicy.INFERENCE_FIRST, cycle_s=60.0)
    deadline = 24 * H
    # 60 s to run, 30-s requests: due at 96 s before the deadline, asked at 120 s and 60 s
    inputs = PlanInputs(now=deadline - 120.0, batches=[batch(deadline, 60.0 / H)])
    assert plan(inputs, minute_cycles).admit
    assert not plan(inputs, NO_BATTERY).admit


def test_sunshine_before_the_latest_start_does_not_make_it_earlier_it_shrinks_the_run() -> None:
    """The admission does not depend on the forecast: waiting costs no deadline."""
    at = latest_start(24 * H, 1.0) - 1.0
    bright = PlanInputs(now=at, batches=[batch(24 * H, 1.0)], forecast=[sunny(0, 24)])
    dark = PlanInputs(now=at, batches=[batch(24 * H, 1.0)])
    assert not plan(bright, NO_BATTERY).admit
    assert not plan(dark, NO_BATTERY).admit


def test_a_batch_past_its_last_chance_is_admitted_and_flagged_late() -> None:
    result = plan(PlanInputs(now=23 * H, batches=[batch(24 * H, 2.0)]), NO_BATTERY)
    assert (result.admit, result.reason, result.late) == (True, PlanReason.DEADLINE, True)


def test_the_thermal_limit_wins_over_a_deadline() -> None:
    inputs = PlanInputs(now=23.5 * H, batches=[batch(24 * H, 0.5)], too_hot=True)
    result = plan(inputs, NO_BATTERY)
    assert (result.admit, result.reason) == (False, PlanReason.TOO_HOT)


def test_a_batch_that_may_expire_never_gets_a_deadline_run() -> None:
    expiring = batch(24 * H, 2.0, when_sun_fails=WhenSunFails.EXPIRE)
    result = plan(PlanInputs(now=23 * H, batches=[expiring]), NO_BATTERY)
    assert (result.admit, result.reason) == (False, PlanReason.EXPIRE)


def test_expire_as_the_default_applies_to_batches_that_do_not_choose() -> None:
    default_expire = PlanSettings(when_sun_fails=WhenSunFails.EXPIRE)
    chosen_grid = batch(24 * H, 2.0, when_sun_fails=WhenSunFails.GRID)
    assert not plan(PlanInputs(now=23 * H, batches=[batch(24 * H, 2.0)]), default_expire).admit
    assert plan(PlanInputs(now=23 * H, batches=[chosen_grid]), default_expire).admit


def test_a_battery_only_batch_runs_on_the_battery_down_to_its_reserve() -> None:
    on_battery = PlanSettings(
        when_sun_fails=WhenSunFails.BATTERY, battery_capacity_wh=10_000.0, reserve_soc=20.0
    )
    due = latest_start(24 * H, 2.0)
    charged = PlanInputs(now=due, batches=[batch(24 * H, 2.0)], battery_soc=60.0)
    empty = PlanInputs(now=due, batches=[batch(24 * H, 2.0)], battery_soc=20.0)
    assert plan(charged, on_battery).admit
    result = plan(empty, on_battery)
    assert (result.admit, result.reason) == (False, PlanReason.BATTERY_LOW)


def test_batches_run_earliest_deadline_first_so_a_later_one_counts_the_earlier_ones_run() -> None:
    daily, weekly = batch(24 * H, 2.0), batch(26 * H, 4.0)
    result = plan(PlanInputs(now=0.0, batches=[weekly, daily]), NO_BATTERY)
    # By 26 h both must have run: 6 h, margin 30 s and 0.6 h (earlier than the daily's own)
    assert result.latest_start == pytest.approx(latest_start(26 * H, 6.0))
    assert result.deadline == 26 * H


def test_an_expiring_batch_due_first_still_takes_its_run_time_before_a_later_deadline() -> None:
    expiring = batch(24 * H, 2.0, when_sun_fails=WhenSunFails.EXPIRE)
    result = plan(PlanInputs(now=0.0, batches=[expiring, batch(26 * H, 2.0)]), NO_BATTERY)
    assert result.latest_start == pytest.approx(latest_start(26 * H, 4.0))


def test_an_admitted_deadline_run_keeps_going_while_it_is_less_than_the_hold_early() -> None:
    """Each minute run shrinks the margin's share, which would move the latest start later than
    now: without the hold the run would stop and start every cycle."""
    start = latest_start(24 * H, 2.0)
    after_a_minute = PlanInputs(now=start + 60.0, batches=[batch(24 * H, 2.0 - 60.0 / H)])
    assert not plan(after_a_minute, NO_BATTERY).admit
    held = PlanInputs(now=start + 60.0, batches=[batch(24 * H, 2.0 - 60.0 / H)], admitted=True)
    assert plan(held, NO_BATTERY).admit
    far_early = PlanInputs(now=0.0, batches=[batch(24 * H, 2.0)], admitted=True)
    assert not plan(far_early, NO_BATTERY).admit


def test_past_the_forecasts_horizon_no_surplus_is_assumed() -> None:
    inputs = PlanInputs(now=0.0, batches=[batch(48 * H, 10.0)], forecast=[sunny(8, 12)])
    assert plan(inputs, NO_BATTERY).expected_solar_wh == pytest.approx(0.7 * 4 * RIG_W)


def test_the_forecast_error_discount_counts_only_a_share_of_the_forecast() -> None:
    inputs = PlanInputs(now=0.0, batches=[batch(24 * H, 3.0)], forecast=[sunny(8, 12)])
    counted_fully = PlanSettings(policy=BatteryPolicy.INFERENCE_FIRST, forecast_factor=1.0)
    assert plan(inputs, counted_fully).reason is PlanReason.ON_SUN
    assert plan(inputs, NO_BATTERY).reason is PlanReason.WAITING


def test_the_houses_expected_load_comes_off_the_forecast_hour_by_hour() -> None:
    # 300 W of PV each hour from 0 to 4; the house uses 295 W in hours 0-1 and 100 W after
    load = LoadProfile(hourly_w=(295.0, 295.0, *([100.0] * 22)))
    inputs = PlanInputs(now=0.0, batches=[batch(24 * H, 4.0)], forecast=[sunny(0, 4, 300.0)])
    loaded = PlanInputs(
        now=0.0, batches=[batch(24 * H, 4.0)], forecast=[sunny(0, 4, 300.0)], load=load
    )
    assert expected_solar_s(inputs, 24 * H, RIG_W, 0.0) == pytest.approx(4 * H)
    # 5 W left in the first two hours: half of the rig's 10 W, so half of each hour
    assert expected_solar_s(loaded, 24 * H, RIG_W, 0.0) == pytest.approx(3 * H)


def test_the_load_profile_follows_local_time() -> None:
    profile = LoadProfile(hourly_w=tuple(float(h) for h in range(24)), time_zone="Etc/GMT-2")
    assert profile.watts(0.0) == 2.0
    assert profile.watts(23 * H) == 1.0


def test_the_load_profile_follows_a_daylight_saving_change_within_the_horizon() -> None:
    """Amsterdam leaves summer time on 25 October 2026: noon UTC is 14:00 local before, 13:00
    after, and the profile gives each day its own local hour."""
    profile = LoadProfile(hourly_w=tuple(float(h) for h in range(24)), time_zone="Europe/Amsterdam")
    assert profile.watts(datetime(2026, 10, 24, 12, tzinfo=UTC).timestamp()) == 14.0
    assert profile.watts(datetime(2026, 10, 26, 12, tzinfo=UTC).timestamp()) == 13.0


def test_a_load_profile_needs_a_known_time_zone() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        LoadProfile(hourly_w=(1.0,) * 24, time_zone="Mars/Olympus")


BATTERY_FIRST = PlanSettings(
    policy=BatteryPolicy.BATTERY_FIRST, battery_capacity_wh=10_000.0, forecast_factor=1.0
)


def test_battery_first_fills_the_battery_before_the_gate_gives_the_rig_sun() -> None:
    # 2 kW for 5 h: the first 4 kWh (2 h) go to the battery (98 % - 58 %), the last 3 h to the rig
    inputs = PlanInputs(
        now=0.0, batches=[batch(24 * H, 4.0)], forecast=[sunny(8, 13)], battery_soc=58.0
    )
    assert expected_solar_s(inputs, 24 * H, RIG_W, 4000.0) == pytest.approx(3 * H)
    assert plan(inputs, BATTERY_FIRST).reason is PlanReason.WAITING
    inference_first = PlanSettings(
        policy=BatteryPolicy.INFERENCE_FIRST, battery_capacity_wh=10_000.0, forecast_factor=1.0
    )
    assert plan(inputs, inference_first).reason is PlanReason.ON_SUN


def test_what_the_gate_will_not_give_is_taken_from_sunshine_the_battery_would_take() -> None:
    """Battery first, 3.5 h to run: the gate is expected to give 3 h at most; batch work runs
    whenever the PV covers the house and the rig, even while the battery charges."""

    def at(hour: float, *, sun_now: bool) -> PlanInputs:
        return PlanInputs(
            now=hour * H,
            batches=[batch(24 * H, 3.5)],
            forecast=[sunny(8, 13)],
            battery_soc=58.0,
            sun_now=sun_now,
        )

    admitted = plan(at(8.5, sun_now=True), BATTERY_FIRST)
    assert (admitted.admit, admitted.reason) == (True, PlanReason.DEADLINE)
    waiting = plan(at(8.5, sun_now=False), BATTERY_FIRST)
    assert (waiting.admit, waiting.reason) == (False, PlanReason.WAITING)


def test_a_shortfall_is_not_taken_from_the_sun_when_the_gate_is_expected_to_cover_it() -> None:
    inputs = PlanInputs(
        now=9.5 * H,
        batches=[batch(24 * H, 1.0)],
        forecast=[sunny(8, 13)],
        battery_soc=58.0,
        sun_now=True,
    )
    assert plan(inputs, BATTERY_FIRST).reason is PlanReason.ON_SUN


def test_balanced_fills_the_battery_first_unless_today_s_forecast_alone_covers_it() -> None:
    """As the surplus controller's balanced rule: 4 kWh left today do not cover the battery's
    4.8-kWh gap 1.2 times, so the battery takes them first, however sunny tomorrow is."""
    balanced = PlanSettings(
        policy=BatteryPolicy.BALANCED, battery_capacity_wh=10_000.0, forecast_factor=0.7
    )
    inputs = PlanInputs(
        now=12 * H,
        batches=[batch(23 * H, 2.0)],
        forecast=[sunny(14, 18, 1000.0), sunny(32, 40)],
        battery_soc=50.0,
        today_end=24 * H,
    )
    assert plan(inputs, balanced).reason is PlanReason.WAITING


def test_hourly_detail_is_preferred_to_a_days_total() -> None:
    hourly = [Period(10 * H, 11 * H, 500.0), Period(11 * H, 12 * H, 800.0)]
    periods = forecast_periods(9 * H, remaining_today_wh=5000.0, today_end=24 * H, hourly=hourly)
    assert periods == hourly


def test_a_days_total_is_spread_over_what_is_left_of_it() -> None:
    periods = forecast_periods(
        9 * H,
        remaining_today_wh=5000.0,
        today_end=24 * H,
        tomorrow_wh=12000.0,
        tomorrow_end=48 * H,
    )
    assert periods == [Period(9 * H, 24 * H, 5000.0), Period(24 * H, 48 * H, 12000.0)]


def test_a_days_total_is_spread_over_its_daylight() -> None:
    periods = forecast_periods(
        9 * H,
        remaining_today_wh=5000.0,
        today_end=24 * H,
        tomorrow_wh=12000.0,
        tomorrow_end=48 * H,
        today_daylight=(5 * H, 21 * H),
        tomorrow_daylight=(29 * H, 45 * H),
    )
    assert periods == [Period(9 * H, 21 * H, 5000.0), Period(29 * H, 45 * H, 12000.0)]


def test_today_s_figure_after_sunset_gives_no_sun() -> None:
    periods = forecast_periods(
        22 * H, remaining_today_wh=300.0, today_end=24 * H, today_daylight=(5 * H, 21 * H)
    )
    assert periods == []


def test_without_a_sunrise_or_sunset_a_day_s_total_is_spread_over_the_whole_day() -> None:
    """Polar day or night: no daylight window is known, the day as a whole counts."""
    periods = forecast_periods(
        9 * H,
        remaining_today_wh=5000.0,
        today_end=24 * H,
        tomorrow_wh=12000.0,
        tomorrow_end=48 * H,
        today_daylight=None,
        tomorrow_daylight=None,
    )
    assert periods == [Period(9 * H, 24 * H, 5000.0), Period(24 * H, 48 * H, 12000.0)]


def test_bad_input_is_refused_with_the_field_it_concerns() -> None:
    with pytest.raises(ValueError, match="run_s"):
        Batch(deadline=0.0, energy_wh=1.0, run_s=float("nan"), longest_s=1.0)
    with pytest.raises(ValueError, match="end > start"):
        Period(10.0, 5.0, 1.0)
    with pytest.raises(ValueError, match="24 hourly"):
        LoadProfile(hourly_w=(1.0, 2.0))


CYCLE_S = 600.0


@settings(max_examples=200, deadline=None)
@given(
    sun=st.lists(st.booleans(), min_size=144, max_size=144),
    run_cycles=st.integers(min_value=1, max_value=100),
    forecast_sunny=st.booleans(),
)
def test_whatever_the_sun_does_a_batch_that_may_use_the_grid_finishes_by_its_deadline(
    sun: list[bool], run_cycles: int, forecast_sunny: bool
) -> None:
    """A day of 10-minute cycles: the rig runs when the sun lets it or the plan admits it."""
    deadline = 144 * CYCLE_S
    left = run_cycles * CYCLE_S
    admitted = False
    forecast = [Period(0.0, deadline, 100_000.0)] if forecast_sunny else []
    for cycle, sunshine in enumerate(sun):
        if left <= 0:
            break
        now = cycle * CYCLE_S
        work = Batch(deadline, left * RIG_W / H, left, longest_s=CYCLE_S)
        result = plan(PlanInputs(now, [work], forecast, admitted=admitted), NO_BATTERY)
        admitted = result.admit
        if sunshine or result.admit:
            left -= CYCLE_S
    assert left <= 0
