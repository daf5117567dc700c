"""The deadline planner for batch work: finish on sunshine, but finish. Pure Python, no HA.

The surplus controller (`surplus.py`) opens the gate for all work while the sun pays for it. Batch
work has deadlines, so the planner answers a second question each cycle: must batch work (and
only batch work) be admitted now, beyond the surplus gate, so that every batch that may use the
grid or the battery finishes by its deadline?

The forecast (PV energy over time, less the house's expected load hour by hour, counted at
`forecast_factor` for forecast error, nothing past its horizon) says how much run time the gate
is expected to give by the deadline. Where it falls short of the run still needed plus a margin
(the longest request, so that one started just in time still finishes, and a share of the run,
for estimates that are off):

1. Sunshine that the battery policy keeps for the battery is sunshine all the same: batch work is
   admitted while the PV covers the house and the rig (`sun_now`, from the live flows). The
   battery gets that much less; the rig's energy is solar (the rig is the last load).
2. At the latest moment at which a run at full speed still ends the margin before the deadline,
   batch work is admitted whatever the sun does (earliest deadline first: by each deadline, every
   batch due by then has run). This backstop needs no forecast and costs no sunshine: a run that
   meets sunshine is solar, and what the sun brought before it shrank the run.

The thermal limit wins over a deadline. A batch whose owner chose `expire` never gets a deadline
run; one that chose `battery` gets the backstop only while the battery holds more than its
reserve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .surplus import BatteryPolicy

HOUR_S = 3600.0


class WhenSunFails(StrEnum):
    """What a batch may use when the sun does not come before its deadline."""

    GRID = "grid"
    BATTERY = "battery"
    EXPIRE = "expire"


class PlanReason(StrEnum):
    """Why batch work is or is not admitted beyond the surplus gate; a fixed set."""

    IDLE = "idle"  # no batch work waiting
    ON_SUN = "on_sun"  # the discounted forecast covers the work and its margin
    WAITING = "waiting"  # it does not; a deadline run is due at the latest start
    DEADLINE = "deadline"  # admitted now so that the deadline is met
    TOO_HOT = "too_hot"  # a deadline run is due, but the thermal limit wins
    BATTERY_LOW = "battery_low"  # due, battery only, and the battery is at its reserve
    EXPIRE = "expire"  # due, but the batches due let themselves expire


@dataclass(frozen=True, slots=True)
class Batch:
    """What is left of one batch, as the agent estimates it."""

    deadline: float  # epoch s
    energy_wh: float  # still needed
    run_s: float  # still needed at full speed
    longest_s: float  # the longest request's run time
    when_sun_fails: WhenSunFails | None = None  # None: the settings' default

    def __post_init__(self) -> None:
        for name in ("deadline", "energy_wh", "run_s", "longest_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or (name != "deadline" and value < 0):
                raise ValueError(f"batch {name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Period:
    """Forecast PV energy over [start, end) (epoch s), spread evenly within it."""

    start: float
    end: float
    wh: float

    def __post_init__(self) -> None:
        if not (self.end > self.start and self.wh >= 0 and math.isfinite(self.wh)):
            raise ValueError(f"a forecast period needs end > start and wh >= 0, got {self!r}")


@dataclass(frozen=True, slots=True)
class LoadProfile:
    """The house's expected load: W for each local hour of the day (from statistics). The hour
    is looked up in the home's time zone at each moment, not with one UTC offset, so that a
    horizon across a daylight saving change keeps the evening peak in the evening."""

    hourly_w: tuple[float, ...]
    time_zone: str = "UTC"  # an IANA name, as Home Assistant's configuration holds it

    def __post_init__(self) -> None:
        if len(self.hourly_w) != 24:
            raise ValueError(f"a load profile has 24 hourly values, got {len(self.hourly_w)}")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {self.time_zone!r} for a load profile") from err

    def watts(self, at: float) -> float:
        return self.hourly_w[datetime.fromtimestamp(at, ZoneInfo(self.time_zone)).hour]


@dataclass(frozen=True, slots=True)
class PlanSettings:
    forecast_factor: float = 0.7  # the share of forecast surplus counted on (forecast error)
    margin_share: float = 0.1  # of the run time still needed, kept as margin before a deadline
    hold_s: float = 900.0  # a deadline run keeps going while it is this early, not to flap
    cycle_s: float = 10.0  # between two plans: a run due in between starts at the earlier one
    when_sun_fails: WhenSunFails = WhenSunFails.GRID
    policy: BatteryPolicy = BatteryPolicy.BATTERY_FIRST
    battery_capacity_wh: float | None = None  # None: no battery
    full_soc: float = 98.0
    reserve_soc: float = 20.0
    balanced_factor: float = 1.2  # as the surplus controller's forecast_factor


@dataclass(frozen=True, slots=True)
class PlanInputs:
    now: float
    batches: Sequence[Batch]
    forecast: Sequence[Period] = ()
    load: LoadProfile | None = None  # None: the forecast is taken as surplus as it is
    battery_soc: float | None = None
    too_hot: bool = False  # the surplus controller's thermal limit holds the gate closed
    sun_now: bool = False  # PV covers the house and the rig now (export + battery charge >= need)
    admitted: bool = False  # the previous plan admitted a deadline run
    today_end: float = math.inf  # the coming local midnight: balanced weighs the forecast before it


@dataclass(frozen=True, slots=True)
class Plan:
    admit: bool  # lease the gate for batch work only, now
    reason: PlanReason
    for_s: float  # how long that admission is expected to last (0 when not admitting)
    latest_start: float | None  # when a deadline run starts at the latest (None: none needed)
    deadline: float | None  # the deadline that sets it
    expected_solar_wh: float  # what the discounted forecast sunshine covers by that deadline
    shortfall_wh: float  # what it does not (the margin aside): grid or battery energy to expect
    late: bool = False  # even at full speed from now, that deadline is missed


def forecast_periods(
    now: float,
    *,
    remaining_today_wh: float | None,
    today_end: float,
    tomorrow_wh: float | None = None,
    tomorrow_end: float | None = None,
    hourly: Sequence[Period] = (),
    today_daylight: tuple[float, float] | None = None,
    tomorrow_daylight: tuple[float, float] | None = None,
) -> list[Period]:
    """The forecast as periods: hourly detail where a forecast integration gives it, else each
    day's figure spread evenly over its daylight, sunrise to sunset (today: from now; nothing once
    the sun has set), for the PV gives nothing at night. A day without a sunrise or a sunset
    (polar day or night: `None`) spreads its figure over the whole of it."""
    periods = [p for p in hourly if p.end > now]
    days = [(now, today_end, remaining_today_wh, today_daylight)]
    if tomorrow_end is not None:
        days.append((today_end, tomorrow_end, tomorrow_wh, tomorrow_daylight))
    for day_start, day_end, wh, daylight in days:
        covered = any(p.start < day_end and p.end > day_start for p in periods)
        start, end = (day_start, day_end) if daylight is None else daylight
        start = max(start, now)
        if wh is not None and wh > 0 and end > start and not covered:
            periods.append(Period(start, end, wh))
    return sorted(periods, key=lambda p: p.start)


@dataclass(frozen=True, slots=True)
class Hour:
    """What the forecast promises the rig within one hour (or the part of it left)."""

    start: float
    stop: float
    gate_s: float  # run time the surplus gate gives, the battery's room under the policy filled
    sun_s: float  # run time the PV over the house's load gives, whatever the battery would take


def forecast_hours(
    inputs: PlanInputs, until: float, rig_w: float, battery_room_wh: float
) -> list[Hour]:
    """The forecast's surplus over the expected house load in [now, until), hour by hour, as run
    time for the rig; nothing past the forecast's horizon. Not yet discounted."""
    now = inputs.now
    room = battery_room_wh
    hours = []
    for period in sorted(inputs.forecast, key=lambda p: p.start):
        start, end = max(period.start, now), min(period.end, until)
        per_s = period.wh / (period.end - period.start)
        while start < end:
            stop = min(end, (math.floor(start / HOUR_S) + 1) * HOUR_S)
            seconds = stop - start
            house = 0.0 if inputs.load is None else inputs.load.watts(start) * seconds / HOUR_S
            surplus = max(0.0, per_s * seconds - house)
            taken = min(room, surplus)
            room -= taken
            sun_s = min(seconds, surplus * HOUR_S / rig_w)
            hours.append(Hour(start, stop, min(seconds, (surplus - taken) * HOUR_S / rig_w), sun_s))
            start = stop
    return hours


def expected_solar_s(
    inputs: PlanInputs, until: float, rig_w: float, battery_room_wh: float
) -> float:
    """Run time the surplus gate is expected to give the rig by `until`, not yet discounted."""
    return sum(h.gate_s for h in forecast_hours(inputs, until, rig_w, battery_room_wh))


def plan(inputs: PlanInputs, settings: PlanSettings) -> Plan:
    """Decide whether batch work is admitted now beyond the surplus gate, and why."""
    batches = sorted((b for b in inputs.batches if b.run_s > 0), key=lambda b: b.deadline)
    if not batches:
        return Plan(False, PlanReason.IDLE, 0.0, None, None, 0.0, 0.0)
    now = inputs.now
    battery_ok = _battery_can_cover(inputs, settings)
    # Earliest deadline first: by each deadline, every batch due by then has run.
    run_s = energy_wh = longest_s = 0.0
    due: list[WhenSunFails] = []
    binding: tuple[float, float, float, float, float] | None = None  # start, D, run, margin, Wh
    for batch in batches:
        run_s += batch.run_s
        energy_wh += batch.energy_wh
        longest_s = max(longest_s, batch.longest_s)
        margin = longest_s + settings.margin_share * run_s
        start = batch.deadline - run_s - margin - settings.cycle_s
        choice = batch.when_sun_fails or settings.when_sun_fails
        early = settings.hold_s if inputs.admitted else 0.0
        if now >= start - early:
            due.append(choice)
        if choice is not WhenSunFails.EXPIRE and (binding is None or start < binding[0]):
            binding = (start, batch.deadline, run_s, margin, energy_wh)
    if binding is None:
        reason = PlanReason.EXPIRE if due else PlanReason.ON_SUN
        return Plan(False, reason, 0.0, None, None, 0.0, 0.0)
    start, deadline, need_s, margin, need_wh = binding
    rig_w = need_wh * HOUR_S / need_s if need_wh > 0 else 1.0
    factor = settings.forecast_factor
    hours = forecast_hours(inputs, deadline, rig_w, _battery_room_wh(inputs, settings))
    solar_s = factor * sum(h.gate_s for h in hours)
    covered = solar_s >= need_s + margin
    # What the gate will not give may still come from sunshine the battery policy keeps for the
    # battery: batch work takes it while it is there.
    sun_s = factor * sum(h.sun_s for h in hours)
    on_sun = not covered and inputs.sun_now

    def outcome(admit: bool, reason: PlanReason) -> Plan:
        return Plan(
            admit=admit,
            reason=reason,
            for_s=need_s if admit else 0.0,
            latest_start=start,
            deadline=deadline,
            expected_solar_wh=min(sun_s, need_s) * rig_w / HOUR_S,
            shortfall_wh=max(0.0, need_s - sun_s) * rig_w / HOUR_S,
            late=now > deadline - need_s,
        )

    allowed = [
        c for c in due if c is WhenSunFails.GRID or (c is WhenSunFails.BATTERY and battery_ok)
    ]
    if (allowed or on_sun) and not inputs.too_hot:
        return outcome(True, PlanReason.DEADLINE)
    if inputs.too_hot and due:
        reason = PlanReason.TOO_HOT
    elif WhenSunFails.BATTERY in due:
        reason = PlanReason.BATTERY_LOW
    elif due:
        reason = PlanReason.EXPIRE
    else:
        reason = PlanReason.ON_SUN if covered else PlanReason.WAITING
    return outcome(False, reason)


def _battery_can_cover(inputs: PlanInputs, settings: PlanSettings) -> bool:
    soc = inputs.battery_soc
    return (
        settings.battery_capacity_wh is not None and soc is not None and soc > settings.reserve_soc
    )


def _battery_room_wh(inputs: PlanInputs, settings: PlanSettings) -> float:
    """Surplus the battery takes before the rig gets any, under the battery policy. Balanced
    weighs what is left of today's forecast alone, as the surplus controller's rule does."""
    capacity = settings.battery_capacity_wh
    if not capacity or settings.policy is BatteryPolicy.INFERENCE_FIRST:
        return 0.0
    soc = inputs.battery_soc if inputs.battery_soc is not None else 0.0
    gap = max(0.0, settings.full_soc - soc) / 100.0 * capacity
    if settings.policy is BatteryPolicy.BALANCED:
        coming = sum(_share_wh(p, inputs.now, inputs.today_end) for p in inputs.forecast)
        return 0.0 if coming >= gap * settings.balanced_factor else gap
    return gap


def _share_wh(period: Period, start: float, end: float) -> float:
    """The part of a period's energy that falls in [start, end)."""
    overlap = min(period.end, end) - max(period.start, start)
    return period.wh * overlap / (period.end - period.start) if overlap > 0 else 0.0
