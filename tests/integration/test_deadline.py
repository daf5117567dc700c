"""The deadline rule: the agent's batches and the gate's readings, as the planner takes them
(pure Python, no Home Assistant)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from custom_components.joulegate.batch_plan import (
    LoadProfile,
    Period,
    PlanReason,
    PlanSettings,
    WhenSunFails,
)
from custom_components.joulegate.deadline import (
    UNMEASURED_REQUEST_S,
    DeadlineRule,
    World,
    queue_of,
)
from custom_components.joulegate.models import Batch
from custom_components.joulegate.surplus import BatteryPolicy

NOW = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)
SETTINGS = PlanSettings(policy=BatteryPolicy.INFERENCE_FIRST, cycle_s=10.0)


def agent_batch(
    batch_id: str = "batch_17",
    *,
    deadline: datetime = NOW + timedelta(hours=10),
    left: int = 300,
    run_s: float | None = 300 * 30.0,
    energy_wh: float | None = 25.0,
    metadata: dict[str, Any] | None = None,
) -> Batch:
    """A batch as the agent lists it, with its `joulegate` block."""
    return Batch.from_dict(
        {
            "id": batch_id,
            "status": "in_progress",
            "metadata": metadata or {},
            "request_counts": {"total": left, "completed": 0, "failed": 0},
            "joulegate": {
                "deadline": deadline.isoformat(),
                "requests_left": left,
                "energy_needed_wh": energy_wh,
                "run_time_needed_s": run_s,
                "longest_request_s": 31.0 if run_s is not None else None,
                "latest_start": None,
                "on_time": True,
            },
        }
    )


def world(at: datetime, **changes: Any) -> World:
    values: dict[str, Any] = {
        "now": at.timestamp(),
        "today_end": (NOW.replace(hour=0) + timedelta(days=1)).timestamp(),
        "forecast_remaining_wh": 0.0,
        "battery_soc": None,
        "too_hot": False,
        "sun_now": False,
    }
    return World(**(values | changes))


def test_a_batch_s_metadata_says_what_it_may_use_when_the_sun_fails() -> None:
    queue = queue_of(
        [
            agent_batch("a", metadata={"joulegate_when_sun_fails": "battery"}),
            agent_batch("b", metadata={"joulegate_when_sun_fails": " Expire "}),
            agent_batch("c"),
        ],
        concurrency=1,
        rig_w=10.0,
    )
    assert [b.when_sun_fails for b in queue.batches] == [
        WhenSunFails.BATTERY,
        WhenSunFails.EXPIRE,
        None,
    ]
    assert queue.unreadable == ()


def test_an_unknown_choice_is_named_and_the_default_applies() -> None:
    queue = queue_of(
        [agent_batch("a", metadata={"joulegate_when_sun_fails": "solar please"})],
        concurrency=1,
        rig_w=10.0,
    )
    assert queue.batches[0].when_sun_fails is None
    assert queue.unreadable == (("a", "solar please"),)


def test_a_batch_with_nothing_measured_yet_counts_a_minute_a_request() -> None:
    queue = queue_of([agent_batch(left=10, run_s=None, energy_wh=None)], concurrency=2, rig_w=12.0)
    (planned,) = queue.batches
    assert planned.run_s == pytest.approx(10 * UNMEASURED_REQUEST_S / 2)
    assert planned.energy_wh == pytest.approx(12.0 * planned.run_s / 3600)
    assert planned.longest_s == UNMEASURED_REQUEST_S


def test_finished_batches_and_batches_without_a_deadline_are_not_planned() -> None:
    done = agent_batch("done", left=0)
    no_block = Batch.from_dict({"id": "old", "status": "in_progress"})
    assert queue_of([done, no_block], concurrency=1, rig_w=10.0).batches == ()


def test_with_no_sun_to_come_the_rule_waits_for_the_latest_start_then_runs_to_the_deadline() -> (
    None
):
    """2.5 h of work due in 10 h, no forecast: waiting until the latest start costs neither the
    deadline nor sunshine; from then on batch work is admitted, reason `deadline`."""
    rule = DeadlineRule(SETTINGS)
    queue = queue_of([agent_batch()], concurrency=1, rig_w=10.0)
    first = rule.step(world(NOW), queue)
    assert (first.admit, first.reason) == (False, PlanReason.WAITING)
    assert first.latest_start is not None
    at = datetime.fromtimestamp(first.latest_start, UTC)
    due = rule.step(world(at), queue)
    assert (due.admit, due.reason) == (True, PlanReason.DEADLINE)
    # A cycle later, a little early for the next latest start: it keeps running.
    assert rule.step(world(at + timedelta(minutes=5)), queue).admit


def test_the_thermal_limit_wins_over_a_deadline() -> None:
    rule = DeadlineRule(SETTINGS)
    queue = queue_of([agent_batch(deadline=NOW + timedelta(hours=2))], concurrency=1, rig_w=10.0)
    hot = rule.step(world(NOW, too_hot=True), queue)
    assert (hot.admit, hot.reason) == (False, PlanReason.TOO_HOT)


def test_a_batch_that_lets_itself_expire_gets_no_deadline_run() -> None:
    rule = DeadlineRule(SETTINGS)
    queue = queue_of(
        [
            agent_batch(
                deadline=NOW + timedelta(hours=2), metadata={"joulegate_when_sun_fails": "expire"}
            )
        ],
        concurrency=1,
        rig_w=10.0,
    )
    assert rule.step(world(NOW), queue).admit is False


def test_forecast_sunshine_before_the_deadline_keeps_the_rule_waiting() -> None:
    """Plenty of PV still to come today: the surplus gate will run the batch."""
    rule = DeadlineRule(SETTINGS)
    morning = NOW.replace(hour=8)
    queue = queue_of([agent_batch(deadline=NOW.replace(hour=23))], concurrency=1, rig_w=10.0)
    outcome = rule.step(world(morning, forecast_remaining_wh=20_000.0), queue)
    assert (outcome.admit, outcome.reason) == (False, PlanReason.ON_SUN)


TOMORROW = NOW.replace(hour=0) + timedelta(days=1)


def tomorrow_at(hour: float) -> datetime:
    return TOMORROW + timedelta(hours=hour)


def test_tomorrow_s_forecast_sunshine_keeps_the_rule_waiting_overnight() -> None:
    """Nothing left today, a sunny day tomorrow before the deadline: the sun will run it."""
    rule = DeadlineRule(SETTINGS)
    queue = queue_of([agent_batch(deadline=tomorrow_at(18))], concurrency=1, rig_w=10.0)
    sunny = world(NOW, tomorrow_wh=20_000.0, tomorrow_end=tomorrow_at(24).timestamp())
    assert rule.step(sunny, queue).reason is PlanReason.ON_SUN


def test_hourly_detail_says_when_tomorrow_s_sunshine_comes() -> None:
    """Tomorrow's figure spread over the day would cover a batch due at 10:00; the hourly detail
    puts the sun after it."""
    rule = DeadlineRule(SETTINGS)
    queue = queue_of([agent_batch(deadline=tomorrow_at(10))], concurrency=1, rig_w=10.0)
    day = {"tomorrow_wh": 20_000.0, "tomorrow_end": tomorrow_at(24).timestamp()}
    assert rule.step(world(NOW, **day), queue).reason is PlanReason.ON_SUN
    afternoon = tuple(
        Period(tomorrow_at(h).timestamp(), tomorrow_at(h + 1).timestamp(), 5000.0)
        for h in range(11, 15)
    )
    assert rule.step(world(NOW, **day, hourly=afternoon), queue).reason is PlanReason.WAITING


def test_the_house_s_load_comes_off_the_forecast_sunshine() -> None:
    """A dull morning of 500 Wh an hour: enough for the rig alone, nothing over a 600-W house."""
    rule = DeadlineRule(SETTINGS)
    queue = queue_of([agent_batch(deadline=tomorrow_at(14))], concurrency=1, rig_w=10.0)
    dull = tuple(
        Period(tomorrow_at(h).timestamp(), tomorrow_at(h + 1).timestamp(), 500.0)
        for h in range(6, 14)
    )
    assert rule.step(world(NOW, hourly=dull), queue).reason is PlanReason.ON_SUN
    house = LoadProfile((600.0,) * 24)
    assert rule.step(world(NOW, hourly=dull, load=house), queue).reason is PlanReason.WAITING


def test_tomorrow_s_figure_counts_from_sunrise() -> None:
    """Berlin, 14:00 (12:00 UTC) on 21 June: 3 kWh left today, 20 kWh tomorrow (sun 05:00-21:30
    local), battery first with a 10-kWh battery at 50 %, the PV covering the house and the rig
    now. A batch due tomorrow at 09:00: the sun before then mostly fills the battery, so batch
    work takes the sunshine now rather than count on the night."""
    settings = PlanSettings(policy=BatteryPolicy.BATTERY_FIRST, battery_capacity_wh=10_000.0)
    rule = DeadlineRule(settings)
    berlin = timedelta(hours=2)
    midnight = datetime(2026, 6, 22, tzinfo=UTC) - berlin
    queue = queue_of(
        [agent_batch(deadline=midnight + timedelta(hours=9), run_s=7200.0, energy_wh=20.0)],
        concurrency=1,
        rig_w=10.0,
    )
    now = datetime(2026, 6, 21, 12, tzinfo=UTC)
    outcome = rule.step(
        World(
            now=now.timestamp(),
            today_end=midnight.timestamp(),
            forecast_remaining_wh=3000.0,
            battery_soc=50.0,
            too_hot=False,
            sun_now=True,
            tomorrow_wh=20_000.0,
            tomorrow_end=(midnight + timedelta(days=1)).timestamp(),
            today_daylight=(
                (midnight - timedelta(hours=19)).timestamp(),
                (midnight - timedelta(hours=2.5)).timestamp(),
            ),
            tomorrow_daylight=(
                (midnight + timedelta(hours=5)).timestamp(),
                (midnight + timedelta(hours=21.5)).timestamp(),
            ),
        ),
        queue,
    )
    assert (outcome.admit, outcome.reason) == (True, PlanReason.DEADLINE)
