"""`joulegate-agent measure -- CMD`: meter one command (the forum's edge_power_logger workflow).

Idle power is measured for a few seconds before the command starts, so the summary can say what
the command cost above what the board draws anyway. Idle is the energy metered over that time
divided by it (as every window is metered), never an average of single readings; and it lasts
at least IDLE_STEPS of the source's resolution: a counter that moves every 100 ms places energy
within a step, so 50 steps keep idle within 2 %.
"""

from __future__ import annotations

import csv
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from joulegate_agent.metering.meter import Meter
from joulegate_agent.metering.sampler import Sampler
from joulegate_agent.metering.sources.base import PowerReading, PowerSource

IDLE_STEPS = 50


@dataclass(frozen=True, slots=True)
class MeasureResult:
    exit_code: int
    idle_w: float | None
    avg_w: float | None
    peak_w: float | None
    duration_s: float
    energy_j: float
    marginal_j: float | None
    samples: int
    boundary: str
    energy_error_j: float = 0.0

    @property
    def energy_wh(self) -> float:
        return self.energy_j / 3600.0


@dataclass(frozen=True, slots=True)
class _Row:
    t: float
    reading: PowerReading


def measure_command(
    source: PowerSource,
    meter: Meter,
    command: list[str],
    *,
    interval_s: float = 0.1,
    idle_s: float = 2.0,
    csv_out: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> MeasureResult:
    rows: list[_Row] = []
    sampler = Sampler(
        source,
        meter,
        1.0 / interval_s,
        clock=clock,
        on_sample=lambda t, r: rows.append(_Row(t, r)),
    )
    idle_w = _measure_idle(sampler, idle_s, interval_s, clock, sleep)
    sampler.start()
    try:
        key = meter.open_window()
        started = clock()
        exit_code = subprocess.call(command)  # noqa: S603 - running the user's command is the point
        window = meter.end_window(key).wait(timeout=max(5.0, 10 * interval_s))
    finally:
        sampler.stop()
    if csv_out is not None:
        with csv_out.open("w", newline="", encoding="utf-8") as handle:
            _write_csv(handle, rows, started)
    marginal = None if idle_w is None else window.energy_j - idle_w * window.duration_s
    return MeasureResult(
        exit_code=exit_code,
        idle_w=idle_w,
        avg_w=window.avg_w,
        peak_w=window.peak_w,
        duration_s=window.duration_s,
        energy_j=window.energy_j,
        marginal_j=marginal,
        samples=sum(1 for r in rows if r.t >= started),
        boundary=source.info.boundary,
        energy_error_j=window.error_j,
    )


def _measure_idle(
    sampler: Sampler,
    idle_s: float,
    interval_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> float | None:
    """Board power before the command: the energy metered from the first idle sample to the last,
    per second of it (a counter's first change is never taken as a power).

    Sampled here, on this thread: nothing else runs yet.
    """
    duration = max(idle_s, IDLE_STEPS * (sampler.source.info.resolution_s or 0.0))
    meter = sampler.meter
    sampler.sample_once()
    first = (meter.last_sample_t, meter.total_j)
    next_t = start = clock()
    while clock() - start < duration:
        next_t += interval_s
        sleep(max(0.0, next_t - clock()))
        sampler.sample_once()
    if first[0] is None or meter.last_sample_t is None or meter.last_sample_t <= first[0]:
        return None  # the source gave no reading: idle is unknown
    return (meter.total_j - first[1]) / (meter.last_sample_t - first[0])


def _write_csv(handle: TextIO, rows: list[_Row], started: float) -> None:
    rail_names = [rail.name for rail in rows[0].reading.rails] if rows else []
    writer = csv.writer(handle)
    writer.writerow(["t_s", "phase", "board_w", *(f"{name}_w" for name in rail_names)])
    for row in rows:
        rails = {rail.name: rail.power_w for rail in row.reading.rails}
        writer.writerow(
            [
                f"{row.t - started:.3f}",
                "idle" if row.t < started else "command",
                _cell(row.reading.board_w),
                *(_cell(rails.get(name)) for name in rail_names),
            ]
        )


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def format_summary(result: MeasureResult) -> str:
    def watts(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} W"

    marginal = "n/a" if result.marginal_j is None else f"{result.marginal_j:.2f} J"
    return "\n".join(
        [
            f"boundary:        {result.boundary}",
            f"idle before:     {watts(result.idle_w)}",
            f"average:         {watts(result.avg_w)}",
            f"peak:            {watts(result.peak_w)}",
            f"duration:        {result.duration_s:.2f} s",
            f"energy:          {result.energy_j:.2f} J ({result.energy_wh:.5f} Wh)"
            f" ± {result.energy_error_j:.2f} J",
            f"above idle:      {marginal}",
            f"samples:         {result.samples}",
            f"exit code:       {result.exit_code}",
        ]
    )
