"""How much CPU the agent itself costs: `joulegate-agent serve` processes measured side by side.

Each configuration runs as its own process at the same time, so machine noise hits all of them
alike; CPU time is read from /proc/<pid>/stat (user + system, kernel time of the sysfs reads
included) over the same wall-clock span after a warm-up. Target: 0.5 % of one core at 10 Hz.

    python benchmarks/agent_cpu.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.agent import sysfs_trees  # noqa: E402 - the fake Jetson tree the tests use

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    label: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    cpu_start: float = 0.0
    cpu_end: float = 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="joulegate-cpu-"))
    orin = work / "orin-root"
    sysfs_trees.orin_nano(orin)
    runs = [
        Run(
            "fake Orin Nano sysfs, 10 Hz",
            ["--source", "jetson", "--root", str(orin), "--sample-rate", "10"],
        ),
        Run(
            "fake Orin Nano sysfs, 1 Hz",
            ["--source", "jetson", "--root", str(orin), "--sample-rate", "1"],
        ),
        Run("simulated source, 10 Hz", ["--source", "simulated", "--sample-rate", "10"]),
    ]
    for index, run in enumerate(runs):
        command = [
            sys.executable,
            "-m",
            "joulegate_agent",
            "serve",
            *run.args,
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--data-dir",
            str(work / f"data{index}"),
            "--no-zeroconf",
        ]
        run.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    try:
        time.sleep(args.warmup)
        for run in runs:
            assert run.process is not None
            run.cpu_start = cpu_seconds(run.process.pid)
        wall_start = time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - wall_start
        for run in runs:
            assert run.process is not None
            run.cpu_end = cpu_seconds(run.process.pid)
    finally:
        for run in runs:
            if run.process is not None:
                run.process.terminate()
                run.process.wait(10)

    print(f"Agent CPU use over {wall:.1f} s after {args.warmup:.0f} s warm-up,")
    print("one process per configuration, all running side by side")
    print()
    print("| configuration | CPU s | share of one core | vs 10 Hz fake Orin |")
    print("|---|---|---|---|")
    reference = (runs[0].cpu_end - runs[0].cpu_start) or 1e-9
    for run in runs:
        used = run.cpu_end - run.cpu_start
        print(f"| {run.label} | {used:.2f} | {100 * used / wall:.3f} % | {used / reference:.2f} |")
    print()
    share = 100 * (runs[0].cpu_end - runs[0].cpu_start) / wall
    print(
        f"Target 0.5 % of one core at 10 Hz: {'met' if share <= 0.5 else 'MISSED'} ({share:.3f} %)"
    )


if __name__ == "__main__":
    main()
