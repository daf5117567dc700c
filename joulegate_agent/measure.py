"""`joulegate-agent measure -- CMD`: meter one command (the forum's edge_power_logger workflow).

Idle power is measured for a few seconds before the command starts, so the summary can say what
the command cost above what the board draws anyway.
"""

from __future__ import annotations

import csv
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from joulegate_agent.meter import Meter
from joulegate_agent.sampler import Sampler
from joulegate_agent.sources.base import PowerReading, PowerSource


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
) -> MeasureResult:
    rows: list[_Row] = []
    sampler = Sampler(
        source, meter, 1.0 / interval_s, on_sample=lambda t, r: rows.append(_Row(t, r))
    )
    sampler.start()
    try:
        time.sleep(idle_s)
        idle_rows = [r.reading.board_w for r in rows if r.reading.board_w is not None]
        idle_w = sum(idle_rows) / len(idle_rows) if idle_rows else None
        key = meter.open_window()
        started = time.monotonic()
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
    )


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
            f"energy:          {result.energy_j:.2f} J ({result.energy_wh:.5f} Wh)",
            f"above idle:      {marginal}",
            f"samples:         {result.samples}",
            f"exit code:       {result.exit_code}",
        ]
    )
