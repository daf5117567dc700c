"""Batch work over a year: finished by its deadline, and how much of it on sunshine?

The homes, PV and house loads of `gate_year.py` (its worlds: both houses in every climate),
stepped every minute (the 10-s series averaged) through the typical year. A rig of NEED_W above
idle runs one batch request at a time (30 s each) behind the gate; batches are submitted on a
schedule (SCENARIOS) with a deadline. Four ways to run them, on the same data:

- *at once*: the rig runs whatever is queued, sun or not;
- *only on surplus*: Joulegate's `SurplusController` (shipped defaults, the house's battery
  policy) alone, stepped every minute: batches run while it is open, no deadline rule;
- *planner*: the same controller, plus `batch_plan.plan()` of the integration (shipped
  settings, grid when the sun does not come), asked while the controller is closed once a minute
  and whenever the gate closes or the sun comes or goes: batch work is admitted when it says so;
- *oracle*: knows the year: runs while the policy's true surplus covers the rig, and runs
  without it only when the surplus still to come before the deadline cannot finish the batch.

A batch not finished by its deadline expires (the rest of its requests are dropped). Energy is
split into solar, battery and grid by the integration's `attribute()` on the true flows.

The planner reads a simulated PV forecast (FORECAST_*): issued at midnight, hourly, for today
and tomorrow (so 24 to 48 h ahead), each day's hourly truth times one log-normal error per day
whose sigma grows with the lead time; beyond tomorrow nothing. The house load it expects is the
mean of the last 7 days, hour by hour (what the recorder's statistics give).

    python benchmarks/batch_year.py [--quick] [--workers N] [--write]  # --write: the report
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import math
import sys
import time
import types
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gate_year as gy

PACKAGE = gy.REPO / "custom_components" / "joulegate"


def load_planner() -> types.ModuleType:
    """The integration's batch planner and the controller it imports, loaded from their files as
    a package of their own (the integration's __init__ would import Home Assistant)."""
    name = "joulegate_policy"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(PACKAGE)]
        sys.modules[name] = package
    return importlib.import_module(f"{name}.batch_plan")


PL = load_planner()
SP = sys.modules["joulegate_policy.surplus"]

STEP_S = gy.STEP_S
DT_H = gy.DT_H
DAY = gy.DAY_STEPS
N = gy.N_STEPS
PLAN_EVERY = 6  # the planner is asked once a minute (Home Assistant asks every 10-s cycle)
NEED_W = gy.NEED_W
REQUEST_S = 30.0

FORECAST_SIGMA = (0.3, 0.45)  # log error of a day's forecast issued 0 and 1 days ahead
LOAD_DAYS = 7  # the expected load: the mean of the last days, hour by hour


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    requests: int
    every_days: int
    window_days: int
    submit_hour: float = 18.0

    @property
    def run_s(self) -> float:
        return self.requests * REQUEST_S


SCENARIOS = (
    Scenario("daily", "daily: 300 requests of 30 s at 18:00, 24-h window", 300, 1, 1),
    Scenario("weekly", "weekly: 2,100 requests of 30 s, Sundays 18:00, 7-d window", 2100, 7, 7),
)
STRATEGIES = (
    ("at_once", "run at once"),
    ("surplus", "only on surplus (no deadline rule)"),
    ("planner", "**Joulegate planner**"),
    ("oracle", "oracle (knows the year)"),
)


@dataclass
class BatchWorld:
    climate: str
    label: str
    house: gy.House
    pv: list[float]
    load: list[float]
    noise_grid: list[float]
    noise_battery: list[float]
    noise_rig: list[float]
    hourly_pv: np.ndarray[Any, np.dtype[np.float64]]  # true PV energy of each hour, Wh
    errors: np.ndarray[Any, np.dtype[np.float64]]  # [day, lead] forecast factor
    profiles: list[Any]  # the LoadProfile of each day
    idle_e: np.ndarray[Any, np.dtype[np.float64]]  # battery energy at each step, rig idle
    _forecasts: dict[int, tuple[Any, ...]] = field(default_factory=dict)

    def error(self, hour: int, issued_day: int) -> float:
        """The forecast's factor on the hour's true PV, as issued at midnight of `issued_day`."""
        return float(self.errors[hour // 24, hour // 24 - issued_day])

    def forecast(self, step: int) -> tuple[Any, ...]:
        """The forecast's hourly periods from the current hour to the end of tomorrow."""
        hour = step // 360
        cached = self._forecasts.get(hour)
        if cached is None:
            day = hour // 24
            last = min(gy.DAYS * 24, (day + 2) * 24)
            cached = tuple(
                PL.Period(
                    k * 3600.0, (k + 1) * 3600.0, float(self.hourly_pv[k] * self.error(k, day))
                )
                for k in range(hour, last)
            )
            self._forecasts[hour] = cached
        return cached


def build(climate: gy.Climate, house: gy.House) -> BatchWorld:
    world = gy.build_world(climate, house)
    pv, load = world.pv, world.load
    rng = np.random.default_rng(climate.seed + 700)
    hourly_pv = pv.reshape(-1, 360).sum(axis=1) * DT_H
    errors = np.exp(np.stack([rng.normal(0.0, s, gy.DAYS + 1) for s in FORECAST_SIGMA], axis=1))
    hourly_load = load.reshape(gy.DAYS, 24, 360).mean(axis=2)
    profiles = []
    for d in range(gy.DAYS):
        past = hourly_load[max(0, d - LOAD_DAYS) : max(1, d)]
        profiles.append(PL.LoadProfile(tuple(float(w) for w in past.mean(axis=0))))
    pv_list, load_list = pv.tolist(), load.tolist()
    return BatchWorld(
        climate=climate.key,
        label=climate.label,
        house=house,
        pv=pv_list,
        load=load_list,
        noise_grid=world.noise_grid.tolist(),
        noise_battery=world.noise_battery.tolist(),
        noise_rig=world.noise_rig.tolist(),
        hourly_pv=hourly_pv,
        errors=errors,
        profiles=profiles,
        idle_e=idle_battery(pv_list, load_list, house),
    )


# --- the home's battery, as gate_year.simulate runs it ----------------------------------------
CHARGE_K = 1.0 / (gy.BATTERY_EFF * DT_H)  # W per Wh of room filled in one step
DISCHARGE_K = gy.BATTERY_EFF / DT_H


def battery_step(net: float, e: float, house: gy.House) -> tuple[float, float, float]:
    """The battery covers `net` (load minus PV, W) within its limits, its charge power tapering
    near full where the house's does: (battery W, grid W, new e)."""
    full_wh = house.battery_wh
    if net < 0.0:
        charge = min(-net, gy.charge_limit(house, e), max(0.0, full_wh - e) * CHARGE_K)
        return -charge, net + charge, e + charge / CHARGE_K
    empty_wh = gy.BATTERY_MIN_SOC / 100.0 * full_wh
    discharge = min(net, house.battery_max_w, max(0.0, e - empty_wh) * DISCHARGE_K)
    return discharge, net - discharge, e - discharge / DISCHARGE_K


def idle_battery(
    pv: Sequence[float], load: Sequence[float], house: gy.House
) -> np.ndarray[Any, Any]:
    """The battery's energy at the start of each step with the rig idle."""
    e = gy.BATTERY_START_SOC / 100.0 * house.battery_wh
    out = np.empty(len(pv))
    for i, (p, w) in enumerate(zip(pv, load, strict=True)):
        out[i] = e
        e = battery_step(w - p, e, house)[2]
    return out


# --- simulation --------------------------------------------------------------------------------
@dataclass
class Tally:
    strategy: str
    scenario: str
    batches: int = 0
    on_time: int = 0
    energy_wh: float = 0.0
    solar_wh: float = 0.0
    battery_wh: float = 0.0
    grid_wh: float = 0.0
    forced_wh: float = 0.0  # run without surplus to meet a deadline (planner, oracle)
    forced_grid_wh: float = 0.0
    forced_battery_wh: float = 0.0
    outlook: dict[str, int] = field(default_factory=dict)  # planner: its outlook at submission
    cpu_s: float = 0.0

    @property
    def solar_share(self) -> float:
        return self.solar_wh / self.energy_wh if self.energy_wh else float("nan")

    @property
    def on_time_share(self) -> float:
        return self.on_time / self.batches if self.batches else float("nan")


def submissions(scenario: Scenario, days: Sequence[int]) -> list[tuple[int, int, float]]:
    """(submitted at step, deadline step, run time s) of every batch due within the year."""
    out = []
    for d in days:
        if d % scenario.every_days:
            continue
        at = d * DAY + round(scenario.submit_hour * 3600 / STEP_S)
        deadline = at + scenario.window_days * DAY
        if deadline <= N:
            out.append((at, deadline, scenario.run_s))
    return out


def simulate(
    world: BatchWorld, scenario: Scenario, strategy: str, policy: str, days: Sequence[int]
) -> Tally:
    """Step the home through the year a minute at a time, the batches queued as submitted."""
    began = time.process_time()
    tally = Tally(strategy, scenario.key)
    pv, load, noise_g, noise_b = world.pv, world.load, world.noise_grid, world.noise_battery
    noise_r = world.noise_rig
    attribute = SP.attribute
    house = world.house
    full_wh = house.battery_wh
    settings = SP.Settings(policy=SP.BatteryPolicy(policy), battery_capacity_wh=full_wh)
    controller = SP.SurplusController(settings)
    plan_settings = PL.PlanSettings(
        policy=PL.BatteryPolicy(policy),
        battery_capacity_wh=full_wh,
        full_soc=gy.FULL_SOC,
        cycle_s=PLAN_EVERY * STEP_S,
    )
    # the oracle's view of the future: the steps where PV covers the house and the rig, which is
    # when the rig's energy counts as solar (whatever the battery would have done with it)
    sun: list[bool] = []
    sun_steps_from: list[float] = []  # sun steps in [i, N)
    if strategy == "oracle":
        sun = [p - w >= NEED_W for p, w in zip(pv, load, strict=True)]
        after = np.cumsum(np.array(sun[::-1], dtype=float))[::-1]
        sun_steps_from = [*after.tolist(), 0.0]
    due = submissions(scenario, days)
    tally.batches = len(due)
    queue: list[list[float]] = []  # [deadline step, run s left, forced], earliest deadline first
    e = world.idle_e[due[0][0]] if due else 0.0
    gate = admitted = sun_before = False
    next_due = 0
    outlook = tally.outlook
    first = due[0][0] if due else N
    for i in range(first, N):
        while next_due < len(due) and due[next_due][0] == i:
            _, deadline, run_s = due[next_due]
            queue.append([deadline, run_s, 0.0])
            next_due += 1
            if strategy == "planner":
                expected = PL.plan(
                    planner_inputs(world, i, queue, e, admitted=False), plan_settings
                )
                outlook[str(expected.reason)] = outlook.get(str(expected.reason), 0) + 1
        while queue and queue[0][0] <= i:  # expired
            queue.pop(0)
        if not queue:
            if next_due >= len(due):
                break
            e = battery_step(load[i] - pv[i], e, house)[2]
            gate = admitted = False
            continue
        head = queue[0]
        forced = False
        if strategy == "at_once":
            run = True
        elif strategy == "oracle":
            run = sun[i]
            if not run:
                left_steps = sum(math.ceil(b[1] / STEP_S) for b in queue if b[0] <= head[0])
                run = forced = left_steps >= sun_steps_from[i + 1] - sun_steps_from[int(head[0])]
        else:
            run = gate or admitted
            forced = admitted and not gate
        rig_s = min(STEP_S, head[1]) if run else 0.0
        rig = NEED_W * rig_s / STEP_S
        battery, grid, e = battery_step(load[i] + rig - pv[i], e, house)
        if rig:
            parts = attribute(rig, grid, battery)
            tally.energy_wh += rig * DT_H
            tally.solar_wh += parts.solar * DT_H
            tally.battery_wh += parts.battery * DT_H
            tally.grid_wh += parts.grid * DT_H
            if forced:
                tally.forced_wh += rig * DT_H
                tally.forced_grid_wh += parts.grid * DT_H
                tally.forced_battery_wh += parts.battery * DT_H
            head[1] -= rig_s
            if head[1] <= 0.0:
                queue.pop(0)
                tally.on_time += 1
        if strategy in ("surplus", "planner") and queue:
            grid_w, battery_w = round(grid + noise_g[i]), round(battery + noise_b[i])
            rig_w = rig + noise_r[i]
            was_open = gate
            gate = controller.step(
                SP.Inputs(
                    now=(i + 1) * STEP_S,
                    grid_w=grid_w,
                    rig_inference_w=rig_w,
                    has_battery=True,
                    battery_w=battery_w,
                    battery_soc=round(e / full_wh * 100.0),
                )
            ).open
            sun_now = -grid_w - battery_w + max(0.0, rig_w) >= NEED_W
            # asked once a minute, and at once when the gate closes or the sun comes or goes
            ask = i % PLAN_EVERY == 0 or was_open or sun_now is not sun_before
            sun_before = sun_now
            if gate:
                admitted = False
            elif strategy == "planner" and ask:
                admitted = PL.plan(
                    planner_inputs(world, i + 1, queue, e, admitted=admitted, sun_now=sun_now),
                    plan_settings,
                ).admit
    tally.cpu_s = time.process_time() - began
    return tally


def planner_inputs(
    world: BatchWorld,
    step: int,
    queue: Sequence[Sequence[float]],
    e: float,
    *,
    admitted: bool,
    sun_now: bool = False,
) -> Any:
    """What Home Assistant would hand the planner: the queue as the agent estimates it (exact
    here), the forecast, the expected load, the battery's state of charge."""
    batches = [
        PL.Batch(
            deadline=b[0] * STEP_S,
            energy_wh=b[1] * NEED_W / 3600.0,
            run_s=b[1],
            longest_s=REQUEST_S,
        )
        for b in queue
    ]
    day = min(gy.DAYS - 1, step // DAY)
    return PL.PlanInputs(
        now=step * STEP_S,
        batches=batches,
        forecast=world.forecast(min(step, N - 1)),
        load=world.profiles[day],
        battery_soc=round(e / world.house.battery_wh * 100.0),
        admitted=admitted,
        sun_now=sun_now,
    )


# --- the runs ----------------------------------------------------------------------------------
POLICIES = (gy.BF, gy.IF)


def run_world(key: str, house_key: str, quick: bool = False) -> dict[str, Any]:
    """Every scenario and strategy for one house in one climate (one worker process)."""
    began = time.monotonic()
    climate = next(c for c in gy.CLIMATES if c.key == key)
    house = next(h for h in gy.HOUSES if h.key == house_key)
    world = build(climate, house)
    build_s = time.monotonic() - began
    days = list(range(0, gy.DAYS, 4 if quick else 1))
    if quick:  # a smoke run: a batch every 4th day, the weekly one as it comes
        days = sorted(set(days) | set(range(0, gy.DAYS, 7)))
    runs = []
    for policy in POLICIES:
        for scenario in SCENARIOS:
            for strategy, _ in STRATEGIES:
                tally = simulate(world, scenario, strategy, policy, days)
                runs.append(asdict(tally) | {"solar_share": tally.solar_share, "policy": policy})
                print(
                    f"[{house_key}/{key}] {policy} {scenario.key:6s} {strategy:8s} "
                    f"on time {tally.on_time}/{tally.batches} "
                    f"solar {100 * tally.solar_share:6.2f} % grid {tally.grid_wh:8.1f} Wh "
                    f"cpu {tally.cpu_s:5.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return {
        "climate": key,
        "house": house_key,
        "label": world.label,
        "build_s": build_s,
        "wall_s": time.monotonic() - began,
        "runs": runs,
    }


def run(quick: bool = False, workers: int = 2) -> list[dict[str, Any]]:
    """Every house in every climate, one worker process per house and climate."""
    pairs = [(h.key, c.key) for h in gy.HOUSES for c in gy.CLIMATES]
    with ProcessPoolExecutor(max_workers=min(workers, len(pairs))) as pool:
        return list(
            pool.map(
                run_world,
                [c for _, c in pairs],
                [h for h, _ in pairs],
                [quick] * len(pairs),
            )
        )


def table(results: Sequence[dict[str, Any]]) -> list[str]:
    """The results as a Markdown table, one row per climate, scenario and strategy."""
    label = dict(STRATEGIES)
    lines = [
        "| house | climate | policy | batches | strategy | on time | solar share "
        "| from battery, Wh/batch | from grid, Wh/batch | grid in deadline runs, Wh/batch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for r in result["runs"]:
            n = max(1, r["batches"])
            to_meet = (
                f"{r['forced_grid_wh'] / n:.2f}" if r["strategy"] in ("planner", "oracle") else "-"
            )
            lines.append(
                f"| {result['house']} | {result['climate']} | {gy.POLICY_LABEL[r['policy']]} "
                f"| {r['scenario']} | {label[r['strategy']]} "
                f"| {r['on_time']}/{r['batches']} ({100 * r['on_time'] / n:.1f} %) "
                f"| {100 * r['solar_share']:.2f} % | {r['battery_wh'] / n:.2f} "
                f"| {r['grid_wh'] / n:.2f} | {to_meet} |"
            )
    return lines


def verdicts(results: Sequence[dict[str, Any]]) -> list[str]:
    """The planner against the goals: every batch on time, solar share within 2 points of the
    oracle's."""
    lines = [
        "| house | climate | policy | batches | on time (goal 100 %) | solar share, planner / "
        "oracle (goal: within 2 points) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        by = {(r["policy"], r["scenario"], r["strategy"]): r for r in result["runs"]}
        for policy, scenario in itertools.product(POLICIES, SCENARIOS):
            p = by[(policy, scenario.key, "planner")]
            o = by[(policy, scenario.key, "oracle")]
            on_time = 100 * p["on_time"] / max(1, p["batches"])
            gap = 100 * (o["solar_share"] - p["solar_share"])
            misses = []
            if on_time < 100.0:
                misses.append(f"on time short by {100.0 - on_time:.1f} points")
            if gap > 2.0:
                misses.append(f"solar share short by {gap - 2.0:.2f} points")
            verdict = "met" if not misses else "**MISSED** (" + "; ".join(misses) + ")"
            lines.append(
                f"| {result['house']} | {result['climate']} | {gy.POLICY_LABEL[policy]} "
                f"| {scenario.key} | {on_time:.1f} % "
                f"| {100 * p['solar_share']:.2f} % / {100 * o['solar_share']:.2f} % "
                f"(gap {gap:+.2f}) | {verdict} |"
            )
    return lines


def outlook_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    """What the planner's outlook said at each submission."""
    lines = []
    for result in results:
        for r in result["runs"]:
            if r["strategy"] == "planner":
                said = ", ".join(f"{k} {v}" for k, v in sorted(r["outlook"].items()))
                policy = gy.POLICY_LABEL[r["policy"]]
                lines.append(
                    f"- house {result['house']}, {result['climate']}, {policy}, "
                    f"{r['scenario']}: {said}"
                )
    return lines


BEGIN = "<!-- batch_year: written by benchmarks/batch_year.py --write -->"
END = "<!-- /batch_year -->"


def section(results: Sequence[dict[str, Any]], wall_s: float, quick: bool) -> list[str]:
    """The report's section: set-up, forecast model, results, goals."""
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=gy.REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sigma = " and ".join(
        f"{s:g} issued {lead} day{'s' if lead != 1 else ''} ahead"
        for lead, s in enumerate(FORECAST_SIGMA)
    )
    climates = "; ".join(f"{c.key}: {c.label}" for c in gy.CLIMATES)
    houses = "; ".join(f"house {h.key}: {h.label}" for h in gy.HOUSES)
    reserve = SP.Settings().reserve_soc
    return [
        BEGIN,
        "## Batch deadlines over a year",
        "",
        f"Written by `python benchmarks/batch_year.py --write` ({wall_s:.0f} s on this machine, "
        f"one process per house and climate) on {now} at commit {commit}"
        + (", **a --quick smoke run: sampled days only**" if quick else "")
        + ". Seeded: a rerun gives the same figures. Not part of `scripts/bench` (which keeps "
        "this section as it is).",
        "",
        "**Set-up.** The year of [section 1](#1-gate-control-quality-over-a-year) (the same 10-s "
        f"PV, load and meter noise), for both of its houses ({houses}) in every climate of "
        f"`gate_year.py` ({climates}). Batches of 30-s requests at the rig's {NEED_W:g} W above "
        "idle, one at a time: **daily**, 300 requests (2.5 h, 25 Wh) submitted every day at "
        "18:00 with a 24-h window; **weekly**, 2,100 requests (17.5 h, 175 Wh) submitted every "
        "7th day at 18:00 with a 7-day window. A batch not finished by its deadline expires. "
        "Strategies: *run at once* (whatever is queued runs, sun or not); *only on surplus* "
        "(Joulegate's `SurplusController` with shipped defaults, among them the "
        f"{reserve:g} % battery reserve of inference first, no deadline rule); *planner* "
        "(the same controller, plus the integration's `batch_plan.plan()` with its shipped "
        "settings and `grid` when the sun does not come, asked once a minute and whenever the "
        "gate closes or the sun comes or goes, its live `sun_now` from the noisy meters); "
        "*oracle* (knows the year: runs whenever the PV covers the house and the rig, which is "
        "when the rig's energy counts as solar, and without that only when the sunshine still "
        "to come before the deadline cannot finish the batch). Energy is split by the "
        "integration's `attribute()` (the rig is the last load) on the true flows.",
        "",
        "**Forecast model** (what the planner reads): issued at midnight, hourly resolution, "
        "horizon the end of tomorrow (24 to 48 h ahead), nothing beyond. Each hour's value is "
        "that hour's true PV energy times one log-normal factor per day and lead time, with "
        f"log sigma {sigma}, seeded. The house load it expects is the mean of the last "
        f"{LOAD_DAYS} days, hour by hour (the recorder's statistics). The planner counts 70 % of "
        "the forecast's surplus (`forecast_factor`).",
        "",
        "*From battery* and *from grid* are the rig's energy that was not solar; *grid in "
        "deadline runs* is the grid energy used while the planner (or the oracle) ran batch "
        "work without the surplus gate to meet a deadline.",
        "",
        *table(results),
        "",
        "**Targets** (issue 15): every batch finished by its deadline; the planner's solar "
        "share within 2 points of the oracle's.",
        "",
        *verdicts(results),
        "",
        "What the planner's outlook said at each submission (`on_sun`: the discounted forecast "
        "covers the batch; `waiting`: it does not, a deadline run or sunshine the battery would "
        "take is expected; the weekly window reaches past the forecast's horizon, where no "
        "surplus is assumed):",
        "",
        *outlook_lines(results),
        END,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sampled days only (a smoke run)")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md's section")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args()
    began = time.monotonic()
    results = run(args.quick, args.workers)
    lines = section(results, time.monotonic() - began, args.quick)
    print("\n".join(lines))
    if args.write:
        gy.write_section(BEGIN, END, "\n".join(lines))


if __name__ == "__main__":
    main()
