"""SQLite commits of an idle agent while `GET /api/v1/status` is polled at 0, 1 and 10 Hz.

Writes must not depend on how often anyone reads. One agent per rate (simulated source, its real
app on 127.0.0.1, a fresh data directory), polled for the same time, then stopped; its commits are
counted with SQLite's own statement trace on the agent's connection (every write transaction
ends in COMMIT), shutdown included. The shipped flush interval (300 s) gives one commit per run
(the shutdown's) on short runs; `--flush-interval-s 5` shows the timer's commits on top.

    python benchmarks/status_writes.py [--seconds 20] [--flush-interval-s 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from demo.procs import free_port  # noqa: E402
from joulegate_agent import agent as agent_module  # noqa: E402
from joulegate_agent.agent import Agent  # noqa: E402
from joulegate_agent.api.app import build_app  # noqa: E402
from joulegate_agent.config import AgentConfig  # noqa: E402

RATES_HZ = (0.0, 1.0, 10.0)


async def commits_while_polled(rate_hz: float, seconds: float, data_dir: Path) -> dict[str, Any]:
    port = free_port()
    config = AgentConfig(
        host="127.0.0.1", port=port, data_dir=data_dir, source="simulated", zeroconf=False
    )
    agent = Agent(config)
    commits = 0

    def trace(statement: str) -> None:
        nonlocal commits
        if statement.lstrip().upper().startswith("COMMIT"):
            commits += 1

    agent.store.connection.set_trace_callback(trace)
    runner = web.AppRunner(build_app(agent), access_log=None)
    await runner.setup()
    await agent.start()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    reads = 0
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {agent.token}"}
    async with aiohttp.ClientSession() as session:
        while (elapsed := time.monotonic() - started) < seconds:
            if rate_hz == 0:
                await asyncio.sleep(seconds - elapsed)
                continue
            async with session.get(f"http://127.0.0.1:{port}/api/v1/status", headers=headers) as r:
                assert r.status == 200
                await r.read()
            reads += 1
            await asyncio.sleep(max(0.0, started + reads / rate_hz - time.monotonic()))
    await runner.cleanup()
    await agent.stop()
    return {"rate_hz": rate_hz, "seconds": seconds, "status_reads": reads, "commits": commits}


async def run(seconds: float, flush_interval_s: float | None) -> list[dict[str, Any]]:
    if flush_interval_s is not None:
        agent_module.FLUSH_INTERVAL_S = flush_interval_s
    results = []
    with tempfile.TemporaryDirectory(prefix="joulegate-writes-") as scratch:
        for rate in RATES_HZ:
            result = await commits_while_polled(rate, seconds, Path(scratch) / f"{rate:g}hz")
            result["flush_interval_s"] = agent_module.FLUSH_INTERVAL_S
            results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="polling time per rate")
    parser.add_argument(
        "--flush-interval-s", type=float, help="the agent's energy flush interval (default: 300)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    results = asyncio.run(run(args.seconds, args.flush_interval_s))
    for r in results:
        print(
            f"{r['rate_hz']:>4g} Hz: {r['status_reads']:>4} status reads in {r['seconds']:g} s, "
            f"{r['commits']} SQLite commits (flush interval {r['flush_interval_s']:g} s)"
        )
    counts = {r["commits"] for r in results}
    same = len(counts) == 1
    print("commits equal at every rate" if same else "COMMITS DIFFER BY READ RATE")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
