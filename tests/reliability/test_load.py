"""Load: 50 concurrent streaming inferences and Home Assistant-like polling, for 25 s.

The short run of the documented soak (`python benchmarks/soak.py --minutes 10`), the very same
code: no request dropped (each has a complete answer and its ledger row), every status poll
answered and no counter went down, sampling kept its rate (worst gap between samples, samples per
second), and the agent's resident memory flat after the warm-up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECONDS = 25
CONCURRENCY = 50


def test_fifty_streams_and_polling_for_25_s(tmp_path: Path) -> None:
    figures = tmp_path / "soak.json"
    soak = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "benchmarks" / "soak.py"),
            "--seconds",
            str(SECONDS),
            "--concurrency",
            str(CONCURRENCY),
            "--json",
            str(figures),
            "--keep",
            str(tmp_path / "soak"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the soak and the two servers it runs
    )
    try:
        output, _ = soak.communicate(timeout=SECONDS + 150)
    finally:
        if soak.poll() is None:
            os.killpg(soak.pid, signal.SIGKILL)  # the group this test started, and only it
            soak.wait(timeout=10)
    print(output)
    assert soak.returncode == 0, output
    result = json.loads(figures.read_text())
    assert result["problems"] == []
    assert result["dropped"] == 0
    assert result["completed"] == result["rows_ok"] >= 5 * CONCURRENCY
    assert result["failed_polls"] == 0
    assert result["polls"] >= SECONDS
    assert result["worst_gap_s"] <= 0.5
    assert result["rss_after_mib"] - result["rss_before_mib"] <= 16
