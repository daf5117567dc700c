"""The deadline planner's forecast inputs, from what forecast integrations and statistics give.

Forecast integrations put their detail in a sensor's attributes, each in its own shape:

- Solcast (`solcast_solar`): `detailedForecast`, half-hourly, and `detailedHourly`, hourly; rows of
  `period_start` (a datetime, or ISO text once restored) and `pv_estimate`, the period's average
  power in kW.
- Open-Meteo Solar Forecast, as Forecast.Solar: `wh_period`, `{ISO start: Wh in the period}`,
  hourly or quarter-hourly, the first key often at sunrise off the hour: a period runs to the
  next key (at most an hour).

These are read into the planner's `Period`s; an entry that cannot be read is skipped (the cycle
must not fail on another integration's attributes). The house's load profile is the median of
each local hour of the day, from the recorder's hourly means: of the house's consumption, or, in
a home with a grid meter, derived from the PV, grid and battery meters' (`derived_load`). Pure
Python: no Home Assistant imports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from statistics import median
from typing import Any

from .batch_plan import HOUR_S, LoadProfile, Period

# Solcast's attributes and their periods' length, the finer first.
SOLCAST_DETAIL = (("detailedForecast", HOUR_S / 2), ("detailedHourly", HOUR_S))
WH_PERIOD = "wh_period"


def forecast_detail(*attributes: Mapping[str, Any]) -> tuple[Period, ...]:
    """The forecast detail that entities' attributes give, in order of time; where two entities
    cover the same time, the first one's counts (an hour is never counted twice)."""
    kept: list[Period] = []
    for entity in attributes:
        for period in _entity_detail(entity):
            if not any(p.start < period.end and p.end > period.start for p in kept):
                kept.append(period)
    return tuple(sorted(kept, key=lambda p: p.start))


def load_profile(samples: Iterable[tuple[int, float]], time_zone: str) -> LoadProfile | None:
    """The median W of each local hour of the day from (local hour, mean W) samples, so that one
    day's outlier (a meter's reset counted as a lifetime's energy in an hour) moves nothing; an
    hour without samples takes the median of them all. None without any sample."""
    hours: list[list[float]] = [[] for _ in range(24)]
    for hour, watts in samples:
        if 0 <= hour < 24 and math.isfinite(watts) and watts >= 0:
            hours[hour].append(watts)
    every = [watts for values in hours for watts in values]
    if not every:
        return None
    overall = median(every)
    return LoadProfile(tuple(median(values) if values else overall for values in hours), time_zone)


def derived_load(
    pv_wh: Mapping[float, float],
    grid_w: Mapping[float, float],
    battery_w: Mapping[float, float] | None,
) -> list[tuple[float, float]]:
    """The house's mean W in each hour, by hour start, from what a grid meter's home measures:
    the PV's energy in the hour (Wh in one hour: its mean W), plus the grid's (+ import), plus the
    battery's (+ discharge; None: no battery). An hour that one of them misses gives nothing, and
    so does one whose load comes out negative: its meters disagree, it tells nothing of the
    house."""
    loads = (
        (start, pv + grid_w[start] + (0.0 if battery_w is None else battery_w[start]))
        for start, pv in sorted(pv_wh.items())
        if start in grid_w and (battery_w is None or start in battery_w)
    )
    return [(start, watts) for start, watts in loads if watts >= 0]


def _entity_detail(attributes: Mapping[str, Any]) -> list[Period]:
    for key, step_s in SOLCAST_DETAIL:
        rows = attributes.get(key)
        if isinstance(rows, list | tuple):
            kilowatts: dict[float, float] = {}
            for row in rows:
                if not isinstance(row, Mapping):
                    continue
                start, kw = _moment(row.get("period_start")), _amount(row.get("pv_estimate"))
                if start is not None and kw is not None:
                    kilowatts.setdefault(start, kw)
            if kilowatts:
                return _kw_periods(kilowatts, step_s)
    values = attributes.get(WH_PERIOD)
    if not isinstance(values, Mapping):
        return []
    energy: dict[float, float] = {}
    for key, value in values.items():
        start, wh = _moment(key), _amount(value)
        if start is not None and wh is not None:
            energy.setdefault(start, wh)
    return _wh_periods(energy)


def _wh_periods(energy: Mapping[float, float]) -> list[Period]:
    """Each key's Wh from it to the next key, the last as long as the gap before it: a key at
    sunrise two minutes before the hour squeezes no hour. At most an hour each (no forecast gives
    coarser detail), so that the last key before a night spreads its energy over no night."""
    starts = sorted(energy)
    if not starts:
        return []
    ends = [*starts[1:], starts[-1] + (starts[-1] - starts[-2] if len(starts) > 1 else HOUR_S)]
    return [
        Period(start, min(end, start + HOUR_S), energy[start])
        for start, end in zip(starts, ends, strict=True)
    ]


def _kw_periods(kilowatts: Mapping[float, float], step_s: float) -> list[Period]:
    """A period of average kW from each start to the next (at most `step_s`); one whose energy
    is too large for a float is skipped."""
    starts = sorted(kilowatts)
    periods = []
    for start, following in zip(starts, [*starts[1:], math.inf], strict=False):
        end = min(start + step_s, following)
        wh = kilowatts[start] * 1000.0 * (end - start) / HOUR_S
        if math.isfinite(wh):
            periods.append(Period(start, end, wh))
    return periods


def _moment(value: object) -> float | None:
    """Epoch s of an aware datetime or ISO text; None for anything else (a naive time too: its
    zone is not known)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    return value.timestamp()


def _amount(value: object) -> float | None:
    """A finite number >= 0, else None (an integer too large for a float too)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        amount = float(value)
    except OverflowError:
        return None
    return amount if math.isfinite(amount) and amount >= 0 else None
