"""Power levels over a year: how many tokens the sun pays for when the rig follows it.

The homes, PV, climates, meters, battery and blips are `gate_year.py`'s (imported, not copied:
both houses in every climate).
Behind the gate, one, two or three rigs with an endless backlog of 30-s inference jobs; each rig
has four power levels modelled on an Orin Nano Super's 7 W, 15 W, 25 W and MAXN modes (see
`RIGS`). Every 10 s each controller sees the noisy meters and picks each rig's level (or closes
its gate); a level applies to the rig's next 10 s, a job already admitted finishes at the lowest
level after a closing. The level controller and the allocator are the integration's own
`custom_components/joulegate/levels.py` and `allocation.py`, loaded without Home Assistant.

Tokens on solar: each step's tokens times the solar share of the rigs' energy in that step, the
share from the integration's `attribute()` with all rigs together as the last load.

    python benchmarks/levels_year.py [--every N] [--quick] [--house A] [--climate sunny] [--write]
"""

from __future__ import annotations

import argparse
import bisect
import importlib
import itertools
import sys
import time
import types
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gate_year as gy


def load_policy() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """The integration's surplus, levels and allocation modules, imported as a package of their
    own: the integration's __init__ would import Home Assistant, these import nothing of it."""
    name = "joulegate_policy_under_test"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(gy.REPO / "custom_components" / "joulegate")]
        sys.modules[name] = package
    return (
        importlib.import_module(f"{name}.surplus"),
        importlib.import_module(f"{name}.levels"),
        importlib.import_module(f"{name}.allocation"),
    )


SP, LV, AL = load_policy()

BF, IF = gy.BF, gy.IF
POLICIES = (BF, IF)
TURN_S = 1800.0  # round robin: each rig's turn
EVERY = 5  # simulate every 5th day by default (73 days spread over the year)


@dataclass(frozen=True)
class RigModel:
    """A rig's ladder: (name, W above idle while decoding, tokens/s), cheapest first."""

    key: str
    label: str
    levels: tuple[tuple[str, float, float], ...]


def _scaled(key: str, label: str, watts: float, speed: float) -> RigModel:
    return RigModel(key, label, tuple((n, w * watts, t * speed) for n, w, t in NANO_LEVELS))


# Orin Nano Super, llama.cpp, a ~1.5B model at Q4, one stream. From the published sweep of the four
# modes (smolhub.com, "Tiny LLM Benchmark: Jetson Orin Nano Super 8GB", 2026): 25 W gives about
# 43 % more tokens/s than 15 W and the most tokens per joule, 8-35 % more than MAXN. Absolute
# watts above a 5 W idle and the 7 W mode's speed (its memory clock is lowered) are assumptions.
NANO_LEVELS = (
    ("7W", 3.5, 7.5),
    ("15W", 6.0, 15.5),
    ("25W", 8.5, 22.0),
    ("MAXN", 13.0, 24.5),
)
RIGS = (
    RigModel("A", "Orin Nano Super, 1.5B model", NANO_LEVELS),
    _scaled("B", "a larger model: 1.3x the W, 0.6x the tokens/s", 1.3, 0.6),
    _scaled("C", "an older board: 1.6x the W, 0.4x the tokens/s", 1.6, 0.4),
)


def ladder(model: RigModel) -> tuple[Any, ...]:
    return tuple(LV.Level(name, w, t) for name, w, t in model.levels)


# --- controllers ---------------------------------------------------------------------------
# Called once per 10-s step with the step index, the meters (grid W, battery W, SoC %, each rig's
# measured W above idle, forecast Wh, true battery Wh) and which rigs have a job in flight;
# answers each rig's level index (cheapest 0) for the next step, None for a closed gate.
# With blips, gate_year's unavailable readings are None (only the blips row sees them).
Reading = tuple[float | None, float | None, float | None, list[float | None], float | None, float]
Decide = Callable[[int, Reading, list[bool]], list[int | None]]
Factory = Callable[[], Decide]


def _settings(policy: str, house: gy.House) -> Any:
    return SP.Settings(policy=SP.BatteryPolicy(policy), battery_capacity_wh=house.battery_wh)


def _inputs(i: int, reading: Reading, rig_w: float) -> Any:
    g, b, soc, _, fc, _ = reading
    return SP.Inputs(
        now=i * gy.STEP_S,
        grid_w=g,
        rig_inference_w=rig_w,
        has_battery=True,
        battery_w=b,
        battery_soc=soc,
        forecast_remaining_wh=fc,
    )


def on_off(policy: str, house: gy.House, rigs: Sequence[RigModel]) -> Factory:
    """Today: one SurplusController per rig (one config entry each), each rig at its top level
    and counting only its own draw as the last load."""
    tops = [len(r.levels) - 1 for r in rigs]

    def make() -> Decide:
        steps = [
            SP.SurplusController(replace(_settings(policy, house), need_w=w)).step
            for w in (r.levels[-1][1] for r in rigs)
        ]

        def decide(i: int, reading: Reading, busy: list[bool]) -> list[int | None]:
            return [
                top if step(_inputs(i, reading, w)).open else None
                for step, top, w in zip(steps, tops, reading[3], strict=True)
            ]

        return decide

    return make


def levels(policy: str, house: gy.House, rig: RigModel, mode: str = "fastest") -> Factory:
    """One rig, the integration's LevelController with the gate's shipped settings."""
    full = ladder(rig)
    index = {level.key: n for n, level in enumerate(full)}

    def make() -> Decide:
        step = LV.LevelController(full, _settings(policy, house), mode=LV.LevelMode(mode)).step

        def decide(i: int, reading: Reading, busy: list[bool]) -> list[int | None]:
            level = step(_inputs(i, reading, reading[3][0])).level
            return [None if level is None else index[level.key]]

        return decide

    return make


def allocator(policy: str, house: gy.House, rigs: Sequence[RigModel]) -> Factory:
    """Several rigs, the integration's Allocator; priority in the order given (A first)."""
    configs = [AL.RigConfig(r.key, ladder(r), priority=len(rigs) - n) for n, r in enumerate(rigs)]
    index = {r.key: {name: n for n, (name, _, _) in enumerate(r.levels)} for r in rigs}

    def make() -> Decide:
        step = AL.Allocator(configs, _settings(policy, house)).step

        def decide(i: int, reading: Reading, busy: list[bool]) -> list[int | None]:
            readings = {
                r.key: AL.RigReading(inference_w=w) for r, w in zip(rigs, reading[3], strict=True)
            }
            shares = step(_inputs(i, reading, 0.0), readings)
            out: list[int | None] = []
            for r in rigs:
                level = shares[r.key].level
                out.append(None if level is None else index[r.key][level.key])
            return out

        return decide

    return make


def round_robin(policy: str, house: gy.House, rigs: Sequence[RigModel]) -> Factory:
    """Taking turns: every TURN_S the whole surplus goes to the next rig, whose LevelController
    sees all rigs' draw added back; the others are closed."""

    def make() -> Decide:
        controllers = [LV.LevelController(ladder(r), _settings(policy, house)) for r in rigs]

        def decide(i: int, reading: Reading, busy: list[bool]) -> list[int | None]:
            turn = int(i * gy.STEP_S // TURN_S) % len(rigs)
            out: list[int | None] = []
            for n, controller in enumerate(controllers):
                if n != turn:
                    controller.rung.move(None, i * gy.STEP_S)
                    out.append(None)
                    continue
                level = controller.step(_inputs(i, reading, sum(w or 0.0 for w in reading[3])))
                level = level.level
                out.append(None if level is None else controller.ladder.index(level))
            return out

        return decide

    return make


def oracle(world: gy.World, policy: str, rigs: Sequence[RigModel]) -> Factory:
    """Knows the year: the true surplus of the policy over the next job's 30 s (as gate_year's
    oracle, and like the controllers inference first turns battery first below the shipped
    reserve), and the levels of all rigs that give the most tokens/s within it, rigs with a job
    in flight kept on. Every token on solar by construction: the bound at 100 % solar."""
    house = world.pv - world.load
    ahead = np.full(gy.N_STEPS, -np.inf)
    window = np.lib.stride_tricks.sliding_window_view(house, gy.JOB_STEPS).min(axis=1)
    ahead[: len(window) - 1] = window[1:]
    ahead_list: list[float] = ahead.tolist()
    room_k = 1.0 / (gy.BATTERY_EFF * gy.DT_H)
    reserve = SP.Settings().reserve_soc
    home = world.house
    capacity = home.battery_wh
    options = [
        [(None, 0.0, 0.0)] + [(n, w, t) for n, (_, w, t) in enumerate(r.levels)] for r in rigs
    ]
    # For each set of rigs that must stay on: combinations sorted by watts, best tokens so far.
    tables: dict[tuple[bool, ...], tuple[list[float], list[tuple[float, tuple[Any, ...]]]]] = {}
    for must in itertools.product((False, True), repeat=len(rigs)):
        combos = [
            (sum(o[1] for o in c), sum(o[2] for o in c), tuple(o[0] for o in c))
            for c in itertools.product(*options)
            if all(o[0] is not None or not m for o, m in zip(c, must, strict=True))
        ]
        combos.sort()
        best: list[tuple[float, tuple[Any, ...]]] = []
        for _, tokens, choice in combos:
            if not best or tokens > best[-1][0]:
                best.append((tokens, choice))
            else:
                best.append(best[-1])
        tables[must] = ([c[0] for c in combos], best)
    closed = tuple(None for _ in rigs)

    def make() -> Decide:
        def decide(i: int, reading: Reading, busy: list[bool]) -> list[int | None]:
            e = reading[5]
            surplus = ahead_list[i]
            soc = e / capacity * 100.0
            battery_first = policy == BF or soc < reserve
            if battery_first and soc < gy.FULL_SOC:
                surplus -= min(gy.charge_limit(home, e), max(0.0, capacity - e) * room_k)
            watts, best = tables[tuple(busy)]
            n = bisect.bisect_right(watts, surplus)
            return list(best[n - 1][1] if n else closed)

        return decide

    return make


# --- simulation ----------------------------------------------------------------------------
@dataclass
class Tally:
    controller: str
    policy: str
    rigs: int
    days: int
    tokens: float = 0.0
    solar_tokens: float = 0.0
    energy_wh: float = 0.0
    solar_wh: float = 0.0
    level_changes: list[int] = field(default_factory=list)  # per day, all rigs
    switches: list[int] = field(default_factory=list)  # gate openings + closings per day, all rigs
    closings: int = 0
    cpu_s: float = 0.0

    @property
    def solar_share(self) -> float:
        return self.solar_wh / self.energy_wh if self.energy_wh else float("nan")


def simulate(
    world: gy.World,
    factory: Factory,
    rigs: Sequence[RigModel],
    *,
    controller: str,
    policy: str,
    days: Sequence[int],
    blips: bool = False,
) -> Tally:
    """gate_year's step loop (battery with its taper, grid, meters, stretches of days) with rigs
    that have levels. A job runs at the level set for the step; after a closing it finishes at
    level 0. With `blips`, the readings gate_year takes away (World.blips) are None."""
    started = time.process_time()
    n_rigs = len(rigs)
    watts = [[w for _, w, _ in r.levels] for r in rigs]
    speed = [[t for _, _, t in r.levels] for r in rigs]
    tally = Tally(controller, policy, n_rigs, len(days))
    pv, load, noise_g, noise_b, noise_r, forecast = world.lists()
    attribute = SP.attribute
    house = world.house
    full_wh, empty_wh = house.battery_wh, gy.BATTERY_MIN_SOC / 100.0 * house.battery_wh
    taper_wh = full_wh if house.taper_from_soc is None else house.taper_from_soc / 100.0 * full_wh
    missing = world.blips() if blips else None
    charge_k, discharge_k = 1.0 / (gy.BATTERY_EFF * gy.DT_H), gy.BATTERY_EFF / gy.DT_H
    soc_k = 100.0 / full_wh
    max_w = house.battery_max_w
    step_s = gy.STEP_S
    tokens = solar_tokens = energy = solar = 0.0
    e = gy.BATTERY_START_SOC / 100.0 * full_wh
    decide = factory()
    target: list[int | None] = [None] * n_rigs
    busy = [0] * n_rigs
    previous_day = -2
    for d in days:
        if d != previous_day + 1:
            e = world.idle_midnight_wh[d] if d > 0 else e
            decide = factory()
            target = [None] * n_rigs
            busy = [0] * n_rigs
        previous_day = d
        changes = switches = 0
        for i in range(d * gy.DAY_STEPS, (d + 1) * gy.DAY_STEPS):
            rig_w = [0.0] * n_rigs
            rate = 0.0
            for r in range(n_rigs):
                if busy[r] == 0 and target[r] is not None:
                    busy[r] = gy.JOB_STEPS
                if busy[r]:
                    level = target[r] or 0
                    rig_w[r] = watts[r][level]
                    rate += speed[r][level]
                    busy[r] -= 1
            rig = sum(rig_w)
            net = load[i] + rig - pv[i]
            if net < 0.0:
                limit = max_w if e <= taper_wh else gy.charge_limit(house, e)
                charge = min(-net, limit, max(0.0, full_wh - e) * charge_k)
                battery = -charge
                e += charge / charge_k
                grid = net + charge
            else:
                discharge = min(net, max_w, max(0.0, e - empty_wh) * discharge_k)
                battery = discharge
                e -= discharge / discharge_k
                grid = net - discharge
            if rig:
                part = attribute(rig, grid, battery).solar
                solar += part
                energy += rig
                made = rate * step_s
                tokens += made
                solar_tokens += made * part / rig
            noise = noise_r[i]
            reading = (
                round(grid + noise_g[i]),
                round(battery + noise_b[i]),
                round(e * soc_k),
                [w + noise if w else 0.0 for w in rig_w],
                forecast[i],
                e,
            )
            if missing is not None and (m := missing[i]):
                g, b, soc, ws, fc, _ = reading
                reading = (
                    None if m & 1 else g,
                    None if m & 2 else b,
                    None if m & 4 else soc,
                    [None if m & 8 else w for w in ws],
                    None if m & 16 else fc,
                    e,
                )
            new = decide(i, reading, [b > 0 for b in busy])
            for r in range(n_rigs):
                before, after = target[r], new[r]
                if (before is None) is not (after is None):
                    switches += 1
                    tally.closings += after is None
                elif before != after:
                    changes += 1
            target = new
        tally.level_changes.append(changes)
        tally.switches.append(switches)
    tally.tokens = tokens
    tally.solar_tokens = solar_tokens
    tally.energy_wh = energy * gy.DT_H
    tally.solar_wh = solar * gy.DT_H
    tally.cpu_s = time.process_time() - started
    return tally


# --- the runs ------------------------------------------------------------------------------
BLIPS = "levels, fastest, blips in every input"
Run = tuple[str, Sequence[RigModel], Factory, bool]  # name, rigs, controller, with blips


def runs_for(world: gy.World, policy: str) -> list[Run]:
    one = RIGS[:1]
    house = world.house
    out: list[Run] = [
        ("oracle", one, oracle(world, policy, one), False),
        ("on/off", one, on_off(policy, house, one), False),
        ("levels, fastest", one, levels(policy, house, RIGS[0]), False),
        (BLIPS, one, levels(policy, house, RIGS[0]), True),
        ("levels, efficient", one, levels(policy, house, RIGS[0], "efficient"), False),
    ]
    for n in (2, 3):
        rigs = RIGS[:n]
        out += [
            ("oracle", rigs, oracle(world, policy, rigs), False),
            ("on/off, one entry per rig", rigs, on_off(policy, house, rigs), False),
            ("round robin (30-min turns, levels)", rigs, round_robin(policy, house, rigs), False),
            ("allocator (split by priority)", rigs, allocator(policy, house, rigs), False),
        ]
    return out


def run_world(house_key: str, climate_key: str, every: int) -> dict[str, Any]:
    climate = next(c for c in gy.CLIMATES if c.key == climate_key)
    house = next(h for h in gy.HOUSES if h.key == house_key)
    began = time.monotonic()
    cpu = time.process_time()
    world = gy.build_world(climate, house)
    baseline = gy.simulate(world, gy.idle(), "idle", "-")
    world.idle_midnight_wh = baseline.midnight_wh
    days = gy.sample_days(every)
    key = world.key
    results = []
    for policy in POLICIES:
        for controller, rigs, factory, blips in runs_for(world, policy):
            t = simulate(
                world, factory, rigs, controller=controller, policy=policy, days=days, blips=blips
            )
            results.append(row(t))
            print(
                f"[{key}] {policy} {len(rigs)} rig(s) {controller}: solar "
                f"{100 * t.solar_share:.2f} % tokens {t.solar_tokens:.3g} cpu {t.cpu_s:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return {
        "climate": climate.label,
        "house": f"House {house.key}, {climate.key}",
        "key": key,
        "days": len(days),
        "wall_s": time.monotonic() - began,
        "cpu_s": time.process_time() - cpu,
        "runs": results,
    }


def row(t: Tally) -> dict[str, Any]:
    scale = gy.DAYS / t.days  # sampled days to a year
    return {
        "controller": t.controller,
        "policy": t.policy,
        "rigs": t.rigs,
        "solar_mtokens": t.solar_tokens * scale / 1e6,
        "mtokens": t.tokens * scale / 1e6,
        "solar_share": t.solar_share,
        "tokens_per_wh": t.tokens / t.energy_wh if t.energy_wh else 0.0,
        "changes_median": float(np.median(t.level_changes)),
        "changes_p95": float(np.percentile(t.level_changes, 95)),
        "switches_median": float(np.median(t.switches)),
        "switches_p95": float(np.percentile(t.switches, 95)),
        "closings_per_year": t.closings * scale,
    }


def table(result: dict[str, Any]) -> str:
    label = {BF: "battery first", IF: "inference first"}
    lines = [
        f"### {result['house']}: {result['climate']}",
        "",
        f"Simulated in {result['wall_s']:.0f} s ({result['cpu_s']:.0f} s of CPU, one process).",
        "",
        "| policy | rigs | controller | solar tokens/year, M | % of oracle | solar share "
        "| tokens/Wh | level changes/day median / p95 | gate switches/day median / p95 "
        "| gate closings/year |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    bound: dict[tuple[str, int], float] = {}
    for r in result["runs"]:
        if r["controller"] == "oracle":
            bound[r["policy"], r["rigs"]] = r["solar_mtokens"]
        share = bound.get((r["policy"], r["rigs"])) or float("nan")
        lines.append(
            f"| {label[r['policy']]} | {r['rigs']} | {r['controller']} | "
            f"{r['solar_mtokens']:.2f} | {100 * r['solar_mtokens'] / share:.1f} % | "
            f"{100 * r['solar_share']:.2f} % | {r['tokens_per_wh']:.0f} | "
            f"{r['changes_median']:.0f} / {r['changes_p95']:.0f} | "
            f"{r['switches_median']:.0f} / {r['switches_p95']:.0f} | "
            f"{r['closings_per_year']:,.0f} |"
        )
    return "\n".join([*lines, "", *goals(result)])


def goals(result: dict[str, Any]) -> list[str]:
    """The issue's targets for the single rig with levels (fastest) and for several rigs."""
    runs = {(r["policy"], r["rigs"], r["controller"]): r for r in result["runs"]}
    out = []
    for policy in POLICIES:
        bound = runs[policy, 1, "oracle"]
        onoff = runs[policy, 1, "on/off"]
        mine = runs[policy, 1, "levels, fastest"]
        blips = runs[policy, 1, BLIPS]
        checks = [
            (
                "solar share >= 99 %",
                mine["solar_share"] >= 0.99,
                f"{100 * mine['solar_share']:.2f} %",
            ),
            (
                "more solar tokens than on/off"
                if policy == IF
                else "no fewer solar tokens than on/off",
                mine["solar_mtokens"] > onoff["solar_mtokens"]
                if policy == IF
                else mine["solar_mtokens"] >= onoff["solar_mtokens"],
                f"{100 * (mine['solar_mtokens'] / onoff['solar_mtokens'] - 1):+.2f} %",
            ),
            (
                "with blips >= 95 % of the clean run's solar tokens and a solar share >= 99 %",
                blips["solar_mtokens"] >= 0.95 * mine["solar_mtokens"]
                and blips["solar_share"] >= 0.99,
                f"{100 * blips['solar_mtokens'] / mine['solar_mtokens']:.1f} %, "
                f"{100 * blips['solar_share']:.2f} %",
            ),
        ]
        if policy == IF:
            limit = max(6.0, bound["switches_median"])
            checks += [
                (
                    ">= 90 % of the oracle's solar tokens",
                    mine["solar_mtokens"] >= 0.9 * bound["solar_mtokens"],
                    f"{100 * mine['solar_mtokens'] / bound['solar_mtokens']:.1f} %",
                ),
                (
                    "fewer gate closings than on/off",
                    mine["closings_per_year"] < onoff["closings_per_year"],
                    f"{mine['closings_per_year']:,.0f} vs {onoff['closings_per_year']:,.0f} a year",
                ),
                (
                    f"switches/day median <= {limit:.0f} (6, or the oracle's own)",
                    mine["switches_median"] <= limit,
                    f"{mine['switches_median']:.0f}",
                ),
            ]
        for rigs in (2, 3):
            split = runs[policy, rigs, "allocator (split by priority)"]
            turns = runs[policy, rigs, "round robin (30-min turns, levels)"]
            checks.append(
                (
                    f"{rigs} rigs: allocator beats round robin on solar tokens",
                    split["solar_mtokens"] > turns["solar_mtokens"],
                    f"{100 * (split['solar_mtokens'] / turns['solar_mtokens'] - 1):+.1f} %",
                )
            )
        label = {BF: "Battery first", IF: "Inference first"}[policy]
        out.append(
            f"{label}: "
            + "; ".join(
                f"{name}: {value} ({'met' if ok else 'MISSED'})" for name, ok, value in checks
            )
            + "."
        )
        out.append("")
    return out


START, END = "<!-- levels_year.py -->", "<!-- /levels_year.py -->"


def section(results: list[dict[str, Any]], every: int, wall_s: float) -> str:
    """The report's section: set-up, the rig model, a table and the goals per climate."""
    cpu_s = sum(r["cpu_s"] for r in results)
    ladder_rows = [
        f"| {model.key} | {model.label} | "
        + " | ".join(f"{w:.1f} W, {t:.1f} tok/s ({w / t:.3f} J/tok)" for _, w, t in model.levels)
        + " |"
        for model in RIGS
    ]
    head = [
        START,
        "## Power levels over a year",
        "",
        f"Written by `python benchmarks/levels_year.py --every {every} --write` (wall "
        f"{wall_s:.0f} s on a shared 2-core machine, {cpu_s:.0f} s of CPU), "
        f"{results[0]['days']} sampled days per house and climate (every "
        f"{every}th; a sampled day starts at midnight with the idle-rig year's battery charge), "
        "figures scaled to a year. The homes (A and B), PV, climates, meters, battery (with B's "
        "taper) and blips are section 1's, imported from `gate_year.py`. Behind the gate, rigs "
        "with an endless backlog of 30-s jobs and four levels each; a level applies to the "
        "next 10 s, a job admitted "
        "before a closing finishes at the lowest level. Tokens on solar: each step's tokens times "
        "the solar share of the rigs' energy in that step (`attribute()`, all rigs together as "
        "the last load).",
        "",
        "Levels (power above a 5 W idle while decoding, tokens/s): rig A is an Orin Nano Super "
        "running a ~1.5B model at Q4 with llama.cpp, shaped on the published four-mode sweep "
        "(smolhub.com, *Tiny LLM Benchmark: Jetson Orin Nano Super 8GB*: 25 W gives about 43 % "
        "more tokens/s than 15 W and 8-35 % more tokens per joule than MAXN); **the absolute "
        "watts and the 7 W mode's speed are assumptions**, not measurements. B and C are less "
        "efficient rigs (scaled copies).",
        "",
        "| rig | what | 7W | 15W | 25W | MAXN |",
        "|---|---|---|---|---|---|",
        *ladder_rows,
        "",
        "Controllers: *oracle* knows the year and picks, every 10 s, the levels of all rigs with "
        "the most tokens/s that the policy's true surplus covers for the next job's 30 s (like "
        "the controllers, inference first turns battery first below the "
        f"{SP.Settings().reserve_soc:.0f} % reserve): every "
        "token on solar, the bound. *on/off*: today's `SurplusController`, shipped defaults, the "
        "rig at MAXN; with several rigs, one per rig (one config entry each), each counting "
        "only its own draw. *levels*: `LevelController` (`levels.py`), the gate's shipped "
        "settings, mode fastest or efficient. *allocator*: `Allocator` (`allocation.py`), "
        "priority A > B > C. *round robin*: 30-min turns, the rig whose turn it is gets the "
        "whole surplus through its `LevelController`. Switches: a gate opening or closing of any "
        "rig; level changes: a change between two levels; both summed over the rigs.",
        "",
    ]
    body = []
    for result in results:
        body += [table(result), ""]
    return "\n".join([*head, *body, *notes(results), END])


def notes(results: list[dict[str, Any]]) -> list[str]:
    """What the goals do not say: the strict switch target, and what efficiency mode trades."""
    out = ["Notes:", ""]
    for result in results:
        runs = {(r["policy"], r["rigs"], r["controller"]): r for r in result["runs"]}
        mine = runs[IF, 1, "levels, fastest"]
        bound = runs[IF, 1, "oracle"]
        fast, efficient = mine, runs[IF, 1, "levels, efficient"]
        over = mine["switches_median"] - 6
        if over <= 0:
            strict = "met"
        elif mine["switches_median"] <= bound["switches_median"]:
            strict = f"missed by {over:.0f}; the goal holds by its second clause only"
        else:
            strict = f"missed by {over:.0f}"
        out.append(
            f"- {result['key']}: inference first switches a median {mine['switches_median']:.0f} "
            f"times a day against the strict target of 6 ({strict}); the oracle itself switches "
            f"{bound['switches_median']:.0f}. "
            f"Efficiency mode: {efficient['tokens_per_wh'] / fast['tokens_per_wh'] - 1:+.0%} "
            f"tokens per Wh, {efficient['solar_mtokens'] / fast['solar_mtokens'] - 1:+.0%} "
            "solar tokens (a choice, not a goal)."
        )
    out += [
        "- The rigs draw 3.5-21 W above idle in a house with kilowatts of surplus: the surplus "
        "seldom lies between two levels, so levels gain little over on/off here (they matter "
        "with a tight surplus or a larger rig). Round robin loses half (two rigs) or two thirds "
        "(three rigs) of the tokens because only one rig runs at a time, and each turn starts "
        "with the gate closed.",
        "",
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=EVERY, help="simulate every Nth day")
    parser.add_argument("--quick", action="store_true", help="every 28th day (a smoke run)")
    parser.add_argument("--climate", action="append", help="only these climates (keys)")
    parser.add_argument("--house", action="append", help="only these houses (keys)")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md's section")
    args = parser.parse_args()
    every = 28 if args.quick else args.every
    climates = args.climate or [c.key for c in gy.CLIMATES]
    houses = args.house or [h.key for h in gy.HOUSES]
    worlds = [(h, c) for h in houses for c in climates]
    began = time.monotonic()
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_world, *zip(*worlds, strict=True), [every] * len(worlds)))
    text = section(results, every, time.monotonic() - began)
    print(text)
    if args.write:
        gy.write_section(START, END, text)


if __name__ == "__main__":
    main()
