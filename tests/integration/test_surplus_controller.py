"""The surplus controller and the attribution of inference energy (pure Python, no HA)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.joulegate.surplus import (
    BatteryPolicy,
    Decision,
    GateMode,
    Inputs,
    Reason,
    Settings,
    SurplusController,
    attribute,
    rig_above_idle,
)

NEED_W = 10.0
STEP_S = 10.0


def run(controller: SurplusController, readings: list[Inputs]) -> list[Decision]:
    return [controller.step(r) for r in readings]


def export_only(seconds: float, export_w: float, start: float = 0.0) -> list[Inputs]:
    """A house exporting `export_w` before the rig's own draw, no battery; the rig draws NEED_W
    whenever the gate is open (fed back in by `simulate`)."""
    return [Inputs(now=start + i * STEP_S, grid_w=-export_w) for i in range(int(seconds / STEP_S))]


def simulate(
    controller: SurplusController,
    seconds: float,
    export_w: float,
    *,
    battery_w: float | None = None,
    soc: float | None = None,
) -> list[Decision]:
    """Close the loop: when the gate is open the rig draws NEED_W, which the meters see."""
    decisions = []
    for i in range(int(seconds / STEP_S)):
        rig = NEED_W if controller.is_open else 0.0
        has_battery = battery_w is not None
        if has_battery:
            assert battery_w is not None
            grid, battery = rig - export_w, battery_w
            if battery_w > 0:  # a battery holding the grid at zero covers the rig too
                grid, battery = 0.0, battery_w + rig
        else:
            grid, battery = rig - export_w, None
        decisions.append(
            controller.step(
                Inputs(
                    now=i * STEP_S,
                    grid_w=grid,
                    rig_inference_w=rig,
                    has_battery=has_battery,
                    battery_w=battery,
                    battery_soc=soc,
                )
            )
        )
    return decisions


def test_constant_surplus_of_1_2_times_the_rig_opens_the_gate_and_keeps_it_open() -> None:
    decisions = simulate(SurplusController(Settings(need_w=NEED_W)), 3600, 1.2 * NEED_W)
    first_open = next(i for i, d in enumerate(decisions) if d.open)
    assert all(d.open for d in decisions[first_open:])
    assert first_open * STEP_S <= 600


def test_a_rig_that_draws_little_opens_after_a_minute_of_ample_surplus() -> None:
    # 600 J banked at the 2 W rig's own rate would take five minutes; the opening counts the
    # surplus up to 10 W, the rig the gate's 1/6 Wh is a minute of.
    controller = SurplusController(Settings(need_w=2.0))
    decisions = run(controller, export_only(600, 50.0))
    opened = next(i for i, d in enumerate(decisions) if d.open)
    assert opened * STEP_S == 60.0


def test_without_the_add_back_the_rigs_own_draw_would_erase_the_surplus() -> None:
    controller = SurplusController(Settings(need_w=NEED_W))
    decisions = simulate(controller, 3600, 1.2 * NEED_W)
    assert decisions[-1].surplus_w == pytest.approx(1.2 * NEED_W)


def test_at_night_a_battery_holding_the_grid_at_zero_keeps_the_gate_closed() -> None:
    for policy in BatteryPolicy:
        if policy is BatteryPolicy.BALANCED:
            continue
        controller = SurplusController(Settings(need_w=NEED_W, policy=policy))
        decisions = simulate(controller, 4 * 3600, 0.0, battery_w=300.0, soc=80.0)
        assert not any(d.open for d in decisions), policy


def test_battery_first_stays_closed_while_the_battery_can_absorb_the_surplus() -> None:
    controller = SurplusController(Settings(need_w=NEED_W, policy=BatteryPolicy.BATTERY_FIRST))
    decisions = simulate(controller, 3600, 0.0, battery_w=-1500.0, soc=60.0)
    assert not any(d.open for d in decisions)
    assert decisions[-1].reason is Reason.BATTERY_FIRST


def test_battery_first_opens_when_the_battery_is_full() -> None:
    controller = SurplusController(Settings(need_w=NEED_W, policy=BatteryPolicy.BATTERY_FIRST))
    decisions = simulate(controller, 3600, 50.0, battery_w=0.0, soc=100.0)
    assert decisions[-1].open


def test_battery_first_opens_on_export_the_charging_battery_cannot_take() -> None:
    controller = SurplusController(Settings(need_w=NEED_W, policy=BatteryPolicy.BATTERY_FIRST))
    decisions = simulate(controller, 3600, 200.0, battery_w=-3000.0, soc=60.0)
    assert decisions[-1].open


def test_inference_first_runs_on_the_batterys_charge_power() -> None:
    controller = SurplusController(Settings(need_w=NEED_W, policy=BatteryPolicy.INFERENCE_FIRST))
    decisions = simulate(controller, 3600, 0.0, battery_w=-1500.0, soc=60.0)
    assert decisions[-1].open


def test_inference_first_below_the_reserve_leaves_the_battery_alone() -> None:
    settings_ = Settings(need_w=NEED_W, policy=BatteryPolicy.INFERENCE_FIRST, reserve_soc=30.0)
    decisions = simulate(SurplusController(settings_), 3600, 0.0, battery_w=-1500.0, soc=20.0)
    assert not decisions[-1].open
    assert decisions[-1].reason is Reason.BATTERY_RESERVE


@pytest.mark.parametrize(("forecast_wh", "opens"), [(20_000.0, True), (500.0, False)])
def test_balanced_runs_inference_first_only_while_the_forecast_fills_the_battery(
    forecast_wh: float, opens: bool
) -> None:
    controller = SurplusController(
        Settings(need_w=NEED_W, policy=BatteryPolicy.BALANCED, battery_capacity_wh=10_000.0)
    )
    for i in range(360):
        rig = NEED_W if controller.is_open else 0.0
        decision = controller.step(
            Inputs(
                now=i * STEP_S,
                grid_w=0.0,
                rig_inference_w=rig,
                has_battery=True,
                battery_w=-1500.0 + rig,
                battery_soc=50.0,
                forecast_remaining_wh=forecast_wh,
            )
        )
    assert decision.open is opens
    if not opens:
        assert decision.reason is Reason.FORECAST_TOO_LOW


def test_balanced_without_a_forecast_is_an_unavailable_input() -> None:
    controller = SurplusController(Settings(policy=BatteryPolicy.BALANCED))
    decision = controller.step(
        Inputs(now=0, grid_w=-500, has_battery=True, battery_w=0.0, battery_soc=50.0)
    )
    assert (decision.open, decision.reason) == (False, Reason.INPUT_UNAVAILABLE)


def test_the_gate_closes_at_the_first_reading_with_too_little_surplus() -> None:
    controller = SurplusController(Settings(need_w=NEED_W))
    simulate(controller, 1800, 100.0)
    assert controller.is_open
    decision = controller.step(Inputs(now=1800, grid_w=50.0, rig_inference_w=NEED_W))
    assert (decision.open, decision.reason) == (False, Reason.NO_SURPLUS)


def test_the_gate_waits_the_minimum_off_time_before_reopening() -> None:
    controller = SurplusController(Settings(need_w=NEED_W, min_off_s=300.0))
    simulate(controller, 1800, 100.0)
    controller.step(Inputs(now=1800, grid_w=50.0, rig_inference_w=NEED_W))
    decision = controller.step(Inputs(now=1810, grid_w=-500.0, rig_inference_w=0.0))
    assert decision.reason is Reason.MINIMUM_OFF_TIME


def close_after(seconds: float, controller: SurplusController) -> float:
    """Open the gate on a steady export for `seconds`, then close it with a deficit; returns the
    time of the close."""
    simulate(controller, seconds, 100.0)
    assert controller.is_open
    assert not controller.step(Inputs(now=seconds, grid_w=50.0, rig_inference_w=NEED_W)).open
    return seconds


def reopen_times(controller: SurplusController, closed_at: float) -> list[float]:
    """When, in the ten minutes after a close, a steady export would have the gate open."""
    times = [closed_at + i * STEP_S for i in range(1, 61)]
    return [t for t in times if controller.step(Inputs(now=t, grid_w=-500.0)).open]


def test_after_a_long_run_the_gate_reopens_after_the_shorter_off_time() -> None:
    controller = SurplusController(
        Settings(need_w=NEED_W, min_off_s=300.0, long_run_s=600.0, off_after_long_run_s=120.0)
    )
    closed_at = close_after(1800.0, controller)
    assert reopen_times(controller, closed_at)[0] == closed_at + 120.0


def test_after_a_short_run_the_full_minimum_off_time_applies() -> None:
    controller = SurplusController(
        Settings(need_w=NEED_W, min_off_s=300.0, long_run_s=600.0, off_after_long_run_s=120.0)
    )
    closed_at = close_after(300.0, controller)
    assert reopen_times(controller, closed_at)[0] == closed_at + 300.0


def test_the_off_time_after_a_long_run_never_exceeds_the_minimum_off_time() -> None:
    controller = SurplusController(
        Settings(need_w=NEED_W, min_off_s=60.0, long_run_s=600.0, off_after_long_run_s=120.0)
    )
    closed_at = close_after(1800.0, controller)
    assert reopen_times(controller, closed_at)[0] == closed_at + 60.0


def test_a_grid_reading_missing_for_longer_than_the_hold_closes_the_gate_and_says_so() -> None:
    controller = SurplusController(Settings(need_w=NEED_W))
    simulate(controller, 1800, 100.0)  # the last good reading is at 1790 s
    hold_s = controller.settings.hold_s
    held = controller.step(Inputs(now=1790 + hold_s, grid_w=None, rig_inference_w=NEED_W))
    assert held.open
    decision = controller.step(
        Inputs(now=1790 + hold_s + STEP_S, grid_w=None, rig_inference_w=NEED_W)
    )
    assert (decision.open, decision.reason) == (False, Reason.INPUT_UNAVAILABLE)


def open_home(controller: SurplusController, export_w: float = 500.0) -> float:
    """Run a house with a battery until the gate is open; returns the next reading's time."""
    now = 0.0
    while not controller.is_open:
        controller.step(battery_home(now, export_w=export_w))
        now += STEP_S
        assert now < 3600
    return now


def battery_home(now: float, export_w: float = 500.0, **changes: float | None) -> Inputs:
    """A full battery and a house exporting `export_w` with the rig running."""
    values: dict[str, float | None] = {
        "grid_w": -export_w,
        "rig_inference_w": NEED_W,
        "battery_w": 0.0,
        "battery_soc": 100.0,
        "forecast_remaining_wh": 20_000.0,
    }
    values |= changes
    return Inputs(now=now, has_battery=True, **values)


INPUT_FIELDS = ("grid_w", "rig_inference_w", "battery_w", "battery_soc", "forecast_remaining_wh")
NOT_A_READING = (None, math.nan, math.inf, -math.inf)


@pytest.mark.parametrize("missing", NOT_A_READING)
@pytest.mark.parametrize("field", INPUT_FIELDS)
def test_an_input_missing_for_one_reading_keeps_an_open_gate_open(
    field: str, missing: float | None
) -> None:
    controller = SurplusController(
        Settings(need_w=NEED_W, policy=BatteryPolicy.BALANCED, battery_capacity_wh=10_000.0)
    )
    now = open_home(controller)
    decision = controller.step(battery_home(now, **{field: missing}))
    assert (decision.open, decision.reason) == (True, Reason.SURPLUS)
    assert controller.step(battery_home(now + STEP_S)).open


def test_a_blip_of_every_input_for_the_hold_time_neither_closes_nor_starts_the_off_time() -> None:
    controller = SurplusController(Settings(need_w=NEED_W))
    now = open_home(controller)
    hold_s = controller.settings.hold_s
    blip = dict.fromkeys(INPUT_FIELDS)
    for i in range(int(hold_s / STEP_S)):
        assert controller.step(battery_home(now + i * STEP_S, **blip)).open
    assert controller.step(battery_home(now + hold_s)).open


@pytest.mark.parametrize("missing", NOT_A_READING)
@pytest.mark.parametrize("field", INPUT_FIELDS)
def test_an_input_missing_for_longer_than_the_hold_closes_the_gate(
    field: str, missing: float | None
) -> None:
    controller = SurplusController(
        Settings(need_w=NEED_W, policy=BatteryPolicy.BALANCED, battery_capacity_wh=10_000.0)
    )
    now = open_home(controller)
    last_good = now - STEP_S
    hold_s = controller.settings.hold_s
    decision = controller.step(battery_home(last_good + hold_s + 1.0, **{field: missing}))
    assert (decision.open, decision.reason) == (False, Reason.INPUT_UNAVAILABLE)


def test_a_deficit_reading_during_a_blip_still_closes_at_once() -> None:
    controller = SurplusController(Settings(need_w=NEED_W))
    now = open_home(controller)
    decision = controller.step(battery_home(now, export_w=-300.0, rig_inference_w=None))
    assert (decision.open, decision.reason) == (False, Reason.NO_SURPLUS)


def test_a_closed_gate_neither_opens_nor_banks_on_held_readings() -> None:
    controller = SurplusController(Settings(need_w=NEED_W, open_after_wh=NEED_W * 60 / 3600))
    controller.step(battery_home(0.0, rig_inference_w=0.0))
    decisions = [
        controller.step(battery_home(t, grid_w=None, rig_inference_w=0.0)) for t in (10.0, 20.0)
    ]
    assert [(d.open, d.reason) for d in decisions] == [(False, Reason.INPUT_UNAVAILABLE)] * 2
    # Only fresh readings bank: a minute's worth takes six more of them, as without the blip.
    fresh = [
        controller.step(battery_home(30.0 + i * STEP_S, rig_inference_w=0.0)) for i in range(6)
    ]
    assert [d.open for d in fresh] == [False] * 5 + [True]


@pytest.mark.parametrize("policy", [BatteryPolicy.BATTERY_FIRST, BatteryPolicy.INFERENCE_FIRST])
def test_a_blip_of_the_forecast_does_not_delay_a_policy_that_does_not_read_it(
    policy: BatteryPolicy,
) -> None:
    """Only balanced reads the forecast: under the others its blip is no missing input, so the
    gate opens on the reading that banks the last of the surplus, as without the blip."""
    controller = SurplusController(
        Settings(need_w=NEED_W, policy=policy, open_after_wh=NEED_W * 60 / 3600)
    )
    readings = [battery_home(i * STEP_S, rig_inference_w=0.0) for i in range(7)]
    readings[-1] = battery_home(6 * STEP_S, rig_inference_w=0.0, forecast_remaining_wh=None)
    decisions = run(controller, readings)
    assert [d.open for d in decisions] == [False] * 6 + [True]


@pytest.mark.parametrize("grid_w", [math.nan, math.inf, -math.inf])
def test_a_grid_reading_that_is_not_finite_never_opens_the_gate(grid_w: float) -> None:
    controller = SurplusController(Settings(need_w=NEED_W))
    decisions = [controller.step(Inputs(now=i * STEP_S, grid_w=grid_w)) for i in range(360)]
    assert not any(d.open for d in decisions)
    assert decisions[-1].reason is Reason.INPUT_UNAVAILABLE


def test_a_temperature_that_is_not_finite_keeps_the_last_thermal_state() -> None:
    controller = SurplusController(Settings(mode=GateMode.ALWAYS, thermal_limit_c=70.0))
    temps = [80.0, math.nan, 60.0, math.nan]
    opened = [
        controller.step(Inputs(now=i, grid_w=0.0, temperature_c=t)).open
        for i, t in enumerate(temps)
    ]
    assert opened == [False, False, True, True]


def test_a_user_can_choose_to_fail_open() -> None:
    controller = SurplusController(Settings(fail_open=True))
    assert controller.step(Inputs(now=0, grid_w=None)).open


def test_too_hot_closes_and_reopens_only_below_the_hysteresis() -> None:
    controller = SurplusController(
        Settings(mode=GateMode.ALWAYS, thermal_limit_c=70.0, thermal_hysteresis_c=5.0)
    )
    temps = [60.0, 71.0, 68.0, 66.0, 64.0]
    opened = [
        controller.step(Inputs(now=i, grid_w=0.0, temperature_c=t)).open
        for i, t in enumerate(temps)
    ]
    assert opened == [True, False, False, False, True]


def test_throttling_closes_the_gate() -> None:
    controller = SurplusController(Settings(mode=GateMode.ALWAYS))
    decision = controller.step(Inputs(now=0, grid_w=0.0, throttling=True))
    assert (decision.open, decision.reason) == (False, Reason.THROTTLING)


def test_modes_always_and_never_force_the_gate() -> None:
    assert (
        SurplusController(Settings(mode=GateMode.ALWAYS)).step(Inputs(now=0, grid_w=500)).reason
        is Reason.FORCED_ON
    )
    never = SurplusController(Settings(mode=GateMode.NEVER)).step(Inputs(now=0, grid_w=-5000))
    assert (never.open, never.reason) == (False, Reason.FORCED_OFF)


readings = st.lists(
    st.tuples(
        st.floats(min_value=1.0, max_value=120.0),
        st.one_of(st.none(), st.floats(min_value=-5000, max_value=5000)),
        st.floats(min_value=0, max_value=20),
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(readings)
def test_never_open_while_a_required_input_is_missing_for_longer_than_the_hold(
    steps: list[tuple[float, float | None, float]],
) -> None:
    controller = SurplusController(Settings(need_w=NEED_W))
    now = 0.0
    last_good = -math.inf
    for dt, grid, rig in steps:
        now += dt
        decision = controller.step(Inputs(now=now, grid_w=grid, rig_inference_w=rig))
        if grid is not None:
            last_good = now
        elif now - last_good > controller.settings.hold_s:
            assert not decision.open


@settings(max_examples=200, deadline=None)
@given(readings, st.floats(min_value=0, max_value=900))
def test_never_reopens_sooner_than_the_minimum_off_time(
    steps: list[tuple[float, float | None, float]], min_off: float
) -> None:
    controller = SurplusController(Settings(need_w=NEED_W, min_off_s=min_off))
    now = 0.0
    closed_at = -math.inf
    was_open = False
    for dt, grid, rig in steps:
        now += dt
        decision = controller.step(Inputs(now=now, grid_w=grid, rig_inference_w=rig))
        if was_open and not decision.open:
            closed_at = now
        if decision.open and not was_open:
            assert now - closed_at >= min_off
        was_open = decision.open


def test_attribution_of_a_rig_on_export_is_all_solar() -> None:
    assert attribute(10.0, grid_w=-490.0) == attribute(10.0, grid_w=-490.0, battery_w=0.0)
    parts = attribute(10.0, grid_w=-490.0)
    assert (parts.solar, parts.battery, parts.grid) == (10.0, 0.0, 0.0)


def test_attribution_splits_a_partial_surplus_between_solar_and_grid() -> None:
    parts = attribute(10.0, grid_w=6.0)
    assert (parts.solar, parts.battery, parts.grid) == pytest.approx((4.0, 0.0, 6.0))


def test_attribution_at_night_comes_from_the_discharging_battery() -> None:
    parts = attribute(10.0, grid_w=0.0, battery_w=300.0)
    assert (parts.solar, parts.battery, parts.grid) == pytest.approx((0.0, 10.0, 0.0))


def test_attribution_takes_battery_then_grid_when_the_battery_cannot_cover_it() -> None:
    parts = attribute(10.0, grid_w=7.0, battery_w=3.0)
    assert (parts.solar, parts.battery, parts.grid) == pytest.approx((0.0, 3.0, 7.0))


def test_attribution_of_charge_power_the_rig_took_is_solar() -> None:
    parts = attribute(10.0, grid_w=0.0, battery_w=-1490.0)
    assert parts.solar == pytest.approx(10.0)


@given(
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=-10000, max_value=10000),
    st.one_of(st.none(), st.floats(min_value=-5000, max_value=5000)),
)
def test_attribution_parts_always_add_up_to_the_rigs_power(
    rig: float, grid: float, battery: float | None
) -> None:
    parts = attribute(rig, grid, battery)
    assert min(parts.solar, parts.battery, parts.grid) >= 0
    assert parts.solar + parts.battery + parts.grid == pytest.approx(rig)


@pytest.mark.parametrize(
    ("policy", "forecast_wh"),
    [
        (BatteryPolicy.BATTERY_FIRST, None),
        (BatteryPolicy.INFERENCE_FIRST, None),  # below the reserve too
        (BatteryPolicy.BALANCED, 0.0),  # and a forecast too low
    ],
)
def test_at_night_the_reason_is_no_surplus_not_the_battery_policy(
    policy: BatteryPolicy, forecast_wh: float | None
) -> None:
    """The policy is the reason only where the sun would otherwise have paid for the rig."""
    controller = SurplusController(
        Settings(need_w=NEED_W, policy=policy, reserve_soc=30.0, battery_capacity_wh=10_000.0)
    )
    night = Inputs(
        now=0,
        grid_w=0.0,
        rig_inference_w=0.0,
        has_battery=True,
        battery_w=300.0,
        battery_soc=20.0,
        forecast_remaining_wh=forecast_wh,
    )
    assert controller.step(night).reason is Reason.NO_SURPLUS
    # The same battery charging on sunshine: now the policy is what keeps the gate closed.
    day = Inputs(
        now=10,
        grid_w=0.0,
        rig_inference_w=0.0,
        has_battery=True,
        battery_w=-1500.0,
        battery_soc=20.0,
        forecast_remaining_wh=forecast_wh,
    )
    assert controller.step(day).reason in {
        Reason.BATTERY_FIRST,
        Reason.BATTERY_RESERVE,
        Reason.FORECAST_TOO_LOW,
    }


def test_an_unknown_battery_reading_is_an_unavailable_input() -> None:
    controller = SurplusController(Settings(policy=BatteryPolicy.INFERENCE_FIRST))
    decision = controller.step(
        Inputs(now=0, grid_w=-500, has_battery=True, battery_w=None, battery_soc=50.0)
    )
    assert (decision.open, decision.reason) == (False, Reason.INPUT_UNAVAILABLE)


def test_a_long_pause_between_readings_banks_no_more_than_a_minute_of_surplus() -> None:
    controller = SurplusController(Settings(need_w=NEED_W, open_after_wh=NEED_W * 120 / 3600))
    controller.step(Inputs(now=0.0, grid_w=-500.0))
    decision = controller.step(Inputs(now=3600.0, grid_w=-500.0))
    assert (decision.open, decision.reason) == (False, Reason.WAITING_FOR_SURPLUS)


@pytest.mark.parametrize(
    ("board_w", "baseline_w"),
    [(math.nan, 4.0), (math.inf, 4.0), (9.0, math.nan), (1e308, -1e308)],
)
def test_a_rig_power_that_is_not_finite_is_unavailable_not_idle(
    board_w: float, baseline_w: float
) -> None:
    assert rig_above_idle(board_w, baseline_w) is None


def test_a_rig_without_an_idle_baseline_yet_counts_as_idle() -> None:
    assert rig_above_idle(9.0, None) == 0.0
    assert rig_above_idle(3.0, 4.0) == 0.0
    assert rig_above_idle(None, 4.0) is None


@pytest.mark.parametrize("field", INPUT_FIELDS[:4])
def test_the_surplus_of_a_reading_that_is_not_finite_is_unknown(field: str) -> None:
    """The level controllers read `surplus()` without stepping: NaN must not reach them either."""
    controller = SurplusController(Settings(need_w=NEED_W))
    reading = battery_home(0.0, **{field: math.nan})
    assert controller.surplus(reading) == (None, None)
