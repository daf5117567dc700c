"""Gate control quality over a year: how well each gate controller uses the sun.

A home with PV, a self-consumption battery and a household load, simulated at 10-second
resolution for a typical meteorological year: two houses (HOUSES) in five climates (CLIMATES;
the weather files bundled with pvlib 0.10.5, installed as data, so the run is offline). A rig
with a backlog of deferrable 30-second inference jobs (10 W above idle while one runs) sits
behind a gate, and each controller decides the gate every 10 s from noisy meter readings,
exactly as Home Assistant would feed the integration. Joulegate's controller is
`custom_components/joulegate/surplus.py` itself, loaded from its file (no Home Assistant
import) and stepped through `SurplusController.step`.

Joulegate's controller also runs on readings with blips (each input unavailable for 1 % of its
readings and a 2-minute outage a day), against its clean run. The rig's energy is split into
solar, battery and grid parts with the integration's `attribute()`
(the rig is the last load), applied to the true flows of each 10-s step. The change in the
home's grid import is measured against the same home with the rig idle.

    python benchmarks/gate_year.py [--quick]     # prints the tables; benchmarks/run_all.py plots
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
SURPLUS_PY = REPO / "custom_components" / "joulegate" / "surplus.py"

FloatArray = npt.NDArray[np.float64]


def load_surplus() -> ModuleType:
    """The integration's controller module, loaded from its file: the package's __init__ would
    import Home Assistant, the controller itself imports nothing of it."""
    name = "joulegate_surplus_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SURPLUS_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


SP = load_surplus()

REPORT = REPO / "docs" / "benchmarks.md"


def write_section(start: str, end: str, text: str) -> None:
    """Put a script's section into docs/benchmarks.md between its markers (`text` starts with
    `start` and ends with `end`), in place of the one before, or at the end of the report."""
    report = REPORT.read_text(encoding="utf-8")
    if start in report and end in report:
        before, rest = report.split(start, 1)
        report = before + text + rest.split(end, 1)[1]
    else:
        report = report.rstrip() + "\n\n" + text + "\n"
    REPORT.write_text(report, encoding="utf-8")


# --- the simulated world -------------------------------------------------------------------
STEP_S = 10.0
DT_H = STEP_S / 3600.0
DAY_STEPS = 8640
DAYS = 365
N_STEPS = DAYS * DAY_STEPS

NEED_W = 10.0  # the rig's draw above idle while a job runs
JOB_STEPS = 3  # 30-s jobs

PV_LOSSES = 0.14  # PVWatts' default system losses (soiling, wiring, mismatch, ...)
BATTERY_MIN_SOC = 10.0
BATTERY_EFF = 0.95  # one way; 90 % round trip
BATTERY_START_SOC = 50.0
TAPER_FLOOR = 0.05  # a tapering battery still takes this share of its power limit at 100 %
METER_NOISE_W = 3.0  # grid and battery meters, Gaussian, then rounded to whole watts
RIG_NOISE_W = 0.3  # the agent's own measurement of its power above idle
FORECAST_ERROR = 0.3  # sigma of the day's log forecast error (the forecast for "rest of today")

# Cloud model: within an hour of clear-sky index k, the array is either in sun (k = 1) or in
# cloud shade (k = SHADE_K), the shade fraction set so that the hour's mean is right. Shade comes
# and goes as a thresholded Gaussian process with correlation time CLOUD_TAU_S (broken cumulus:
# shadows of tens of seconds to a few minutes), its edges smoothed over EDGE_TAU_S. A clear hour
# (k >= 1) or an overcast one (k <= SHADE_K) is therefore smooth; a broken one is not.
SHADE_K = 0.25
CLOUD_TAU_S = 100.0
EDGE_TAU_S = 20.0


# The weather files bundled with pvlib 0.10.5 (requirements/bench-weather.txt), installed data
# only (`--target`, no dependencies) beside the pvlib that models the PV: the current release
# ships three of the five. scripts/bench installs it; see benchmarks/data/README.md.
WEATHER_PVLIB = "0.10.5"
WEATHER_DIR = REPO / ".venv" / "bench-weather"


@dataclass(frozen=True)
class House:
    """A home's array, battery and yearly load."""

    key: str
    label: str
    pv_kwp: float
    inverter_w: float
    battery_wh: float
    battery_max_w: float
    taper_from_soc: float | None  # charge power falls linearly from here to TAPER_FLOOR at 100 %
    load_kwh_day: float | None  # the load model scaled to this mean; None: as modelled
    seed: int  # added to the climate's seed; 0 keeps house A's year as it always was


HOUSES = (
    House("A", "5 kWp, 10 kWh battery at 3.3 kW", 5.0, 4600.0, 10_000.0, 3300.0, None, None, 0),
    House(
        "B",
        "4 kWp, 10 kWh/day load, 5 kWh battery at 2.5 kW tapering from 95 %",
        4.0,
        3680.0,
        5_000.0,
        2500.0,
        95.0,
        10.0,
        1000,
    ),
)
# House A's figures, as the report states them.
PV_KWP, INVERTER_W = HOUSES[0].pv_kwp, HOUSES[0].inverter_w
BATTERY_WH, BATTERY_MAX_W = HOUSES[0].battery_wh, HOUSES[0].battery_max_w


@dataclass(frozen=True)
class Climate:
    key: str
    label: str
    file: str  # in pvlib 0.10.5's data folder
    reader: str  # "tmy3", "tmy2", "pvgis" or "epw"
    tilt: float
    seed: int


CLIMATES = (
    Climate(
        "sunny",
        "Greensboro, North Carolina (TMY3 723170, 36° N)",
        "723170TYA.CSV",
        "tmy3",
        30.0,
        11,
    ),
    Climate("cloudy", "Sand Point, Alaska (TMY3 703165, 55° N)", "703165TY.csv", "tmy3", 35.0, 12),
    Climate("subtropical", "Miami, Florida (TMY2 12839, 26° N)", "12839.tm2", "tmy2", 25.0, 13),
    Climate(
        "piedmont",
        "Piedmont, Italy (PVGIS TMY, 45° N 8° E)",
        "tmy_45.000_8.000_2005_2016.csv",
        "pvgis",
        35.0,
        14,
    ),
    Climate(
        "maritime",
        "Amsterdam, Netherlands (IWEC 062400, 52° N)",
        "NLD_Amsterdam062400_IWEC.epw",
        "epw",
        35.0,
        15,
    ),
)
WEATHER_COLUMNS = ("ghi", "dni", "dhi", "temp_air", "wind_speed")


def weather_path(climate: Climate) -> Path:
    """The climate's file in pvlib 0.10.5's installed data, or a clear error saying how to
    install it."""
    path = WEATHER_DIR / "pvlib" / "data" / climate.file
    if not path.is_file():
        raise SystemExit(
            f"{path} is missing: the gate benchmark reads its weather from pvlib {WEATHER_PVLIB}'s "
            "data. Run scripts/bench, or: .venv-tools/bin/uv pip install --python .venv/bin/python"
            f" --no-deps --target {WEATHER_DIR} -r requirements/bench-weather.txt"
        )
    return path


def load_weather(climate: Climate) -> tuple[dict[str, FloatArray], dict[str, float]]:
    """The climate's 8760 hourly rows (row r: the hour [r, r+1) of local standard time) and its
    latitude, longitude, altitude and UTC offset."""
    import pvlib

    path = weather_path(climate)
    if climate.reader == "tmy2":
        table, meta = pvlib.iotools.read_tmy2(path)
        table = table.rename(
            columns={"GHI": "ghi", "DNI": "dni", "DHI": "dhi", "DryBulb": "temp_air"}
        )
        table = table.rename(columns={"Wspd": "wind_speed"})
        table["temp_air"] = table["temp_air"] / 10.0  # TMY2: tenths of a degree
        table["wind_speed"] = table["wind_speed"] / 10.0  # and of a m/s
    elif climate.reader == "tmy3":
        table, meta = pvlib.iotools.read_tmy3(path, coerce_year=2023, map_variables=True)
    elif climate.reader == "epw":
        # EPW hour h is the hour ending at h o'clock local standard time; pvlib's reader labels
        # it by its start, which is the benchmark's row.
        table, meta = pvlib.iotools.read_epw(path)
    else:
        return _pvgis_weather(path)
    return {k: table[k].to_numpy(dtype=float) for k in WEATHER_COLUMNS}, {
        k: float(meta[k]) for k in ("latitude", "longitude", "altitude", "TZ")
    }


PVGIS_UTC_OFFSET = 1  # 8° E: Central European (standard) time
PVGIS_LAG_MIN = 10.0  # its irradiance lines up with clear-sky sun this long after the stamp


def _pvgis_weather(path: Path) -> tuple[dict[str, FloatArray], dict[str, float]]:
    """PVGIS 5 TMY: rows stamped HH:00 UTC whose irradiance is the satellite value of about
    HH:10 (checked against clear-sky sun position over the year), not an hourly mean. To local
    standard time, then irradiance interpolated to each hour's middle, where the PV model
    evaluates the row."""
    import pvlib

    table, meta = pvlib.iotools.read_pvgis_tmy(path, map_variables=True)
    rows = {k: np.roll(table[k].to_numpy(dtype=float), PVGIS_UTC_OFFSET) for k in WEATHER_COLUMNS}
    to_middle = (30.0 - PVGIS_LAG_MIN) / 60.0
    for k in ("ghi", "dni", "dhi"):
        v = rows[k]
        rows[k] = np.clip(v + (np.roll(v, -1) - v) * to_middle, 0.0, None)
    where = meta["inputs"]
    return rows, {
        "latitude": float(where["latitude"]),
        "longitude": float(where["longitude"]),
        "altitude": float(where["elevation"]),
        "TZ": float(PVGIS_UTC_OFFSET),
    }


@dataclass
class World:
    climate: Climate
    house: House
    pv: FloatArray
    load: FloatArray
    forecast_wh: FloatArray
    noise_grid: FloatArray
    noise_battery: FloatArray
    noise_rig: FloatArray
    pv_hourly_kwh: float  # the PV model on the hourly TMY data, before the 10-s cloud model
    clear_sky_index: FloatArray  # hourly
    idle_midnight_wh: list[float] = field(default_factory=list)  # battery energy, rig idle
    _lists: tuple[list[float], ...] | None = None
    _blips: list[int] | None = None

    @property
    def key(self) -> str:
        return f"{self.house.key}/{self.climate.key}"

    def blips(self) -> list[int]:
        """Per step, a bit mask of the readings that are unavailable (BLIP_INPUTS' order)."""
        if self._blips is None:
            self._blips = blip_masks(self.climate.seed + self.house.seed + 500)
        return self._blips

    def lists(self) -> tuple[list[float], ...]:
        """The per-step series as Python lists (indexing them is what the step loop does)."""
        if self._lists is None:
            series = (self.pv, self.load, self.noise_grid, self.noise_battery, self.noise_rig)
            self._lists = (*(a.tolist() for a in series), self.forecast_wh.tolist())
        return self._lists


def _pv_model(
    times: Any, location: Any, weather: dict[str, Any], tilt: float, house: House
) -> FloatArray:
    """AC power (W) of the house's south-facing array: Hay-Davies transposition, SAPM cell
    temperature, PVWatts DC and inverter models, PVWatts' default losses. `weather` holds ghi,
    dni, dhi (W/m2), temp_air (C) and wind_speed (m/s) for `times`."""
    import pvlib

    ghi, dni, dhi = weather["ghi"], weather["dni"], weather["dhi"]
    position = location.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(
        tilt,
        180.0,
        position["apparent_zenith"],
        position["azimuth"],
        dni,
        ghi,
        dhi,
        dni_extra=pvlib.irradiance.get_extra_radiation(times),
        model="haydavies",
    )["poa_global"].fillna(0.0)
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["close_mount_glass_glass"]
    cell = pvlib.temperature.sapm_cell(poa, weather["temp_air"], weather["wind_speed"], **params)
    dc = pvlib.pvsystem.pvwatts_dc(poa, cell, house.pv_kwp * 1000.0, -0.0037) * (1.0 - PV_LOSSES)
    ac = pvlib.inverter.pvwatts(dc, house.inverter_w / 0.96)
    return np.clip(np.asarray(ac, dtype=float), 0.0, house.inverter_w)


def pv_power(
    climate: Climate, house: House, rng: np.random.Generator
) -> tuple[FloatArray, float, FloatArray]:
    """10-s PV power for the year, the hourly model's energy (kWh), the hourly clear-sky index."""
    import pandas as pd
    import pvlib
    from scipy.signal import lfilter
    from scipy.special import ndtri

    tmy, meta = load_weather(climate)
    tz = f"Etc/GMT{-int(meta['TZ']):+d}"  # the rows are in local standard time
    location = pvlib.location.Location(meta["latitude"], meta["longitude"], tz, meta["altitude"])
    # Row r holds the hour ending at r+1 o'clock, i.e. [r, r+1): model it at its middle.
    start = pd.Timestamp("2023-01-01 00:00", tz=tz)
    mid = pd.date_range(start + pd.Timedelta(minutes=30), periods=8760, freq="h")
    columns = ("ghi", "dni", "dhi", "temp_air", "wind_speed")
    hourly = _pv_model(mid, location, {k: tmy[k] for k in columns}, climate.tilt, house)
    # Clear-sky PV every 5 minutes (bin centres), from the same chain with Ineichen's clear sky.
    five = pd.date_range(start + pd.Timedelta(seconds=150), periods=8760 * 12, freq="5min")
    clear_sky = location.get_clearsky(five, model="ineichen")
    weather5 = {k: clear_sky[k].to_numpy() for k in ("ghi", "dni", "dhi")}
    weather5 |= {k: np.repeat(tmy[k], 12) for k in ("temp_air", "wind_speed")}
    clear5 = _pv_model(five, location, weather5, climate.tilt, house)
    clear_hour = clear5.reshape(8760, 12).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        k_hour = np.where(clear_hour > 20.0, hourly / clear_hour, np.where(hourly > 0, 1.0, 0.0))
    k_hour = np.clip(k_hour, 0.0, 1.3)

    t = np.arange(N_STEPS) * STEP_S + STEP_S / 2
    clear = np.interp(t, np.arange(8760 * 12) * 300.0 + 150.0, clear5)
    k = np.interp(t, np.arange(8760) * 3600.0 + 1800.0, k_hour)
    sun_fraction = np.clip((k - SHADE_K) / (1.0 - SHADE_K), 0.0, 1.0)
    a = math.exp(-STEP_S / CLOUD_TAU_S)
    z = lfilter([math.sqrt(1.0 - a * a)], [1.0, -a], rng.standard_normal(N_STEPS))
    with np.errstate(divide="ignore"):
        sunny = (z < ndtri(sun_fraction)).astype(float)
    b = math.exp(-STEP_S / EDGE_TAU_S)
    sunny = lfilter([1.0 - b], [1.0, -b], sunny, zi=[b * sunny[0]])[0]
    level = SHADE_K + (1.0 - SHADE_K) * sunny
    mean_level = SHADE_K + (1.0 - SHADE_K) * sun_fraction
    pv = np.clip(clear * k * level / mean_level, 0.0, house.inverter_w)
    return pv, float(hourly.sum()) / 1000.0, k_hour


def _add(load: FloatArray, start_s: float, profile: FloatArray) -> None:
    i = int(start_s // STEP_S)
    if 0 <= i < len(load):
        j = min(len(load), i + len(profile))
        load[i:j] += profile[: j - i]


def _steps(seconds: float) -> int:
    return max(1, round(seconds / STEP_S))


def _cycling(watts: float, on_s: float, off_s: float, total_s: float) -> FloatArray:
    """A thermostat or element switching on and off."""
    period = np.arange(_steps(total_s)) * STEP_S % (on_s + off_s)
    return np.where(period < on_s, watts, 0.0)


def household_load(rng: np.random.Generator, latitude: float) -> FloatArray:
    """A household's draw (W) at 10 s: standby, fridge, daily activity and lighting, and
    appliance events (kettle, microwave, cooktop, oven, washer, dishwasher, hair dryer/vacuum)."""
    from scipy.signal import lfilter

    t = np.arange(N_STEPS) * STEP_S
    hour = (t % 86400.0) / 3600.0
    day = (t // 86400.0).astype(int)
    # Daily activity (lights, TV, computers, small loads), W by hour of day.
    morning = [40, 30, 25, 25, 25, 40, 140, 260, 200, 120, 110, 120]  # 00-12 h
    afternoon = [170, 140, 110, 120, 160, 260, 340, 360, 330, 280, 180, 80]  # 12-24 h
    activity = np.array([*morning, *afternoon], dtype=float)
    base = np.interp(hour, np.arange(25), np.append(activity, activity[0]))
    base *= np.exp(rng.normal(0.0, 0.2, DAYS))[day]
    # Lighting: more on winter evenings and mornings, the more so the further north.
    winter = 0.5 + 0.5 * np.cos(2 * np.pi * (day + 10) / 365.0)
    dark = ((hour >= 16.5) & (hour < 23.0)) | ((hour >= 6.0) & (hour < 8.5))
    base += dark * winter * (60.0 + 4.0 * max(0.0, latitude - 30.0))
    # Standby plus a slowly wandering small load.
    c = math.exp(-STEP_S / 600.0)
    wander = lfilter([math.sqrt(1 - c * c)], [1.0, -c], rng.standard_normal(N_STEPS))
    base += 70.0 + 20.0 * wander
    # Fridge-freezer compressor: 95 W for 15 of every 45 minutes.
    base += np.where((t + rng.uniform(0, 2700)) % 2700.0 < 900.0, 95.0, 0.0)
    load: FloatArray = np.maximum(base, 40.0)

    def at(hour_mean: float, hour_sd: float) -> float:
        return float(np.clip(rng.normal(hour_mean, hour_sd), 0.0, 23.9)) * 3600.0

    for d in range(DAYS):
        t0 = d * 86400.0
        weekend = d % 7 in (5, 6)
        for _ in range(rng.poisson(2.5)):  # kettle, 2 kW for 2-4 min
            when = rng.choice([7.0, 10.5, 15.5, 20.0])
            _add(load, t0 + at(when, 1.0), np.full(_steps(rng.uniform(120, 240)), 2000.0))
        for _ in range(rng.poisson(1.2)):  # microwave
            when = rng.choice([8.0, 12.5, 18.5])
            _add(load, t0 + at(when, 0.8), np.full(_steps(rng.uniform(120, 360)), 1100.0))
        if rng.random() < 0.7:  # cooktop dinner
            profile = _cycling(rng.uniform(1200, 1800), 40.0, 20.0, rng.uniform(600, 1500))
            _add(load, t0 + at(18.0, 0.8), profile)
        if rng.random() < (0.5 if weekend else 0.25):  # cooktop lunch
            _add(load, t0 + at(12.2, 0.6), _cycling(1500.0, 40.0, 20.0, rng.uniform(600, 1200)))
        oven_times = [17.5] if rng.random() < 0.45 else []
        if weekend and rng.random() < 0.4:
            oven_times.append(11.5)
        for when in oven_times:  # oven: preheat, then thermostat cycling
            preheat = np.full(_steps(rng.uniform(600, 900)), 2400.0)
            bake = _cycling(2400.0, 60.0, 90.0, rng.uniform(1800, 3600)) + 30.0
            _add(load, t0 + at(when, 0.7), np.concatenate([preheat, bake]))
        if rng.random() < 0.4:  # washing machine, started during the day
            heat = np.full(_steps(rng.uniform(600, 1200)), 2000.0)
            wash = _cycling(250.0, 30.0, 30.0, 2700.0) + 60.0
            rinse = np.full(_steps(1200), 100.0)
            spin = np.full(_steps(600), 500.0)
            start = t0 + rng.uniform(8.0, 17.0) * 3600.0
            _add(load, start, np.concatenate([heat, wash, rinse, spin]))
        if rng.random() < 0.85:  # dishwasher, mostly after dinner
            fill = np.full(_steps(300), 80.0)
            heat = np.full(_steps(900), 1800.0)
            wash = np.full(_steps(2400), 80.0)
            rinse_heat = np.full(_steps(600), 1800.0)
            dry = np.full(_steps(1200), 10.0)
            when = 20.5 if rng.random() < 0.8 else 13.5
            _add(load, t0 + at(when, 0.7), np.concatenate([fill, heat, wash, rinse_heat, dry]))
        for _ in range(rng.poisson(0.5)):  # hair dryer or vacuum cleaner
            start = t0 + rng.uniform(7.0, 21.0) * 3600.0
            _add(load, start, np.full(_steps(rng.uniform(300, 600)), 1400.0))
    return load


# Blips: each input is unavailable, independently of the others, for BLIP_SHARE of its readings
# and for one BLIP_OUTAGE_S outage a day at a random time (a cloud or Modbus integration dropping
# readings). Only Joulegate's controller is run on them: the baselines have no notion of missing.
BLIP_INPUTS = ("grid", "battery", "soc", "rig", "forecast")
BLIP_SHARE = 0.01
BLIP_OUTAGE_S = 120.0


def blip_masks(seed: int) -> list[int]:
    """Per step, bit k set where BLIP_INPUTS[k] is unavailable."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(N_STEPS, dtype=np.int64)
    length = _steps(BLIP_OUTAGE_S)
    for bit in range(len(BLIP_INPUTS)):
        off = rng.random(N_STEPS) < BLIP_SHARE
        starts = np.arange(DAYS) * DAY_STEPS + rng.integers(0, DAY_STEPS - length, DAYS)
        off[(starts[:, None] + np.arange(length)).reshape(-1)] = True
        mask |= off.astype(np.int64) << bit
    return [int(m) for m in mask.tolist()]


def build_world(climate: Climate, house: House = HOUSES[0]) -> World:
    rng = np.random.default_rng(climate.seed + house.seed)
    pv, pv_hourly_kwh, k_hour = pv_power(climate, house, rng)
    load = household_load(rng, load_weather(climate)[1]["latitude"])
    if house.load_kwh_day is not None:
        load *= house.load_kwh_day * 1000.0 * DAYS / float(load.sum() * DT_H)
    # Forecast of the PV energy still to come today: the truth times a per-day error.
    per_day = (pv * DT_H).reshape(DAYS, DAY_STEPS)
    remaining = np.flip(np.cumsum(np.flip(per_day, axis=1), axis=1), axis=1)
    error = np.exp(rng.normal(0.0, FORECAST_ERROR, DAYS))[:, None]
    forecast = (remaining * error).reshape(-1)
    return World(
        climate=climate,
        house=house,
        pv=pv,
        load=load,
        forecast_wh=forecast,
        noise_grid=rng.normal(0.0, METER_NOISE_W, N_STEPS),
        noise_battery=rng.normal(0.0, METER_NOISE_W, N_STEPS),
        noise_rig=rng.normal(0.0, RIG_NOISE_W, N_STEPS),
        pv_hourly_kwh=pv_hourly_kwh,
        clear_sky_index=k_hour,
    )


# --- controllers -----------------------------------------------------------------------------
# A controller is made fresh for each simulated stretch; it is called once per 10-s step with the
# step index and a reading (grid W, battery W, battery SoC %, rig W above idle, forecast Wh, true
# battery Wh) and answers whether the gate is open for the next step. Only the oracle reads the
# last item (and the future, through the world it was made with).
Reading = tuple[float | None, float | None, float | None, float | None, float | None, float]
Decide = Callable[[int, Reading], bool]
Factory = Callable[[], Decide]

BF = "battery_first"
IF = "inference_first"
BAL = "balanced"
POLICIES = (BF, IF, BAL)
POLICY_LABEL = {BF: "battery first", IF: "inference first", BAL: "balanced (forecast)"}

FULL_SOC = 98.0  # Joulegate's shipped full_soc, used by the balanced rule of every controller
FORECAST_FACTOR = 1.2


def _signal(
    policy: str, battery_wh: float, *, discharge: bool = False
) -> Callable[[float, float, float, float], float]:
    """The surplus a user's automation reads for a policy, from grid, battery, SoC, forecast:
    battery first sees only export (less any battery discharge when `discharge`, as evcc
    counts it); inference first adds the battery's charge power (and so counts discharge);
    balanced switches between them by the same forecast rule as Joulegate's controller."""

    def battery_first(g: float, b: float, soc: float, fc: float) -> float:
        return -g - max(0.0, b) if discharge else -g

    def inference_first(g: float, b: float, soc: float, fc: float) -> float:
        return -g - b

    def balanced(g: float, b: float, soc: float, fc: float) -> float:
        gap = max(0.0, FULL_SOC - soc) / 100.0 * battery_wh
        if fc >= gap * FORECAST_FACTOR:
            return inference_first(g, b, soc, fc)
        return battery_first(g, b, soc, fc)

    return {BF: battery_first, IF: inference_first, BAL: balanced}[policy]


def naive(policy: str, house: House) -> Factory:
    """Open while export (plus charge power, by policy) exceeds the rig's power; no add-back."""
    signal = _signal(policy, house.battery_wh)

    def make() -> Decide:
        def decide(i: int, reading: Reading) -> bool:
            g, b, soc, _, fc, _ = reading
            return signal(g, b, soc, fc) > NEED_W

        return decide

    return make


def naive_add_back(policy: str, house: House) -> Factory:
    """The same, with the rig's own measured power added back to the surplus."""
    signal = _signal(policy, house.battery_wh)

    def make() -> Decide:
        def decide(i: int, reading: Reading) -> bool:
            g, b, soc, r, fc, _ = reading
            return signal(g, b, soc, fc) + max(0.0, r) > NEED_W

        return decide

    return make


def delayed_thresholds(
    policy: str, house: House, enable_s: float = 60.0, disable_s: float = 180.0
) -> Factory:
    """evcc-style: add-back surplus (battery discharge counted, as evcc does), enable after it
    covers the rig for `enable_s`, disable after it has fallen short for `disable_s`."""
    signal = _signal(policy, house.battery_wh, discharge=True)

    def make() -> Decide:
        state = {"open": False, "since": -math.inf}

        def decide(i: int, reading: Reading) -> bool:
            g, b, soc, r, fc, _ = reading
            now = i * STEP_S
            enough = signal(g, b, soc, fc) + max(0.0, r) >= NEED_W
            if enough is state["open"]:  # the condition agrees with the state: restart the timer
                state["since"] = math.inf
                return bool(state["open"])
            if state["since"] == math.inf:
                state["since"] = now
            if now - state["since"] >= (disable_s if state["open"] else enable_s):
                state["open"] = enough
                state["since"] = math.inf
            return bool(state["open"])

        return decide

    return make


def joulegate(policy: str, house: House, **settings: Any) -> Factory:
    """The integration's SurplusController with its shipped defaults (or `settings`)."""
    chosen = SP.Settings(
        policy=SP.BatteryPolicy(policy), battery_capacity_wh=house.battery_wh, **settings
    )
    return stepping(lambda: SP.SurplusController(chosen))


def stepping(new_controller: Callable[[], Any]) -> Factory:
    """A gate from a SurplusController (or a subclass) made fresh for each stretch: the readings
    become its `Inputs`, its decision the gate."""
    inputs = SP.Inputs

    def make() -> Decide:
        step = new_controller().step

        def decide(i: int, reading: Reading) -> bool:
            g, b, soc, r, fc, _ = reading
            shown = inputs(
                now=i * STEP_S,
                grid_w=g,
                rig_inference_w=r,
                has_battery=True,
                battery_w=b,
                battery_soc=soc,
                forecast_remaining_wh=fc,
            )
            return bool(step(shown).open)

        return decide

    return make


def oracle(world: World, policy: str) -> Factory:
    """Knows the whole year: starts a job exactly when the policy's true surplus will cover the
    rig for all of the job's 30 s. Inference first: PV minus house load. Battery first: what the
    battery cannot take (its charge power limit; nothing once it counts as full, at Joulegate's
    full_soc). Balanced: the forecast rule."""
    house = world.pv - world.load
    # min over the next JOB_STEPS steps, starting one step ahead (the job the gate lets start)
    ahead = np.full(N_STEPS, -np.inf)
    window = np.lib.stride_tricks.sliding_window_view(house, JOB_STEPS).min(axis=1)
    ahead[: len(window) - 1] = window[1:]
    ahead_list: list[float] = ahead.tolist()
    room_k = 1.0 / (BATTERY_EFF * DT_H)
    house = world.house
    capacity = house.battery_wh

    def make() -> Decide:
        def decide(i: int, reading: Reading) -> bool:
            fc, e = reading[4], reading[5]
            surplus = ahead_list[i]
            true_soc = e / capacity * 100.0
            inference_first = policy == IF
            if policy == BAL:
                gap = max(0.0, FULL_SOC - true_soc) / 100.0 * capacity
                inference_first = fc >= gap * FORECAST_FACTOR
            if not inference_first and true_soc < FULL_SOC:
                # the battery only fills further within the job, so this never overstates export
                surplus -= min(charge_limit(house, e), max(0.0, capacity - e) * room_k)
            return surplus >= NEED_W

        return decide

    return make


def idle() -> Factory:
    def make() -> Decide:
        return lambda i, reading: False

    return make


# --- simulation ------------------------------------------------------------------------------
def charge_limit(house: House, e: float) -> float:
    """The battery's charge power limit (W) holding `e` Wh: full power, tapering near full."""
    if house.taper_from_soc is None:
        return house.battery_max_w
    start = house.taper_from_soc / 100.0 * house.battery_wh
    if e <= start:
        return house.battery_max_w
    left = max(0.0, house.battery_wh - e) / (house.battery_wh - start)
    return house.battery_max_w * (TAPER_FLOOR + (1.0 - TAPER_FLOOR) * left)


@dataclass
class Tally:
    controller: str
    policy: str
    days: int
    jobs: int = 0
    inference_wh: float = 0.0
    solar_wh: float = 0.0
    battery_wh: float = 0.0
    grid_wh: float = 0.0
    import_wh: float = 0.0
    export_wh: float = 0.0
    switches: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    steps: int = 0
    midnight_wh: list[float] = field(default_factory=list)  # battery energy at each day's start
    closes: list[int] = field(default_factory=list)  # steps after which the gate closed

    @property
    def solar_share(self) -> float:
        return self.solar_wh / self.inference_wh if self.inference_wh else float("nan")


@dataclass
class Recording:
    gate: list[bool] = field(default_factory=list)
    rig: list[float] = field(default_factory=list)
    soc: list[float] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)


def simulate(
    world: World,
    factory: Factory,
    controller: str,
    policy: str,
    *,
    days: Sequence[int] | None = None,
    record: Recording | None = None,
    blips: bool = False,
) -> Tally:
    """Step the home and the rig through `days` (all by default), 10 s at a time.

    A stretch of consecutive days starts with the idle-rig battery state at its first midnight
    (the year starts at BATTERY_START_SOC) and a fresh controller. Each step: start a job if the
    gate is open and the rig is free; the battery charges from surplus and covers deficits (up
    to its power limit, between BATTERY_MIN_SOC and full); the grid takes the rest; attribute the
    rig's power; show the meters (with noise) to the controller for the next step's gate, with
    the readings that `blips` takes away (World.blips) as None.
    """
    started = time.process_time()
    day_list = list(range(DAYS)) if days is None else sorted(days)
    tally = Tally(controller, policy, len(day_list), switches=[0] * len(day_list))
    pv, load, noise_g, noise_b, noise_r, forecast = world.lists()
    attribute = SP.attribute
    house = world.house
    full_wh, empty_wh = house.battery_wh, BATTERY_MIN_SOC / 100.0 * house.battery_wh
    max_w = house.battery_max_w
    taper_wh = full_wh if house.taper_from_soc is None else house.taper_from_soc / 100.0 * full_wh
    charge_k, discharge_k = 1.0 / (BATTERY_EFF * DT_H), BATTERY_EFF / DT_H
    soc_k = 100.0 / full_wh
    missing = world.blips() if blips else None
    jobs = 0
    solar = from_battery = from_grid = rig_wh = imported = exported = 0.0
    e = BATTERY_START_SOC / 100.0 * full_wh
    decide = factory()
    gate = False
    busy = 0
    previous_day = -2
    midnight: list[float] = []
    closes = tally.closes
    for n, d in enumerate(day_list):
        if d != previous_day + 1:  # a new stretch
            if d > 0:
                e = world.idle_midnight_wh[d]
            decide = factory()
            gate = False
            busy = 0
        previous_day = d
        midnight.append(e)
        day_switches = 0
        for i in range(d * DAY_STEPS, (d + 1) * DAY_STEPS):
            if busy == 0 and gate:
                busy = JOB_STEPS
            if busy:
                rig = NEED_W
                busy -= 1
                if busy == 0:
                    jobs += 1
            else:
                rig = 0.0
            net = load[i] + rig - pv[i]
            if net < 0.0:
                limit = max_w if e <= taper_wh else charge_limit(house, e)
                charge = min(-net, limit, max(0.0, full_wh - e) * charge_k)
                battery = -charge
                e += charge / charge_k
                grid = net + charge
            else:
                discharge = min(net, max_w, max(0.0, e - empty_wh) * discharge_k)
                battery = discharge
                e -= discharge / discharge_k
                grid = net - discharge
            if grid > 0.0:
                imported += grid
            else:
                exported -= grid
            if rig:
                parts = attribute(rig, grid, battery)
                solar += parts.solar
                from_battery += parts.battery
                from_grid += parts.grid
                rig_wh += rig
            reading: Reading = (
                round(grid + noise_g[i]),
                round(battery + noise_b[i]),
                round(e * soc_k),
                rig + noise_r[i],
                forecast[i],
                e,
            )
            if missing is not None and (m := missing[i]):
                g, b, soc, r, fc, _ = reading
                reading = (
                    None if m & 1 else g,
                    None if m & 2 else b,
                    None if m & 4 else soc,
                    None if m & 8 else r,
                    None if m & 16 else fc,
                    e,
                )
            is_open = decide(i, reading)
            if is_open is not gate:
                day_switches += 1
                gate = is_open
                if not gate:
                    closes.append(i)
            if record is not None:
                record.gate.append(gate)
                record.rig.append(rig)
                record.soc.append(e * soc_k)
                record.grid.append(grid)
        tally.switches[n] = day_switches
    tally.midnight_wh = midnight
    tally.jobs = jobs
    tally.inference_wh = rig_wh * DT_H
    tally.solar_wh = solar * DT_H
    tally.battery_wh = from_battery * DT_H
    tally.grid_wh = from_grid * DT_H
    tally.import_wh = imported * DT_H
    tally.export_wh = exported * DT_H
    tally.cpu_s = time.process_time() - started
    tally.steps = len(day_list) * DAY_STEPS
    return tally


# --- the runs --------------------------------------------------------------------------------
CONTROLLERS: tuple[tuple[str, str], ...] = (
    ("naive", "naive: open while export > rig power"),
    ("naive_add_back", "naive + rig's own power added back"),
    ("delayed", "thresholds, 1-min enable / 3-min disable delays (evcc-style)"),
    ("joulegate", "Joulegate SurplusController, shipped defaults"),
    ("oracle", "oracle (knows the year)"),
)


def factory_for(world: World, controller: str, policy: str, **settings: Any) -> Factory:
    if controller == "naive":
        return naive(policy, world.house)
    if controller == "naive_add_back":
        return naive_add_back(policy, world.house)
    if controller == "delayed":
        return delayed_thresholds(policy, world.house)
    if controller == "joulegate":
        return joulegate(policy, world.house, **settings)
    if controller == "oracle":
        return oracle(world, policy)
    raise ValueError(controller)


TARGET_POLICIES = (BF, IF)  # the policies with targets (and balanced lies between them)
BLIPS = "joulegate_blips"  # Joulegate's controller, shipped defaults, on readings with blips
REFERENCE_HOUSE = HOUSES[0].key  # the house every controller runs in; elsewhere Joulegate only

# Sweep of the controller's timing settings, for choosing defaults by the worst case over every
# house and climate: the surplus energy banked before opening (in minutes of the rig's full
# need, as the shipped default is written) and the minimum off time, and for inference first
# the battery reserve too. Simulated on every SWEEP_EVERY-th day to fit the run.
SWEEP_OPEN_AFTER_MIN = (0.5, 1.0, 2.0, 5.0)
SWEEP_MIN_OFF_S = (120.0, 300.0, 600.0)
SWEEP_RESERVE_SOC = (10.0, 15.0, 20.0)
SWEEP_POLICIES = TARGET_POLICIES
SWEEP_EVERY = 16


def sweep_settings(policy: str) -> list[dict[str, float]]:
    """The swept settings of one policy, the shipped defaults among them (the reserve only
    matters to inference first)."""
    shipped = SP.Settings()
    open_after = sorted({*SWEEP_OPEN_AFTER_MIN, shipped.open_after_wh * 3600.0 / NEED_W / 60.0})
    reserves = SWEEP_RESERVE_SOC if policy == IF else ()
    return [
        {"open_after_min": m, "min_off_s": off, "reserve_soc": reserve}
        for m in open_after
        for off in sorted({*SWEEP_MIN_OFF_S, shipped.min_off_s})
        for reserve in sorted({*reserves, shipped.reserve_soc})
    ]


def controller_settings(setting: dict[str, float]) -> dict[str, float]:
    """A swept setting as SurplusController settings."""
    return {
        "open_after_wh": setting["open_after_min"] * 60.0 * NEED_W / 3600.0,
        "min_off_s": setting["min_off_s"],
        "reserve_soc": setting["reserve_soc"],
    }


def sample_days(every: int, offset: int = 3) -> list[int]:
    return list(range(offset, DAYS, every))


def summary(t: Tally) -> dict[str, Any]:
    s = sorted(t.switches)
    out = asdict(t)
    out.pop("switches")
    out.pop("midnight_wh")
    out.pop("closes")
    out["solar_share"] = t.solar_share
    out["switches_median"] = float(np.median(s)) if s else 0.0
    out["switches_p95"] = float(np.percentile(s, 95)) if s else 0.0
    out["switches_max"] = max(s) if s else 0
    out["switches_per_day"] = t.switches
    return out


CAUSE_W = 300.0  # a load step or PV drop of this much within the last minute explains a closing


def classify_closes(world: World, closes: Sequence[int]) -> dict[str, int]:
    """Why the gate closed: a load step, a PV drop (cloud), both, or neither (a slow crossing,
    PV sinking below the load at dusk or small load swings such as the fridge near the edge)."""
    causes = {"load step": 0, "PV drop": 0, "both": 0, "slow crossing": 0}
    pv, load = world.pv, world.load
    for i in closes:
        before = slice(max(0, i - 6), i)
        if i - 6 < 0:
            causes["slow crossing"] += 1
            continue
        stepped = load[i] - load[before].min() > CAUSE_W
        dropped = pv[before].max() - pv[i] > CAUSE_W
        key = "both" if stepped and dropped else "load step" if stepped else "PV drop"
        causes[key if stepped or dropped else "slow crossing"] += 1
    return causes


def pick_trace_day(world: World) -> int:
    """A bright day of broken cloud, late spring or summer: where gates are put to the test."""
    k = world.clear_sky_index.reshape(DAYS, 24)[:, 9:16]
    pv_day = world.pv.reshape(DAYS, DAY_STEPS).sum(axis=1)
    broken = ((k > 0.45) & (k < 0.9)).sum(axis=1)
    bright = pv_day >= np.percentile(pv_day, 60)
    candidates = [d for d in range(120, 240) if bright[d]]
    return max(candidates, key=lambda d: (int(broken[d]), -d)) if candidates else 150


def run_world(house_key: str, climate_key: str, quick: bool = False) -> dict[str, Any]:
    """Everything for one house in one climate (one worker process): world, idle year,
    controllers (all of them and every policy in the reference house; elsewhere Joulegate and
    the oracle in the policies with targets), Joulegate on readings with blips (policies with
    targets), the sweep, and (reference house) a traced day."""
    house = next(h for h in HOUSES if h.key == house_key)
    climate = next(c for c in CLIMATES if c.key == climate_key)
    began = time.monotonic()
    world = build_world(climate, house)
    build_s = time.monotonic() - began
    days = sample_days(7) if quick else None
    baseline = simulate(world, idle(), "idle", "-")
    world.idle_midnight_wh = baseline.midnight_wh
    if quick:  # sampled stretches start from the full idle year's battery state
        baseline = simulate(world, idle(), "idle", "-", days=days)
    reference = house.key == REFERENCE_HOUSE
    controllers = [c for c, _ in CONTROLLERS] if reference else ["joulegate", "oracle"]
    runs: list[dict[str, Any]] = []
    for policy in POLICIES if reference else TARGET_POLICIES:
        blips = [BLIPS] if policy in TARGET_POLICIES else []
        for controller in [*controllers, *blips]:
            name = "joulegate" if controller == BLIPS else controller
            factory = factory_for(world, name, policy)
            tally = simulate(
                world, factory, controller, policy, days=days, blips=controller == BLIPS
            )
            runs.append(summary(tally) | {"close_causes": classify_closes(world, tally.closes)})
            print(
                f"[{world.key}] {policy:15s} {controller:15s} solar {100 * tally.solar_share:6.2f} "
                f"% jobs {tally.jobs:7d} cpu {tally.cpu_s:5.1f} s",
                file=sys.stderr,
                flush=True,
            )
    sweep_days = sample_days(SWEEP_EVERY if not quick else 28)
    sweep: list[dict[str, Any]] = []
    for policy in SWEEP_POLICIES:
        for controller in [*controllers, BLIPS]:
            if controller in ("joulegate", BLIPS):
                continue
            factory = factory_for(world, controller, policy)
            tally = simulate(world, factory, controller, policy, days=sweep_days)
            sweep.append(summary(tally) | {"open_after_min": None, "min_off_s": None})
        for setting in sweep_settings(policy):
            factory = joulegate(policy, house, **controller_settings(setting))
            tally = simulate(world, factory, "joulegate", policy, days=sweep_days)
            sweep.append(summary(tally) | setting)
        print(f"[{world.key}] sweep {policy} done", file=sys.stderr, flush=True)
    traces: dict[str, dict[str, list[float]]] = {}
    trace_day = pick_trace_day(world)
    if reference:
        for controller in ("naive", "delayed", "joulegate"):
            rec = Recording()
            factory = factory_for(world, controller, BF)
            simulate(world, factory, controller, BF, days=[trace_day], record=rec)
            traces[controller] = {
                "gate": [float(x) for x in rec.gate],
                "soc": rec.soc,
                "grid": rec.grid,
            }
    day_slice = slice(trace_day * DAY_STEPS, (trace_day + 1) * DAY_STEPS)
    return {
        "key": world.key,
        "house": asdict(house),
        "climate": asdict(climate),
        "build_s": build_s,
        "wall_s": time.monotonic() - began,
        "sampled_days": None if days is None else len(days),
        "sweep_days": len(sweep_days),
        "pv_kwh": float(world.pv.sum() * DT_H / 1000.0),
        "pv_hourly_kwh": world.pv_hourly_kwh,
        "load_kwh": float(world.load.sum() * DT_H / 1000.0),
        "idle": summary(baseline),
        "runs": runs,
        "sweep": sweep,
        "trace": {
            "day": trace_day,
            "pv": world.pv[day_slice].tolist(),
            "load": world.load[day_slice].tolist(),
            "controllers": traces,
        },
        "daily_pv_kwh": (world.pv.reshape(DAYS, DAY_STEPS).sum(axis=1) * DT_H / 1000.0).tolist(),
    }


def run(quick: bool = False, workers: int = 2) -> list[dict[str, Any]]:
    """Every house in every climate, the reference house first, in HOUSES and CLIMATES order."""
    pairs = [(h.key, c.key) for h in HOUSES for c in CLIMATES]
    with ProcessPoolExecutor(max_workers=min(workers, len(pairs))) as pool:
        return list(
            pool.map(run_world, [h for h, _ in pairs], [c for _, c in pairs], [quick] * len(pairs))
        )


def print_tables(results: Iterable[dict[str, Any]]) -> None:
    for result in results:
        print(f"\n{result['key']} {result['climate']['label']}: wall {result['wall_s']:.0f} s")
        for r in result["runs"]:
            print(
                f"{r['policy']:15s} {r['controller']:15s} solar {100 * r['solar_share']:6.2f} % "
                f"jobs {r['jobs']:7d} sw median {r['switches_median']:.0f} "
                f"p95 {r['switches_p95']:.0f} max {r['switches_max']}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every 7th day only (a smoke run)")
    args = parser.parse_args()
    print_tables(run(args.quick))


if __name__ == "__main__":
    main()
