"""How equal requests sent at once are charged: by the work each got, or by the time it waited.

    python benchmarks/work_share.py [--slots 1] [--requests 4] [--tokens 64]

Two processes on loopback, as the demo runs them: `joulegate-agent simulate-llm --slots N` (1: one
request at a time, like Ollama on a small board or llama-server with one slot; 4: llama-server's
default) and the agent on the simulated board at its default 10 Hz, in front of it. The client
sends equal streamed Ollama requests (`/api/generate`) at once through the agent and reports each
one's ledger energy, their spread, and their sum against the board's lifetime counter over the
same time (`/api/v1/status`, read before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.soak import wait_http  # noqa: E402 - the repository root goes on sys.path first
from demo.procs import free_port, simulated_agent_argv  # noqa: E402

HOST = "127.0.0.1"
TOKEN = "work-share-bench-0123456789abcdef"
PROMPT = "Why is the sky blue? Answer in one short paragraph, please."


async def board_j(session: aiohttp.ClientSession, agent: str) -> float:
    async with session.get(f"{agent}/api/v1/status") as response:
        status = await response.json()
    return float(status["energy"]["board_wh"]) * 3600.0


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    llm_port, agent_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "JOULEGATE_TOKEN": TOKEN}
    python = sys.executable
    llm_argv = [python, "-m", "joulegate_agent", "simulate-llm", "--host", HOST]
    llm_argv += ["--port", str(llm_port), "--slots", str(args.slots)]
    llm = subprocess.Popen(llm_argv, env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
    agent_argv = simulated_agent_argv(agent_port, workdir / "data", f"http://{HOST}:{llm_port}")
    agent_argv.append("--gate-fallback-open")
    agent = subprocess.Popen(agent_argv, env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
    base = f"http://{HOST}:{agent_port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            await wait_http(session, f"http://{HOST}:{llm_port}/health", llm)
            await wait_http(session, f"{base}/api/v1/health", agent)
            await asyncio.sleep(4.0)  # the idle baseline settles after 3 s of idle

            async def one() -> None:
                body = {"prompt": PROMPT, "options": {"num_predict": args.tokens}}
                async with session.post(f"{base}/api/generate", json=body) as response:
                    await response.read()

            before = await board_j(session, base)
            await asyncio.gather(*(one() for _ in range(args.requests)))
            rows: list[dict[str, Any]] = []
            while len(rows) < args.requests:
                await asyncio.sleep(0.2)
                async with session.get(f"{base}/api/v1/inferences") as response:
                    rows = (await response.json())["items"]
            after = await board_j(session, base)
    finally:
        for process in (agent, llm):
            process.send_signal(signal.SIGINT)
        for process in (agent, llm):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    rows.sort(key=lambda row: row["ended_at"])
    return {
        "energy_j": [row["energy_j"] for row in rows],
        "marginal_j": [row["marginal_j"] for row in rows],
        "board_j": after - before,
    }


def report(args: argparse.Namespace, result: dict[str, Any]) -> str:
    energies = result["energy_j"]
    spread = (max(energies) - min(energies)) / min(energies) * 100
    joules = ", ".join(f"{j:.1f}" for j in energies)
    marginal = ", ".join("-" if j is None else f"{j:.1f}" for j in result["marginal_j"])
    return (
        f"{args.requests} equal streams of {args.tokens} tokens at once, "
        f"{args.slots or 'unlimited'} slot(s):\n"
        f"  energy, in the order they ended: {joules} J (spread {spread:.1f} %)\n"
        f"  marginal: {marginal} J\n"
        f"  sum {sum(energies):.1f} J; board over the same time {result['board_j']:.1f} J"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=1, help="simulated server slots (1)")
    parser.add_argument("--requests", type=int, default=4, help="equal requests at once (4)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens each (64)")
    args = parser.parse_args(argv)
    if args.slots < 0 or not 1 <= args.requests <= 64 or not 1 <= args.tokens <= 4096:
        parser.error("--slots must be >= 0, --requests 1..64 and --tokens 1..4096")
    workdir = Path(tempfile.mkdtemp(prefix="joulegate-work-share-"))
    try:
        result = asyncio.run(measure(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(args, result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
