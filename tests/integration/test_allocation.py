"""One surplus shared among several rigs with levels (pure Python, no HA)."""

from __future__ import annotations

import itertools

import pytest

from custom_components.joulegate.allocation import Allocator, Allotment, RigConfig, RigReading
from custom_components.joulegate.levels import Level, LevelReason
from custom_components.joulegate.surplus import GateMode, Inputs, Reason, Settings

STEP_S = 10.0
FAST = (Level("low", 4.0, 8.0), Level("mid", 8.0, 20.0), Level("high", 12.0, 22.0))
SLOW = (Level("low", 5.0, 6.0), Level("mid", 10.0, 11.0))
NO_WAIT = Settings(min_off_s=0.0)


def two_rigs(first: int = 2, second: int = 1) -> Allocator:
    return Allocator(
        [RigConfig("a", FAST, priority=first), RigConfig("b", SLOW, priority=second)], NO_WAIT
    )


def draw(allotment: Allotment) -> float:
    return 0.0 if allotment.level is None else allotment.level.marginal_w


def simulate(
    allocator: Allocator,
    seconds: float,
    export_w: float,
    *,
    start: float = 0.0,
    hot: str | None = None,
) -> list[dict[str, Allotment]]:
    """Close the loop: each rig draws its level's power; the grid meter sees their sum."""
    draws = dict.fromkeys(("a", "b", "c"), 0.0)
    out = []
    for i in range(int(seconds / STEP_S)):
        grid = sum(draws.values()) - export_w
        readings = {
            key: RigReading(inference_w=w, temperature_c=90.0 if key == hot else 50.0)
            for key, w in draws.items()
        }
        result = allocator.step(Inputs(now=start + i * STEP_S, grid_w=grid), readings)
        draws.update({key: draw(a) for key, a in result.items()})
        out.append(result)
    return out


def levels(result: dict[str, Allotment]) -> dict[str, str | None]:
    return {key: None if a.level is None else a.level.key for key, a in result.items()}


def test_the_rigs_together_are_the_last_load_their_draw_is_added_back_once() -> None:
    allocator = two_rigs()
    # 23 W of surplus pays for a at 12 W and b at 10 W together: both hold there.
    history = simulate(allocator, 900, export_w=23.0)
    assert levels(history[-1]) == {"a": "high", "b": "mid"}
    assert sum(a.allotted_w for a in history[-1].values()) == 22.0


def test_the_surplus_is_split_between_rigs_not_taken_in_turns() -> None:
    allocator = two_rigs()
    history = simulate(allocator, 1800, export_w=18.0)
    # 18 W: a takes 12 W, b runs on 5 W of the 6 W left; both run for the whole second half.
    assert levels(history[-1]) == {"a": "high", "b": "low"}
    assert all(a.level is not None for result in history[90:] for a in result.values())


def test_a_short_reading_steps_the_lowest_priority_rig_down_first() -> None:
    allocator = two_rigs()
    simulate(allocator, 900, export_w=23.0)
    after = simulate(allocator, 10, export_w=17.5, start=900.0)
    assert levels(after[0]) == {"a": "high", "b": "low"}
    reversed_priority = two_rigs(first=1, second=2)
    simulate(reversed_priority, 900, export_w=23.0)
    after = simulate(reversed_priority, 10, export_w=17.5, start=900.0)
    assert levels(after[0]) == {"a": "low", "b": "mid"}


def test_a_higher_priority_rig_takes_power_from_a_lower_one_only_by_its_own_step_up() -> None:
    allocator = two_rigs()
    while_hot = simulate(allocator, 900, export_w=19.0, hot="a")
    assert levels(while_hot[-1]) == {"a": None, "b": "mid"}  # b took the surplus meanwhile
    history = simulate(allocator, 900, export_w=19.0, start=900.0)
    # a climbs rung by rung, a minute each; b gives way to its lowest level, never stopped.
    assert levels(history[-1]) == {"a": "high", "b": "low"}
    assert all(result["b"].level is not None for result in history)
    climbs = [i for i in range(1, 90) if history[i]["a"].index != history[i - 1]["a"].index]
    assert [history[i]["a"].index for i in climbs] == sorted(history[i]["a"].index for i in climbs)
    assert all(later - earlier >= 6 for earlier, later in itertools.pairwise(climbs))


def test_a_rig_waiting_to_step_up_holds_its_headroom_from_lower_rigs() -> None:
    allocator = two_rigs()
    simulate(allocator, 900, export_w=9.0)  # a at mid (8 W), nothing left for b
    waiting = simulate(allocator, 30, export_w=14.0, start=900.0)
    # 5 W more: b's lowest level (5 W) would fit, but a waits for its next 4 W and holds them.
    assert waiting[-1]["a"].reason is LevelReason.WAITING_TO_STEP_UP
    assert waiting[-1]["a"].allotted_w == 12.0
    assert waiting[-1]["b"].level is None
    settled = simulate(allocator, 600, export_w=14.0, start=930.0)
    assert levels(settled[-1]) == {"a": "high", "b": None}
    assert settled[-1]["b"].reason is LevelReason.HIGHER_PRIORITY


def test_a_hot_rig_closes_and_leaves_the_surplus_to_the_others() -> None:
    allocator = two_rigs()
    history = simulate(allocator, 900, export_w=22.0, hot="a")
    assert history[-1]["a"].reason is Reason.TOO_HOT
    assert levels(history[-1]) == {"a": None, "b": "mid"}


def test_a_blip_in_one_rigs_reading_steps_no_rig_down() -> None:
    allocator = two_rigs()
    before = simulate(allocator, 900, export_w=23.0)[-1]
    blip = allocator.step(Inputs(now=900.0, grid_w=-1.0), {"a": RigReading(12.0)})
    assert levels(blip) == levels(before) == {"a": "high", "b": "mid"}


def test_a_rig_without_a_reading_past_the_hold_makes_the_shared_surplus_unknown() -> None:
    allocator = two_rigs()
    simulate(allocator, 300, export_w=22.0)
    now = 290.0 + NO_WAIT.hold_s + STEP_S
    result = allocator.step(Inputs(now=now, grid_w=-22.0), {"a": RigReading()})
    assert {a.reason for a in result.values()} == {Reason.INPUT_UNAVAILABLE}
    assert levels(result) == {"a": None, "b": None}


def test_a_rig_closed_after_a_long_run_reopens_after_the_gates_shorter_off_time() -> None:
    settings = Settings(min_off_s=300.0, long_run_s=600.0, off_after_long_run_s=120.0)
    allocator = Allocator([RigConfig("a", FAST, priority=1)], settings)
    simulate(allocator, 1800, export_w=30.0)
    assert levels(simulate(allocator, 10, export_w=0.0, start=1800.0)[-1]) == {"a": None}
    after = simulate(allocator, 600, export_w=30.0, start=1810.0)
    opened = next(i for i, result in enumerate(after) if result["a"].level is not None)
    assert 1810.0 + STEP_S * opened == 1800.0 + 120.0


def test_rig_keys_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Allocator([RigConfig("a", FAST), RigConfig("a", SLOW)])


def test_a_rig_forced_on_runs_its_top_level_and_the_others_share_what_is_left() -> None:
    allocator = two_rigs()
    allocator.update_rig(RigConfig("a", FAST, priority=2, gate=GateMode.ALWAYS))
    history = simulate(allocator, 900, export_w=18.0)
    assert levels(history[-1]) == {"a": "high", "b": "low"}
    assert history[-1]["a"].reason is Reason.FORCED_ON


def test_new_figures_for_a_rigs_levels_keep_it_on_the_level_it_runs() -> None:
    allocator = two_rigs()
    simulate(allocator, 900, export_w=23.0)
    remeasured = (Level("low", 4.5, 8.0), Level("mid", 7.5, 21.0), Level("high", 11.0, 22.0))
    allocator.update_rig(RigConfig("a", remeasured, priority=2))
    after = simulate(allocator, 10, export_w=23.0, start=900.0)
    assert levels(after[0]) == {"a": "high", "b": "mid"}
    assert after[0]["a"].level == remeasured[2]


def test_a_rig_that_joins_starts_closed_and_the_others_keep_their_levels() -> None:
    allocator = Allocator([RigConfig("a", FAST, priority=2)], NO_WAIT)
    simulate(allocator, 900, export_w=23.0)
    allocator.add_rig(RigConfig("b", SLOW, priority=1))
    readings = {"a": RigReading(12.0), "b": RigReading(0.0)}
    joined = allocator.step(Inputs(now=900.0, grid_w=-11.0), readings)
    assert levels(joined) == {"a": "high", "b": None}
    assert levels(simulate(allocator, 600, export_w=23.0, start=910.0)[-1]) == {
        "a": "high",
        "b": "mid",
    }


def test_a_rig_that_leaves_is_no_longer_allotted_anything() -> None:
    allocator = two_rigs()
    simulate(allocator, 900, export_w=23.0)
    allocator.remove_rig("b")
    assert set(simulate(allocator, 10, export_w=23.0, start=900.0)[0]) == {"a"}
    with pytest.raises(ValueError, match="at least one rig"):
        allocator.remove_rig("a")
