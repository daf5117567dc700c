"""The level controller: the rung of a rig's ladder the surplus pays for (pure Python, no HA)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from custom_components.joulegate.levels import (
    Level,
    LevelController,
    LevelCost,
    LevelDecision,
    LevelMode,
    LevelReason,
    ladder_for,
    ladder_from_costs,
)
from custom_components.joulegate.surplus import (
    BatteryPolicy,
    GateMode,
    Inputs,
    Reason,
    Settings,
    SurplusController,
)

STEP_S = 10.0
# J/token: 0.5, 0.545, 0.4, 0.545 -> the efficient ladder is L7 and L25.
L7 = Level("7W", 4.0, 8.0)
L15 = Level("15W", 6.0, 11.0)
L25 = Level("25W", 8.0, 20.0)
MAXN = Level("MAXN", 12.0, 22.0)
LADDER = (L7, L15, L25, MAXN)
NO_WAIT = Settings(min_off_s=0.0)


def simulate(
    controller: LevelController,
    seconds: float,
    export_w: float,
    *,
    start: float = 0.0,
    soc: float | None = None,
    charge_w: float = 0.0,
    forecast_wh: float | None = None,
) -> list[LevelDecision]:
    """Close the loop: the rig draws its level's power, which the grid meter sees (and the
    agent measures). `export_w` is what the house exports without the rig; with `soc`, a
    battery charging at `charge_w` sits in front of the export."""
    decisions = []
    for i in range(int(seconds / STEP_S)):
        level = controller.rung.index
        draw = 0.0 if level is None else controller.ladder[level].marginal_w
        reading = Inputs(
            now=start + i * STEP_S,
            grid_w=draw - export_w,
            rig_inference_w=draw,
            has_battery=soc is not None,
            battery_w=None if soc is None else -charge_w,
            battery_soc=soc,
            forecast_remaining_wh=forecast_wh,
        )
        decisions.append(controller.step(reading))
    return decisions


def keys(decisions: list[LevelDecision]) -> list[str | None]:
    return [None if d.level is None else d.level.key for d in decisions]


def test_a_sustained_surplus_opens_the_gate_straight_at_the_highest_level() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    decisions = simulate(controller, 300, export_w=100.0)
    opened = next(i for i, d in enumerate(decisions) if d.open)
    assert decisions[opened].level == MAXN
    assert decisions[-1].reason is LevelReason.TOP_LEVEL


@pytest.mark.parametrize("watts", [7.0, 13.0, 25.0])
def test_a_rig_opens_at_its_top_level_exactly_when_the_on_off_gate_would(watts: float) -> None:
    top = Level("top", watts, 20.0)
    controller = LevelController((Level("low", 2.0, 5.0), top), NO_WAIT)
    gate = SurplusController(replace(NO_WAIT, need_w=watts))
    levels = simulate(controller, 300, export_w=3 * watts)
    gate_open = [
        gate.step(Inputs(now=i * STEP_S, grid_w=-3 * watts, rig_inference_w=0.0)).open
        for i in range(30)
    ]
    assert [d.level == top for d in levels].index(True) == gate_open.index(True)


def test_each_climb_waits_for_a_minute_of_its_extra_power_banked() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    # 14 W: 7W opens after the gate's minute (its 10 W opening clip banks 600 J); 25W's 4 W above
    # 7W (240 J) banks 4 W a second, a minute; MAXN's 4 W above 25W banks only the 2 W left.
    decisions = simulate(controller, 600, export_w=14.0)
    changes = [i for i in range(1, len(decisions)) if decisions[i].index != decisions[i - 1].index]
    assert [keys(decisions)[i] for i in changes] == ["7W", "25W", "MAXN"]
    assert [b - a for a, b in itertools.pairwise(changes)] == [6, 12]


def test_a_surplus_between_two_levels_keeps_the_rig_on_the_lower_one() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    decisions = simulate(controller, 900, export_w=10.0)
    assert decisions[-1].level == L25
    assert decisions[-1].reason is LevelReason.SURPLUS_LIMITED


def test_the_rig_steps_down_at_the_first_short_reading_to_the_level_that_still_fits() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    simulate(controller, 600, export_w=20.0)
    after = simulate(controller, 10, export_w=7.0, start=600.0)
    assert after[0].level == L15


def test_the_gate_closes_only_below_the_lowest_level() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    simulate(controller, 600, export_w=20.0)
    at_lowest = simulate(controller, 10, export_w=4.0, start=600.0)
    assert at_lowest[0].level == L7
    below = simulate(controller, 10, export_w=3.9, start=610.0)
    assert not below[0].open
    assert below[0].reason is Reason.NO_SURPLUS


def test_opening_at_a_low_level_waits_for_as_much_banked_energy_as_the_gate_does() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    # 5 W: the 4 W level banks 1 W a second; the gate opens after 600 J (1/6 Wh), not 240 J.
    decisions = simulate(controller, 900, export_w=5.0)
    opened = next(i for i, d in enumerate(decisions) if d.open)
    assert opened * STEP_S == 600.0
    assert decisions[opened - 1].reason is Reason.WAITING_FOR_SURPLUS


def test_a_lowest_level_that_draws_little_opens_after_a_minute_of_ample_surplus() -> None:
    # A 0.4 W level banking at its own rate would need 25 minutes for the gate's 600 J, and any
    # dip on the way would empty the bank: the rig would hardly ever open.
    controller = LevelController((Level("low", 0.4, 1.0), Level("top", 10.0, 20.0)), NO_WAIT)
    decisions = simulate(controller, 600, export_w=12.0)
    opened = next(i for i, d in enumerate(decisions) if d.open)
    assert opened * STEP_S == 60.0
    assert keys(decisions)[opened] == "low"


def test_a_brief_surplus_does_not_step_the_rig_up() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    assert simulate(controller, 700, export_w=5.0)[-1].level == L7
    spike = simulate(controller, 20, export_w=30.0, start=700.0)
    back = simulate(controller, 60, export_w=5.0, start=720.0)
    assert keys(spike + back) == ["7W"] * 8
    assert spike[-1].reason is LevelReason.WAITING_TO_STEP_UP


def test_efficiency_mode_runs_the_most_tokens_per_joule_the_surplus_pays_for() -> None:
    controller = LevelController(LADDER, NO_WAIT, mode=LevelMode.EFFICIENT)
    decisions = simulate(controller, 900, export_w=20.0)
    assert decisions[-1].level == L25  # MAXN fits but costs more per token
    assert decisions[-1].reason is LevelReason.TOP_LEVEL
    short = LevelController(LADDER, NO_WAIT, mode=LevelMode.EFFICIENT)
    assert simulate(short, 900, export_w=7.0)[-1].level == L7  # 15W fits but is less efficient


def test_the_efficient_ladder_keeps_only_levels_better_than_every_cheaper_one() -> None:
    assert ladder_for(LADDER, LevelMode.EFFICIENT) == (L7, L25)
    assert ladder_for(LADDER, LevelMode.FASTEST) == LADDER


def test_efficiency_mode_skips_unmeasured_levels_and_falls_back_to_all_while_none_is_measured() -> (
    None
):
    unmeasured = Level("25W", 8.0)
    assert ladder_for((L7, unmeasured, MAXN), LevelMode.EFFICIENT) == (L7,)
    blind = (Level("a", 4.0), Level("b", 8.0))
    assert ladder_for(blind, LevelMode.EFFICIENT) == blind


def test_switching_to_efficiency_mode_brings_the_rig_down_to_its_ladder() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    simulate(controller, 600, export_w=20.0)
    controller.set_mode(LevelMode.EFFICIENT)
    assert controller.ladder[controller.rung.index or 0] == L25


def test_battery_first_pays_levels_only_with_what_the_battery_cannot_take() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    # 500 W exported past a battery charging 40 W below full: it takes no more, all is surplus.
    assert simulate(controller, 600, export_w=500.0, soc=60.0, charge_w=40.0)[-1].level == MAXN
    held = LevelController(LADDER, NO_WAIT)
    # Nothing exported, the battery takes all 40 W of surplus: battery first keeps the rig off.
    decisions = simulate(held, 600, export_w=0.0, soc=60.0, charge_w=40.0)
    assert not decisions[-1].open
    inference_first = LevelController(
        LADDER, Settings(min_off_s=0.0, policy=BatteryPolicy.INFERENCE_FIRST)
    )
    assert simulate(inference_first, 600, export_w=0.0, soc=60.0, charge_w=40.0)[-1].level == MAXN


def test_after_closing_the_gate_reopens_only_after_the_minimum_off_time() -> None:
    controller = LevelController(LADDER, Settings(min_off_s=300.0))
    simulate(controller, 600, export_w=20.0)
    simulate(controller, 10, export_w=0.0, start=600.0)
    soon = simulate(controller, 240, export_w=20.0, start=610.0)
    assert not any(d.open for d in soon)
    assert soon[-1].reason is Reason.MINIMUM_OFF_TIME
    later = simulate(controller, 120, export_w=20.0, start=850.0)
    assert later[-1].open


LONG_RUN = Settings(min_off_s=300.0, long_run_s=600.0, off_after_long_run_s=120.0)


def off_time_after_a_run(run_s: float) -> float:
    """Run the rig for `run_s`, close it with one reading of no surplus, and return how long it
    stays closed under a steady surplus."""
    controller = LevelController(LADDER, LONG_RUN)
    simulate(controller, run_s, export_w=20.0)
    assert not simulate(controller, 10, export_w=0.0, start=run_s)[-1].open
    after = simulate(controller, 600, export_w=20.0, start=run_s + STEP_S)
    return STEP_S + STEP_S * next(i for i, d in enumerate(after) if d.open)


def test_after_a_long_run_the_rig_reopens_after_the_gates_shorter_off_time() -> None:
    assert off_time_after_a_run(1800.0) == 120.0


def test_after_a_short_run_the_rig_waits_the_full_minimum_off_time() -> None:
    assert off_time_after_a_run(300.0) == 300.0


def test_too_hot_closes_the_gate_at_any_level_and_reopens_below_the_hysteresis() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    simulate(controller, 600, export_w=20.0)
    hot = controller.step(Inputs(now=600.0, grid_w=-8.0, rig_inference_w=12.0, temperature_c=80))
    assert (hot.open, hot.reason) == (False, Reason.TOO_HOT)
    warm = controller.step(Inputs(now=610.0, grid_w=-20.0, rig_inference_w=0.0, temperature_c=72))
    assert warm.reason is Reason.TOO_HOT
    cool = controller.step(Inputs(now=620.0, grid_w=-20.0, rig_inference_w=0.0, temperature_c=69))
    assert cool.reason is Reason.WAITING_FOR_SURPLUS


def test_forced_on_runs_the_top_level_and_forced_off_closes() -> None:
    controller = LevelController(LADDER, Settings(mode=GateMode.ALWAYS))
    assert controller.step(Inputs(now=0.0, grid_w=100.0)).level == MAXN
    controller.update_settings(mode=GateMode.NEVER)
    off = controller.step(Inputs(now=10.0, grid_w=-100.0))
    assert (off.open, off.reason) == (False, Reason.FORCED_OFF)


def test_a_blip_in_the_readings_does_not_step_the_level_down() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    assert simulate(controller, 300, export_w=20.0)[-1].level == MAXN
    blip = controller.step(Inputs(now=300.0, grid_w=None, rig_inference_w=None))
    assert blip.level == MAXN
    assert simulate(controller, 10, export_w=20.0, start=310.0)[0].level == MAXN


def test_held_readings_do_not_step_the_level_up() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    simulate(controller, 700, export_w=5.0)
    simulate(controller, 50, export_w=30.0, start=700.0)  # five of the six climbing cycles
    held = [controller.step(Inputs(now=750.0 + i * STEP_S, grid_w=None)) for i in range(3)]
    assert keys(held) == ["7W"] * 3


def test_a_blip_of_the_forecast_does_not_hold_back_a_ladder_that_does_not_read_it() -> None:
    """Battery first never reads the forecast: the sixth climbing cycle steps up without it
    exactly as with it."""
    with_blip, without = LevelController(LADDER, NO_WAIT), LevelController(LADDER, NO_WAIT)
    for controller in (with_blip, without):
        simulate(controller, 700, export_w=5.0, forecast_wh=9000.0)
        simulate(controller, 50, export_w=30.0, start=700.0, forecast_wh=9000.0)
    climbed = simulate(with_blip, 10, export_w=30.0, start=750.0)
    expected = simulate(without, 10, export_w=30.0, start=750.0, forecast_wh=9000.0)
    assert keys(climbed) == keys(expected) != ["7W"]


def test_an_unavailable_grid_reading_closes_the_gate_once_the_hold_runs_out() -> None:
    controller = LevelController(LADDER, NO_WAIT)
    simulate(controller, 300, export_w=20.0)
    hold_s = controller.settings.hold_s
    decision = controller.step(Inputs(now=290.0 + hold_s + STEP_S, grid_w=None))
    assert (decision.open, decision.reason) == (False, Reason.INPUT_UNAVAILABLE)


@pytest.mark.parametrize("watts", [0.0, -3.0, float("nan"), float("inf")])
def test_a_level_without_a_positive_power_is_refused_with_its_name(watts: float) -> None:
    with pytest.raises(ValueError, match="level 'x'"):
        Level("x", watts, 10.0)


def test_a_rig_without_levels_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one power level"):
        LevelController(())


def test_the_ladder_takes_each_levels_measured_power_and_speed() -> None:
    costs = [LevelCost("7W", 4.0, 8.0), LevelCost("15W", 6.0, 11.0), LevelCost("25W", 8.0, 20.0)]
    assert ladder_from_costs(costs, assumed_w=10.0) == (
        Level("7W", 4.0, 8.0),
        Level("15W", 6.0, 11.0),
        Level("25W", 8.0, 20.0),
    )


def test_an_unmeasured_level_counts_as_the_gates_inference_power_or_more() -> None:
    # Assumed high, not low: a level that draws more than assumed would take power from the grid.
    costs = [LevelCost("L1", None, None), LevelCost("L2", 12.0, 20.0), LevelCost("L3", None, None)]
    assert ladder_from_costs(costs, assumed_w=10.0) == (
        Level("L1", 10.0, measured=False),
        Level("L2", 12.0, 20.0),
        Level("L3", 12.0, measured=False),
    )


def test_a_level_cost_combines_the_models_by_how_many_inferences_each_figure_rests_on() -> None:
    cost = LevelCost.combine("25W", [(8.0, 20.0, 3, 3), (11.0, 10.0, 1, 0), (None, None, 2, 0)])
    assert cost == LevelCost("25W", 8.0, pytest.approx(17.5))
