"""The deadline rule in the gate's cycle: finish on sunshine, but finish.

Each cycle the surplus controller decides the gate for all work. Where it keeps the gate closed,
this rule asks the batch planner (`batch_plan.plan`) with what the gate already has: the agent's
batches still to run (their deadlines and the agent's estimates of the energy and run time they
still need), the PV forecast (what is left of today, tomorrow's where an entity gives it, hourly
detail where a forecast integration gives it, less the house's expected load where the recorder
has its statistics), the battery's state of charge, the thermal limit and whether the PV covers
the house and the rig right now. When the
planner says a deadline needs it, the gate is leased for batch work only (scope `batch`, reason
`deadline`): interactive traffic still waits for the sun, and the thermal limit still wins.

What a batch may use when the sun does not come is its owner's choice, in the batch's metadata
(`joulegate_when_sun_fails`: `grid`, `battery` or `expire`), else the options' default.

The agent's `run_time_needed_s` already divides the run by its batch concurrency (one precedence
rule: the agent's `--batch-concurrency`, at the level the agent runs when the lease comes), so
the planner's latest start is the agent's. Pure Python: no Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .allocation import Allotment
from .batch_plan import Batch as PlannedBatch
from .batch_plan import (
    LoadProfile,
    Period,
    Plan,
    PlanInputs,
    PlanSettings,
    WhenSunFails,
    forecast_periods,
    plan,
)
from .levels import Level, LevelMode, LevelReason, ladder_for
from .models import Batch

WHEN_SUN_FAILS_KEY = "joulegate_when_sun_fails"
"""The metadata key of a batch that says what it may use when the sun does not come."""
UNMEASURED_REQUEST_S = 60.0
"""A request's run time where the agent has measured none of its model's yet."""


@dataclass(frozen=True, slots=True)
class Queue:
    """The batches as the planner takes them, and the metadata values it could not read."""

    batches: tuple[PlannedBatch, ...]
    unreadable: tuple[tuple[str, str], ...] = ()  # (batch id, the value of the metadata key)


def when_sun_fails(value: str | None) -> WhenSunFails | None:
    """A batch's choice from its metadata value; None where it has none or an unknown one."""
    try:
        return None if value is None else WhenSunFails(value.strip().lower())
    except ValueError:
        return None


def queue_of(batches: Sequence[Batch], *, concurrency: int, rig_w: float) -> Queue:
    """The agent's active batches as the planner's: what each still needs, by its deadline.

    Where the agent has no estimate yet (no row of the batch or its model), each request left is
    taken as `UNMEASURED_REQUEST_S` at `rig_w` above idle, `concurrency` at a time.
    """
    planned = []
    unreadable = []
    for batch in batches:
        outlook = batch.joulegate
        if outlook is None or outlook.deadline is None or outlook.requests_left <= 0:
            continue
        run_s = outlook.run_time_needed_s
        if run_s is None:
            run_s = outlook.requests_left * UNMEASURED_REQUEST_S / max(1, concurrency)
        energy_wh = outlook.energy_needed_wh
        if energy_wh is None:
            energy_wh = rig_w * run_s / 3600.0
        value = batch.metadata.get(WHEN_SUN_FAILS_KEY)
        choice = when_sun_fails(value)
        if value is not None and choice is None:
            unreadable.append((batch.id, value))
        planned.append(
            PlannedBatch(
                deadline=outlook.deadline.timestamp(),
                energy_wh=max(0.0, energy_wh),
                run_s=max(0.0, run_s),
                longest_s=outlook.longest_request_s or UNMEASURED_REQUEST_S,
                when_sun_fails=choice,
            )
        )
    return Queue(tuple(planned), tuple(unreadable))


@dataclass(frozen=True, slots=True)
class World:
    """What the gate read this cycle, as the deadline rule needs it."""

    now: float  # epoch s
    today_end: float  # epoch s of the coming local midnight: the remaining-today forecast's end
    forecast_remaining_wh: float | None
    battery_soc: float | None
    too_hot: bool  # the controller closed the gate for the thermal limit (or throttling)
    sun_now: bool  # PV covers the house and the rig now
    tomorrow_wh: float | None = None  # the PV forecast for tomorrow (None: not known)
    tomorrow_end: float | None = None  # epoch s of the local midnight after today_end
    hourly: tuple[Period, ...] = ()  # forecast detail, where a forecast integration gives it
    load: LoadProfile | None = None  # the house's expected load (None: not known)
    today_daylight: tuple[float, float] | None = None  # sunrise, sunset (None: polar, not known)
    tomorrow_daylight: tuple[float, float] | None = None  # tomorrow's sunrise, sunset


class DeadlineRule:
    """The planner with its one piece of memory: whether the last plan admitted a deadline run
    (a run keeps going while it is a little early, so that it does not stop and start)."""

    def __init__(self, settings: PlanSettings) -> None:
        """Start with no run admitted."""
        self.settings = settings
        self.plan: Plan | None = None

    def step(self, world: World, queue: Queue) -> Plan:
        """Plan this cycle: whether batch work is admitted beyond the surplus gate, and why."""
        forecast = forecast_periods(
            world.now,
            remaining_today_wh=world.forecast_remaining_wh,
            today_end=world.today_end,
            tomorrow_wh=world.tomorrow_wh,
            tomorrow_end=world.tomorrow_end,
            hourly=world.hourly,
            today_daylight=world.today_daylight,
            tomorrow_daylight=world.tomorrow_daylight,
        )
        self.plan = plan(
            PlanInputs(
                now=world.now,
                batches=queue.batches,
                forecast=forecast,
                load=world.load,
                battery_soc=world.battery_soc,
                too_hot=world.too_hot,
                sun_now=world.sun_now,
                admitted=self.plan is not None and self.plan.admit,
                today_end=world.today_end,
            ),
            self.settings,
        )
        return self.plan


def deadline_allotment(allotment: Allotment, levels: Sequence[Level]) -> Allotment:
    """A rig's level during a deadline run that the surplus does not pay for: its top level, the
    speed the planner's latest start assumes (a run at the lowest level could miss it)."""
    ladder = ladder_for(levels, LevelMode.FASTEST)
    top = ladder[-1]
    return replace(
        allotment,
        index=len(ladder) - 1,
        level=top,
        allotted_w=top.marginal_w,
        reason=LevelReason.DEADLINE,
    )
