"""Slowloris: twice the shipped unit's 1,024 descriptors in half-open connections for 60 s.

The agent runs as its own process with RLIMIT_NOFILE at 1,024 (systemd's default soft limit,
which examples/joulegate-agent.service keeps), on a simulated Orin Nano sysfs tree, so its
sampler opens real rail files every tick. A second process (slowloris.py) holds 2,048 half-open
requests, reopening what the agent closes. Meanwhile a legitimate client reads /status five times
a second. Before the fix the agent stopped answering everyone and the sampler could not open the
rail files (metering lost). Everything is on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from demo.procs import free_port
from tests.agent.fakes.sysfs_trees import orin_nano
from tests.reliability.conftest import Processes
from tests.reliability.harness import HOST, AgentProcess

UNIT_NOFILE = 1024
HALF_OPEN = 2 * UNIT_NOFILE
ATTACK_S = 60.0
POLL_INTERVAL_S = 0.2
TOKEN = "slowloris-token-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]


def limited_agent(tmp_path: Path, root: Path) -> AgentProcess:
    """`joulegate-agent serve` with RLIMIT_NOFILE set to the unit's limit before it starts."""
    port = free_port()
    data_dir = tmp_path / "agent-data"
    serve = [
        "serve",
        "--root",
        str(root),
        "--host",
        HOST,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--no-zeroconf",
    ]
    launcher = (
        "import resource, runpy, sys\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({UNIT_NOFILE}, {UNIT_NOFILE}))\n"
        f"sys.argv = ['joulegate-agent', *{serve!r}]\n"
        "runpy.run_module('joulegate_agent', run_name='__main__')\n"
    )
    return AgentProcess(
        name="agent",
        argv=[sys.executable, "-c", launcher],
        log_path=tmp_path / "agent.log",
        health_url=f"http://{HOST}:{port}/api/v1/health",
        env={"JOULEGATE_TOKEN": TOKEN, "PYTHONPATH": str(REPO)},
        data_dir=data_dir,
        port=port,
        token=TOKEN,
    )


async def poll_status(agent: AgentProcess, seconds: float) -> tuple[list[float], int]:
    """Read /status on a fresh connection each time, as a script would; latencies and failures."""
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=5.0)
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(f"{agent.url}/api/v1/status", headers=agent.headers) as response,
            ):
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        latencies.append(time.monotonic() - started)
        failures += not ok
        await asyncio.sleep(POLL_INTERVAL_S)
    return latencies, failures


async def status(agent: AgentProcess) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{agent.url}/api/v1/status", headers=agent.headers) as response,
    ):
        body: dict[str, object] = await response.json()
        return body


def test_twice_the_units_descriptors_in_half_open_connections_for_60_s(
    tmp_path: Path, processes: Processes
) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < HALF_OPEN + 256:
        pytest.skip(f"the attacker needs {HALF_OPEN + 256} descriptors; the hard limit is {hard}")
    root = tmp_path / "sysfs"
    orin_nano(root)
    agent = processes.add(limited_agent(tmp_path, root))
    agent.start()
    before = asyncio.run(status(agent))
    began = time.monotonic()
    attacker = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("slowloris.py")),
            str(agent.port),
            str(HALF_OPEN),
            str(ATTACK_S),
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        time.sleep(2.0)  # let the first round of connections arrive
        latencies, failures = asyncio.run(poll_status(agent, ATTACK_S - 4.0))
        out, _ = attacker.communicate(timeout=ATTACK_S + 30)
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
    after = asyncio.run(status(agent))
    elapsed_s = time.monotonic() - began
    attack = json.loads(out)
    p99 = statistics.quantiles(latencies, n=100)[98]
    sampler = after["sampler"]
    assert isinstance(sampler, dict)
    samples = sampler["samples"] - before["sampler"]["samples"]  # type: ignore[index]
    expected = sampler["rate_hz"] * elapsed_s
    print(
        f"attack {attack}; status reads {len(latencies)}, failed {failures}, "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
        f"sampler worst gap {sampler['worst_gap_s']} s; {samples} board power readings of "
        f"{expected:.0f} due"
    )
    assert attack["opened"] >= HALF_OPEN  # the attack really held (and renewed) its connections
    assert failures == 0, agent.log_tail()
    assert p99 < 1.0
    assert sampler["worst_gap_s"] < 0.5
    assert after["power"]["board_w"] is not None  # type: ignore[index]
    assert agent.running
    # The rails were read throughout: a board power reading (which needs the rail files opened)
    # at nearly every tick.
    assert samples >= 0.95 * expected
