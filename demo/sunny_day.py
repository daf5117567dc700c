"""A simulated sunny day at a house with PV, a home battery and a grid meter, sped up.

- PV: pvlib's clear-sky model (Ineichen, with pvlib's own Linke turbidity table) for a real place
  and date, transposed onto a tilted array, times a system efficiency, clipped by the inverter;
  passing clouds cut it to a fraction for a while, with soft edges.
- House load: a base load, a morning and an evening, cooking at noon and in the evening, and a
  kettle now and then.
- Battery: takes whatever PV has left over up to its charge power until full; covers what the
  house needs up to its discharge power down to its reserve.
- Grid: the rest. Signs as Home Assistant reads them: grid + import / - export, battery
  + discharge / - charge, so PV + grid + battery = house + rig.

Everything is deterministic for a seed. `SimClock` maps wall-clock seconds to simulated time:
daylight passes at `speed` simulated seconds per second, the night `night_factor` times faster.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Site:
    """Where the house is and what is on its roof. Default: Freiburg im Breisgau, 5 kWp south."""

    latitude: float = 47.99
    longitude: float = 7.85
    altitude_m: float = 280.0
    time_zone: str = "Europe/Berlin"
    pv_peak_w: float = 5000.0
    tilt_deg: float = 30.0
    azimuth_deg: float = 180.0
    system_efficiency: float = 0.86  # wiring, soiling, temperature, inverter
    inverter_w: float = 4600.0
    battery_wh: float = 5000.0
    battery_charge_w: float = 2200.0
    battery_discharge_w: float = 2500.0
    battery_reserve_pct: float = 10.0


def clear_sky_pv(site: Site, day: date) -> np.ndarray:
    """PV power (W) for each minute of `day` (local time) under a clear sky."""
    import pandas as pd  # type: ignore[import-untyped]
    import pvlib  # type: ignore[import-untyped]

    location = pvlib.location.Location(
        site.latitude, site.longitude, tz=site.time_zone, altitude=site.altitude_m
    )
    times = pd.date_range(
        pd.Timestamp(day, tz=site.time_zone), periods=MINUTES_PER_DAY, freq="1min"
    )
    clearsky = location.get_clearsky(times, model="ineichen")
    sun = location.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=site.tilt_deg,
        surface_azimuth=site.azimuth_deg,
        solar_zenith=sun["apparent_zenith"],
        solar_azimuth=sun["azimuth"],
        dni=clearsky["dni"],
        ghi=clearsky["ghi"],
        dhi=clearsky["dhi"],
    )["poa_global"]
    power = np.asarray(poa.fillna(0.0), dtype=float) / 1000.0 * site.pv_peak_w
    power *= site.system_efficiency
    return np.clip(power, 0.0, site.inverter_w)


@dataclass(frozen=True, slots=True)
class Cloud:
    start_min: float  # minute of the day
    duration_min: float
    opacity: float  # 0.9: PV falls to 10 % of clear sky under the cloud's core
    edge_min: float = 4.0

    def shade(self, minute: float) -> float:
        """0 outside the cloud, `opacity` under its core, raised-cosine edges."""
        end = self.start_min + self.duration_min
        if minute <= self.start_min or minute >= end:
            return 0.0
        edge = min(self.edge_min, self.duration_min / 2)
        into = min(minute - self.start_min, end - minute)
        if into >= edge:
            return self.opacity
        return self.opacity * 0.5 * (1 - math.cos(math.pi * into / edge))


def passing_clouds(seed: int, day_index: int) -> list[Cloud]:
    """Clouds for one day: one thick one before noon for sure, and a few at random."""
    rng = random.Random(seed * 1009 + day_index)  # noqa: S311 - weather, not cryptography
    clouds = [Cloud(start_min=10 * 60 + 50, duration_min=45, opacity=0.9)]
    for _ in range(rng.randint(3, 5)):
        clouds.append(
            Cloud(
                start_min=rng.uniform(8.5 * 60, 17.5 * 60),
                duration_min=rng.uniform(15, 50),
                opacity=rng.uniform(0.75, 0.92),
            )
        )
    return sorted(clouds, key=lambda c: c.start_min)


@dataclass(frozen=True, slots=True)
class Appliance:
    name: str
    start_min: float
    duration_min: float
    power_w: float

    def draws(self, minute: float) -> float:
        on = self.start_min <= minute < self.start_min + self.duration_min
        return self.power_w if on else 0.0


def household_appliances(seed: int, day_index: int) -> list[Appliance]:
    """The day's bigger loads: cooking twice, a washing machine, a kettle now and then."""
    rng = random.Random(seed * 7919 + day_index)  # noqa: S311 - a house, not cryptography
    items = [
        Appliance("cooking", 12 * 60 + rng.uniform(-10, 10), 40, 1800),
        Appliance("cooking", 18 * 60 + 40 + rng.uniform(-15, 15), 45, 1500),
        Appliance("washing machine", rng.uniform(13.5 * 60, 15 * 60), 70, 600),
    ]
    for _ in range(rng.randint(3, 5)):
        items.append(Appliance("kettle", rng.uniform(6.5 * 60, 21 * 60), 4, 2000))
    return items


def base_load_w(minute: float) -> float:
    """Fridge and standby all day, more in the morning, home office by day, evening lights."""
    hour = minute / 60.0
    load = 180.0
    if 6.5 <= hour < 8.5:
        load += 350.0
    if 8.5 <= hour < 17.0:
        load += 250.0
    if 17.5 <= hour < 22.5:
        load += 450.0
    return load


@dataclass(frozen=True, slots=True)
class Flows:
    """One reading of the house, in W (signed as Home Assistant reads them) and %."""

    sim_time: datetime
    pv_w: float
    clear_sky_w: float
    house_w: float  # everything but the rig
    rig_w: float
    battery_w: float  # + discharge, - charge
    battery_soc: float
    grid_w: float  # + import, - export
    forecast_remaining_kwh: float
    pv_energy_kwh: float  # the PV meter, since the demo's first start
    shade: float  # 0 clear .. 1 dark

    def as_event(self) -> dict[str, float | str]:
        return {
            "time": self.sim_time.strftime("%H:%M"),
            "pv_w": _reading(self.pv_w, 1),
            "house_w": _reading(self.house_w, 1),
            "battery_w": _reading(self.battery_w, 1),
            "battery_soc": _reading(self.battery_soc, 1),
            "grid_w": _reading(self.grid_w, 1),
            "forecast_kwh": _reading(self.forecast_remaining_kwh, 2),
            "pv_kwh": _reading(self.pv_energy_kwh, 3),
            "cloud_pct": round(self.shade * 100),
        }


def _reading(value: float, digits: int) -> float:
    """Rounded as a meter shows it: a battery idling at -0.04 W reads 0.0 W, not -0.0."""
    return round(value, digits) + 0.0


@dataclass(slots=True)
class House:
    """The house's state through simulated time: the battery's charge, the day's plan."""

    site: Site = field(default_factory=Site)
    seed: int = 1
    battery_soc: float = 30.0
    pv_energy_kwh: float = 0.0
    first_day: date = date(2026, 5, 21)
    _pv_days: dict[date, np.ndarray] = field(default_factory=dict)
    _clouds: dict[int, list[Cloud]] = field(default_factory=dict)
    _appliances: dict[int, list[Appliance]] = field(default_factory=dict)

    def pv_curve(self, day: date) -> np.ndarray:
        if day not in self._pv_days:
            self._pv_days.clear()  # one day at a time is all the clock needs
            self._pv_days[day] = clear_sky_pv(self.site, day)
        return self._pv_days[day]

    def clear_sky_w(self, moment: datetime) -> float:
        curve = self.pv_curve(moment.date())
        minute = moment.hour * 60 + moment.minute + moment.second / 60.0
        return float(np.interp(minute, np.arange(MINUTES_PER_DAY), curve))

    def _day_index(self, moment: datetime) -> int:
        return (moment.date() - self.first_day).days

    def shade(self, moment: datetime) -> float:
        index = self._day_index(moment)
        clouds = self._clouds.setdefault(index, passing_clouds(self.seed, index))
        minute = moment.hour * 60 + moment.minute + moment.second / 60.0
        light = 1.0
        for cloud in clouds:
            light *= 1.0 - cloud.shade(minute)
        return 1.0 - light

    def house_w(self, moment: datetime) -> float:
        index = self._day_index(moment)
        appliances = self._appliances.setdefault(index, household_appliances(self.seed, index))
        minute = moment.hour * 60 + moment.minute + moment.second / 60.0
        # Deterministic wobble, so that the same seed gives the same curve.
        wobble = 25.0 * math.sin(minute / 7.3) + 15.0 * math.sin(minute / 2.1 + index)
        return base_load_w(minute) + sum(a.draws(minute) for a in appliances) + wobble

    def forecast_remaining_kwh(self, moment: datetime) -> float:
        """The clear-sky PV still to come today, as a forecast service would give it."""
        curve = self.pv_curve(moment.date())
        minute = moment.hour * 60 + moment.minute
        return float(curve[minute:].sum()) / 60.0 / 1000.0

    def step(self, moment: datetime, sim_dt_s: float, rig_w: float) -> Flows:
        """The house at `moment`, `sim_dt_s` simulated seconds after the previous step."""
        site = self.site
        clear = self.clear_sky_w(moment)
        shade = self.shade(moment) if clear > 0 else 0.0
        pv = clear * (1.0 - shade)
        house = self.house_w(moment)
        net = pv - house - rig_w  # what is left over (+) or missing (-)
        hours = max(sim_dt_s, 1e-9) / 3600.0
        room_wh = (100.0 - self.battery_soc) / 100.0 * site.battery_wh
        stored_wh = (self.battery_soc - site.battery_reserve_pct) / 100.0 * site.battery_wh
        if net > 0:
            battery = -min(net, site.battery_charge_w, max(0.0, room_wh) / hours)
        else:
            battery = min(-net, site.battery_discharge_w, max(0.0, stored_wh) / hours)
        self.battery_soc -= battery * hours / site.battery_wh * 100.0
        self.battery_soc = min(100.0, max(0.0, self.battery_soc))
        grid = house + rig_w - pv - battery
        self.pv_energy_kwh += pv * hours / 1000.0
        return Flows(
            sim_time=moment,
            pv_w=pv,
            clear_sky_w=clear,
            house_w=house,
            rig_w=rig_w,
            battery_w=battery,
            battery_soc=self.battery_soc,
            grid_w=grid,
            forecast_remaining_kwh=self.forecast_remaining_kwh(moment),
            pv_energy_kwh=self.pv_energy_kwh,
            shade=shade,
        )


@dataclass(slots=True)
class SimClock:
    """Simulated local time: daylight at `speed` x, the night `night_factor` times faster."""

    start: datetime
    speed: float = 40.0
    night_factor: float = 5.0
    now: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.now = self.start

    def is_night(self, moment: datetime) -> bool:
        hour = moment.hour + moment.minute / 60.0
        return hour < 5.0 or hour >= 22.0

    def advance(self, wall_s: float) -> float:
        """Move on by `wall_s` wall-clock seconds; returns the simulated seconds that passed."""
        factor = self.speed * (self.night_factor if self.is_night(self.now) else 1.0)
        sim_s = wall_s * factor
        self.now += timedelta(seconds=sim_s)
        return sim_s


def speed_for(day_minutes: float) -> float:
    """The daylight speed-up that makes 05:00-22:00 take `day_minutes` wall-clock minutes."""
    return 17 * 60 / day_minutes


def start_time(day: date, at: time, time_zone: str) -> datetime:
    return datetime.combine(day, at, tzinfo=ZoneInfo(time_zone))
