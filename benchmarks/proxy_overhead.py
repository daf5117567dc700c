"""Proxy overhead: what relaying LLM streams costs the agent, and what it adds to their latency.

    python benchmarks/proxy_overhead.py [--events 50] [--interval-ms 20] [--rounds 3]

Three processes on loopback, as on a real box: a minimal OpenAI-compatible upstream that streams
SSE events at a steady pace (one event per write, like a server decoding), the agent
(`joulegate-agent serve` on the simulated source, with a real ledger and sampler), and this
client. At 1, 50 and 200 concurrent streams, each round sends the same streams straight to the
upstream and through the agent, alternating which goes first.

Main figure: the agent's CPU-seconds per thousand relayed events (user + system time of its
process from /proc, over the proxied rounds, divided by the events it relayed). On a small shared
machine latency mostly measures contention between the three processes; CPU time is what the
proxy costs wherever it runs. Also: the time to first event and to the last event, p50, direct
and proxied, at each concurrency (the difference is what the proxy adds), and the non-streamed
chat completion's added latency. LiteLLM's proxy, what people use today to meter LLM traffic, is
an optional comparison this script does not run (it is not a dependency).
Targets: <= 1 ms added at p50 for a single request; no concurrency level adds more than
a second (aiohttp's default pool of 100 upstream connections once added 1.27 s at 200 streams).
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


def upstream_app(events: int, interval_s: float) -> web.Application:
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
            await asyncio.sleep(interval_s)  # a server decoding at a steady pace
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post(CHAT_PATH, chat)
    return app


def serve_upstream(port: int, events: int, interval_s: float) -> None:
    web.run_app(
        upstream_app(events, interval_s),
        host="127.0.0.1",
        port=port,
        print=None,
        access_log=None,
        backlog=1024,
    )


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


def cpu_s(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_stream(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[float, float]:
    """Time to the first event and to the end of one stream, in seconds."""
    request = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first: float | None = None
    started = time.perf_counter()
    async with session.post(url, json=request, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
        async for _chunk in response.content.iter_any():
            if first is None:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    return (total if first is None else first), total


async def streams_at_once(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], count: int
) -> list[tuple[float, float]]:
    return await asyncio.gather(*(one_stream(session, url, headers) for _ in range(count)))


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    first = [s[0] * 1000 for s in samples]
    total = [s[1] * 1000 for s in samples]
    return {
        "first_p50_ms": percentile(first, 50),
        "first_p99_ms": percentile(first, 99),
        "total_p50_ms": percentile(total, 50),
        "total_p99_ms": percentile(total, 99),
    }


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
            "--interval-ms",
            str(args.interval_ms),
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
    events_per_stream = args.events + 2  # the content events, the usage event, [DONE]
    try:
        direct = f"http://127.0.0.1:{upstream_port}{CHAT_PATH}"
        proxied = f"http://127.0.0.1:{agent_port}{CHAT_PATH}"
        timeout = aiohttp.ClientTimeout(total=600)
        connector = aiohttp.TCPConnector(limit=0)  # the client's own pool must not be the cap
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await wait_until_up(session, f"http://127.0.0.1:{agent_port}/api/v1/health")
            await wait_until_up(session, f"http://127.0.0.1:{upstream_port}/")
            token = (data_dir / "token").read_text(encoding="utf-8").strip()
            auth = {"Authorization": f"Bearer {token}"}
            none: dict[str, str] = {}
            arms = {"direct": (direct, none), "proxied": (proxied, auth)}

            for _ in range(args.warmup):  # JIT-free Python still warms caches, pools, sqlite
                await one_json(session, direct, none)
                await one_json(session, proxied, auth)
            await streams_at_once(session, direct, none, 2)
            await streams_at_once(session, proxied, auth, 2)

            times: dict[str, list[float]] = {"direct": [], "proxied": []}
            block = 10
            for _ in range(args.requests // block):
                for arm, (url, headers) in arms.items():
                    for _ in range(block):
                        times[arm].append(await one_json(session, url, headers))

            levels: dict[str, Any] = {}
            cpu = {"agent_proxied": 0.0, "agent_idle": 0.0, "upstream_direct": 0.0}
            wall = {"proxied": 0.0, "direct": 0.0}
            relayed = produced_direct = 0
            for concurrency in args.concurrency:
                samples: dict[str, list[tuple[float, float]]] = {"direct": [], "proxied": []}
                for round_ in range(args.rounds):
                    order = list(arms) if round_ % 2 == 0 else list(arms)[::-1]
                    for arm in order:
                        url, headers = arms[arm]
                        agent_before, upstream_before = cpu_s(agent.pid), cpu_s(upstream.pid)
                        began = time.perf_counter()
                        samples[arm] += await streams_at_once(session, url, headers, concurrency)
                        took = time.perf_counter() - began
                        agent_used = cpu_s(agent.pid) - agent_before
                        wall[arm] += took
                        if arm == "proxied":
                            cpu["agent_proxied"] += agent_used
                            relayed += concurrency * events_per_stream
                        else:  # the agent relays nothing meanwhile: its own running cost
                            cpu["agent_idle"] += agent_used
                            cpu["upstream_direct"] += cpu_s(upstream.pid) - upstream_before
                            produced_direct += concurrency * events_per_stream
                direct_s, proxied_s = summary(samples["direct"]), summary(samples["proxied"])
                levels[str(concurrency)] = {
                    "direct": direct_s,
                    "proxied": proxied_s,
                    "added_ms": {
                        key.removesuffix("_ms"): proxied_s[key] - direct_s[key]
                        for key in ("first_p50_ms", "total_p50_ms")
                    },
                }
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

    idle_rate = cpu["agent_idle"] / wall["direct"] if wall["direct"] else 0.0
    net = cpu["agent_proxied"] - idle_rate * wall["proxied"]
    ms = {arm: [t * 1000 for t in values] for arm, values in times.items()}
    json_ms = {
        arm: {"p50": percentile(v, 50), "p99": percentile(v, 99), "mean": statistics.fmean(v)}
        for arm, v in ms.items()
    }
    return {
        "cpu_s_per_1000_events": {
            "agent": 1000 * net / relayed,
            "agent_gross": 1000 * cpu["agent_proxied"] / relayed,
            "upstream_producing_them": 1000 * cpu["upstream_direct"] / produced_direct,
        },
        "agent_idle_core_share": idle_rate,
        "events_relayed": relayed,
        "events_per_stream": events_per_stream,
        "event_interval_ms": args.interval_ms,
        "rounds": args.rounds,
        "streams": levels,
        "requests_per_arm": len(ms["direct"]),
        "json_ms": json_ms,
        "added_ms": {q: json_ms["proxied"][q] - json_ms["direct"][q] for q in ("p50", "p99")},
        "windows_recorded": status["inference"]["count"],
        "cpu_count": os.cpu_count(),
        "litellm": "not run: optional comparison, LiteLLM is not a dependency",
    }


def report(result: dict[str, Any]) -> str:
    c = result["cpu_s_per_1000_events"]
    lines = [
        f"agent CPU per 1000 relayed events: {c['agent'] * 1000:.1f} ms "
        f"({c['agent_gross'] * 1000:.1f} ms with its idle cost; the upstream spent "
        f"{c['upstream_producing_them'] * 1000:.1f} ms producing them), over "
        f"{result['events_relayed']} events",
        f"streams of {result['events_per_stream']} events, one every "
        f"{result['event_interval_ms']:g} ms, {result['rounds']} rounds per arm (p50, ms):",
        "  streams   first event: direct  proxied  added   last event: direct  proxied  added",
    ]
    for level, figures in result["streams"].items():
        d, p, a = figures["direct"], figures["proxied"], figures["added_ms"]
        lines.append(
            f"  {level:>7}   {d['first_p50_ms']:19.1f} {p['first_p50_ms']:8.1f} "
            f"{a['first_p50']:6.1f}   {d['total_p50_ms']:18.1f} {p['total_p50_ms']:8.1f} "
            f"{a['total_p50']:6.1f}"
        )
    j, added = result["json_ms"], result["added_ms"]
    ok50 = "meets" if added["p50"] <= 1.0 else "MISSES"
    lines += [
        f"non-streamed chat completions, {result['requests_per_arm']} per arm: direct p50 "
        f"{j['direct']['p50']:.3f} ms, proxied {j['proxied']['p50']:.3f} ms, added "
        f"{added['p50']:.3f} ms ({ok50} the <= 1 ms p50 target), p99 added {added['p99']:.3f} ms",
        f"windows recorded by the agent: {result['windows_recorded']}; "
        f"{result['cpu_count']} CPUs shared by client, agent and upstream; LiteLLM: "
        f"{result['litellm']}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="non-streamed calls per arm")
    parser.add_argument("--warmup", type=int, default=50, help="calls per arm before timing")
    parser.add_argument("--events", type=int, default=50, help="content events per stream")
    parser.add_argument(
        "--interval-ms", type=float, default=20.0, help="pause between events (default: 20)"
    )
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 50, 200],
        help="concurrent streams per level, comma-separated (default: 1,50,200)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per level and arm")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream, args.events, args.interval_ms / 1000)
        return 0
    result = asyncio.run(run(args))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
