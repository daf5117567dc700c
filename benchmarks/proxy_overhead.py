"""Proxy overhead: the same requests straight to a fast upstream and through the agent.

    python benchmarks/proxy_overhead.py [--requests 2000] [--streams 30] [--events 20000]

Three processes on loopback, as on a real box: a minimal, fast OpenAI-compatible upstream (canned
llama.cpp-shaped answers, one SSE event per write), the agent (`joulegate-agent serve` on the
simulated source, with a real ledger and sampler), and this client. Direct and proxied calls are
interleaved in small blocks so drift hits both arms alike.

Reports, for non-streamed chat completions, the p50 and p99 latency of each arm and what the proxy
adds; for streams, the bytes per second of each arm and their ratio.
Targets: <= 1 ms added at p50; proxied streaming >= 95 % of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from demo.procs import free_port, simulated_agent_argv  # noqa: E402 - the repository root goes on sys.path first

CHAT_PATH = "/v1/chat/completions"
MODEL = "llama-3.2-3b-instruct"

# -- the fast upstream ---------------------------------------------------------------------------


def _envelope(obj: str) -> dict[str, Any]:
    return {
        "created": 1764164700,
        "model": MODEL,
        "system_fingerprint": "b6123-bench",
        "object": obj,
        "id": "chatcmpl-bench",
    }


def _canned_json() -> bytes:
    body = {
        "choices": [
            {
                "finish_reason": "length",
                "index": 0,
                "message": {"role": "assistant", "content": "The sun pays for this token."},
            }
        ],
        **_envelope("chat.completion"),
        "usage": {"completion_tokens": 6, "prompt_tokens": 14, "total_tokens": 20},
        "timings": {"prompt_n": 14, "prompt_ms": 1.0, "predicted_n": 6, "predicted_ms": 1.0},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _canned_events(count: int) -> list[bytes]:
    env = _envelope("chat.completion.chunk")
    events = [
        b"data: "
        + json.dumps(
            {
                "choices": [{"finish_reason": None, "index": 0, "delta": {"content": f" tok{i}"}}],
                **env,
            },
            separators=(",", ":"),
        ).encode()
        + b"\n\n"
        for i in range(count)
    ]
    usage = {"completion_tokens": count, "prompt_tokens": 14, "total_tokens": count + 14}
    events.append(b"data: " + json.dumps({"choices": [], **env, "usage": usage}).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def upstream_app(events: int) -> web.Application:
    canned = _canned_json()
    stream = _canned_events(events)

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.Response(body=canned, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in stream:
            await response.write(event)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post(CHAT_PATH, chat)
    return app


def serve_upstream(port: int, events: int) -> None:
    web.run_app(upstream_app(events), host="127.0.0.1", port=port, print=None, access_log=None)


# -- orchestration -------------------------------------------------------------------------------


async def wait_until_up(session: aiohttp.ClientSession, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        await asyncio.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def one_json(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    request = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6}
    started = time.perf_counter()
    async with session.post(url, json=request, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    return time.perf_counter() - started


async def one_stream(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, float]:
    request = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    received = 0
    started = time.perf_counter()
    async with session.post(url, json=request, headers=headers) as response:
        async for chunk in response.content.iter_any():
            received += len(chunk)
    return received, time.perf_counter() - started


async def run(args: argparse.Namespace) -> dict[str, Any]:
    upstream_port, agent_port = free_port(), free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="joulegate-bench-"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("JOULEGATE_TOKEN", None)
    upstream = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [
            sys.executable,
            __file__,
            "--serve-upstream",
            str(upstream_port),
            "--events",
            str(args.events),
        ],
        env=env,
    )
    agent = subprocess.Popen(  # noqa: ASYNC220
        simulated_agent_argv(
            agent_port, data_dir, f"http://127.0.0.1:{upstream_port}", "--gate-fallback-open"
        ),
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        direct = f"http://127.0.0.1:{upstream_port}{CHAT_PATH}"
        proxied = f"http://127.0.0.1:{agent_port}{CHAT_PATH}"
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_until_up(session, f"http://127.0.0.1:{agent_port}/api/v1/health")
            await wait_until_up(session, f"http://127.0.0.1:{upstream_port}/")
            token = (data_dir / "token").read_text(encoding="utf-8").strip()
            auth = {"Authorization": f"Bearer {token}"}
            none: dict[str, str] = {}

            for _ in range(args.warmup):  # JIT-free Python still warms caches, pools, sqlite
                await one_json(session, direct, none)
                await one_json(session, proxied, auth)

            times: dict[str, list[float]] = {"direct": [], "proxied": []}
            block = 10
            for _ in range(args.requests // block):
                for _ in range(block):
                    times["direct"].append(await one_json(session, direct, none))
                for _ in range(block):
                    times["proxied"].append(await one_json(session, proxied, auth))

            await one_stream(session, direct, none)
            await one_stream(session, proxied, auth)
            rates: dict[str, list[float]] = {"direct": [], "proxied": []}
            pair_ratios: list[float] = []
            sizes: set[int] = set()
            for n in range(args.streams):  # alternate which arm goes first
                order = [("direct", direct, none), ("proxied", proxied, auth)]
                for arm, url, headers in order if n % 2 == 0 else order[::-1]:
                    size, took = await one_stream(session, url, headers)
                    rates[arm].append(size / took)
                    sizes.add(size)
                pair_ratios.append(rates["proxied"][-1] / rates["direct"][-1])
            async with session.get(
                f"http://127.0.0.1:{agent_port}/api/v1/status", headers=auth
            ) as response:
                status = await response.json()
    finally:
        for process in (agent, upstream):
            process.send_signal(signal.SIGINT)
        for process in (agent, upstream):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(data_dir, ignore_errors=True)

    ms = {arm: [t * 1000 for t in values] for arm, values in times.items()}
    result: dict[str, Any] = {
        "requests_per_arm": len(ms["direct"]),
        "json_ms": {
            arm: {"p50": percentile(v, 50), "p99": percentile(v, 99), "mean": statistics.fmean(v)}
            for arm, v in ms.items()
        },
        "streams_per_arm": args.streams,
        "stream_events": args.events,
        "stream_bytes": sorted(sizes),
        "stream_mb_per_s": {arm: statistics.median(v) / 1e6 for arm, v in rates.items()},
        "windows_recorded": status["inference"]["count"],
    }
    json_ms = result["json_ms"]
    result["added_ms"] = {
        q: json_ms["proxied"][q] - json_ms["direct"][q] for q in ("p50", "p99", "mean")
    }
    result["stream_ratio"] = statistics.median(pair_ratios)
    result["cpu_count"] = os.cpu_count()
    return result


def report(result: dict[str, Any]) -> str:
    j, added = result["json_ms"], result["added_ms"]
    s = result["stream_mb_per_s"]
    ok50 = "meets" if added["p50"] <= 1.0 else "MISSES"
    ok_stream = "meets" if result["stream_ratio"] >= 0.95 else "MISSES"
    return "\n".join(
        [
            f"non-streamed chat completions, {result['requests_per_arm']} per arm (ms):",
            f"  direct   p50 {j['direct']['p50']:.3f}  p99 {j['direct']['p99']:.3f}",
            f"  proxied  p50 {j['proxied']['p50']:.3f}  p99 {j['proxied']['p99']:.3f}",
            f"  added    p50 {added['p50']:.3f}  p99 {added['p99']:.3f}   "
            f"({ok50} the <= 1 ms p50 target)",
            f"streams, {result['streams_per_arm']} per arm of {result['stream_events']} SSE "
            f"events ({result['stream_bytes'][0] / 1e6:.1f} MB), median throughput:",
            f"  direct   {s['direct']:.2f} MB/s",
            f"  proxied  {s['proxied']:.2f} MB/s",
            f"  ratio    {result['stream_ratio'] * 100:.1f} %   (median of interleaved pairs; "
            f"{ok_stream} the >= 95 % target)",
            f"windows recorded by the agent: {result['windows_recorded']}; "
            f"{result['cpu_count']} CPUs shared by client, agent and upstream",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="non-streamed calls per arm")
    parser.add_argument("--warmup", type=int, default=100, help="calls per arm before timing")
    parser.add_argument("--streams", type=int, default=30, help="streams per arm")
    parser.add_argument("--events", type=int, default=20000, help="SSE events per stream")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream, args.events)
        return 0
    result = asyncio.run(run(args))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
