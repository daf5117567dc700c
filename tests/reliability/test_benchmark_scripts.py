"""Every benchmark script starts: a file moved in the tests or the agent must not leave a
benchmark that fails at its imports (scripts/bench is not part of the test run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py"))
# What scripts/bench adds to the test environment: a script may need these and still be fine.
BENCH_ONLY = {
    line.split("==")[0].strip().lower()
    for line in (REPO / "requirements" / "bench.txt").read_text(encoding="utf-8").splitlines()
    if "==" in line and not line.lstrip().startswith("#")
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_script_starts_and_shows_its_options(script: str) -> None:
    shown = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    missing = re.search(r"No module named '([^'.]+)", shown.stderr)
    if shown.returncode and missing and missing.group(1).lower() in BENCH_ONLY:
        pytest.skip(f"needs {missing.group(1)} from requirements/bench.txt (scripts/bench)")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "usage:" in shown.stdout
