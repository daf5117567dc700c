"""Soak: the agent under steady streaming load and Home Assistant-like polling.

    python benchmarks/soak.py --minutes 10 [--concurrency 50] [--json FILE]
    python benchmarks/soak.py --seconds 25          # the short run the test suite does

Three kinds of process on 127.0.0.1, as on a real box: the simulated LLM server
(`joulegate-agent simulate-llm`, ~25 tokens/s per stream), the agent (`joulegate-agent serve` on
the simulated source, 10 Hz sampling, real ledger), and this client, which keeps `--concurrency`
streaming inferences in flight (all three dialects, 10 to 40 tokens each) while it polls
`GET /api/v1/status` and `GET /api/v1/inferences` every second and renews a 60-s gate lease every
10 s, as Home Assistant does. New requests stop at the deadline; those in flight finish.

Reports, and checks (exit status 1 when one fails):
- no request dropped: every request got a complete 200 answer, and has its `ok` ledger row;
- polling: every status read answered 200, the lifetime counters never went down;
- sampling keeps its rate: the sampler's worst gap between samples (`sampler.worst_gap_s`, over the
  agent's whole life) and its samples per second;
- memory stays flat: the agent's resident memory (VmRSS) after the warm-up, at half-time, at the
  end and its peak; on runs of 5 minutes or more, the trend of the second half (a least-squares
  slope, MiB per minute) must be under 0.05 MiB/min. The first minutes are not flat on purpose:
  SQLite's page cache fills to its 2 MiB cap as the ledger grows;
- what it costs: the agent's CPU time over the run, as a share of one core.
Every loop is bounded by the deadline; both child processes are killed at the end, whatever
happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from demo.procs import free_port, simulated_agent_argv  # noqa: E402 - the repository root goes on sys.path first

HOST = "127.0.0.1"
TOKEN = "soak-token-0123456789abcdef"
LEASE_S = 60
RENEW_S = 10.0
POLL_S = 1.0
RSS_EVERY_S = 5.0
MAX_WORST_GAP_S = 0.5
MAX_RSS_GROWTH_MIB = 16.0
MAX_RSS_SLOPE_MIB_PER_MIN = 0.05
FLATNESS_MIN_SECONDS = 300.0
MIN_RATE_SHARE = 0.9


@dataclass
class Result:
    seconds: float = 0.0
    concurrency: int = 0
    started: int = 0
    completed: int = 0
    dropped: int = 0
    drops: list[str] = field(default_factory=list)
    tokens: int = 0
    rows_ok: int = 0
    rows_other: int = 0
    polls: int = 0
    failed_polls: int = 0
    worst_poll_s: float = 0.0
    counters_went_down: list[str] = field(default_factory=list)
    worst_gap_s: float = 0.0
    rate_hz: float = 0.0
    samples_per_s: float = 0.0
    rss_before_mib: float = 0.0
    rss_half_mib: float = 0.0
    rss_after_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_samples_mib: list[float] = field(default_factory=list)
    """Every RSS_EVERY_S after the warm-up."""
    rss_slope_mib_per_min: float = 0.0
    """Least-squares trend of the second half of rss_samples_mib."""
    cpu_percent: float = 0.0
    """The agent's CPU time (user + system) from the warm-up to the end, % of one core."""
    problems: list[str] = field(default_factory=list)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slope_per_min(samples: list[float], every_s: float) -> float:
    """Least-squares slope of evenly spaced samples, per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(samples) / n
    num = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(samples))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den * 60.0 / every_s


def spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def wait_http(session: aiohttp.ClientSession, url: str, process: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within 30 s")


def request_for(rng: random.Random) -> tuple[str, dict[str, Any], bytes]:
    tokens = rng.randint(10, 40)
    messages = [{"role": "user", "content": "Is the sun paying for this?"}]
    kind = rng.randrange(3)
    if kind == 0:
        body = {"prompt": "Why?", "n_predict": tokens, "stream": True}
        return "/completion", body, b'"stop":true'
    if kind == 1:
        body = {
            "model": "llama3.2:3b",
            "messages": messages,
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return "/v1/chat/completions", body, b"data: [DONE]"
    body = {"model": "llama3.2:3b", "messages": messages, "options": {"num_predict": tokens}}
    return "/api/chat", body, b'"done":true'


class Soak:
    def __init__(self, agent_url: str, seconds: float, concurrency: int, seed: int) -> None:
        self.url = agent_url
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.seconds = seconds
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self.result = Result(seconds=seconds, concurrency=concurrency)
        self.deadline = 0.0
        self.highest: dict[str, float] = {}
        self.rows: dict[int, dict[str, Any]] = {}
        self.cursor = 0
        self.last_status: dict[str, Any] = {}

    async def client(self, session: aiohttp.ClientSession, rng: random.Random) -> None:
        result = self.result
        while time.monotonic() < self.deadline:
            path, body, marker = request_for(rng)
            result.started += 1
            try:
                async with session.post(self.url + path, json=body, headers=self.headers) as r:
                    data = await r.read()
                    if r.status != 200 or marker not in data:
                        result.dropped += 1
                        result.drops.append(f"{path}: {r.status} {data[-200:]!r}")
                        continue
                    result.completed += 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                result.dropped += 1
                result.drops.append(f"{path}: {err!r}")

    async def renew(self, session: aiohttp.ClientSession) -> None:
        while time.monotonic() < self.deadline:
            await self.open_gate(session)
            await asyncio.sleep(RENEW_S)

    async def open_gate(self, session: aiohttp.ClientSession) -> None:
        body = {"open": True, "lease_s": LEASE_S, "reason": "soak"}
        async with session.put(self.url + "/api/v1/gate", json=body, headers=self.headers) as r:
            if r.status != 200:
                self.result.problems.append(f"gate renewal answered {r.status}")

    async def poll(self, session: aiohttp.ClientSession) -> None:
        """What Home Assistant does every second: status, then new ledger rows."""
        result = self.result
        while time.monotonic() < self.deadline:
            started = time.monotonic()
            await self.poll_once(session)
            result.worst_poll_s = max(result.worst_poll_s, time.monotonic() - started)
            await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - started)))

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        result = self.result
        result.polls += 1
        try:
            async with session.get(self.url + "/api/v1/status", headers=self.headers) as r:
                if r.status != 200:
                    result.failed_polls += 1
                    return
                status = await r.json()
            await self.read_rows(session)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            result.failed_polls += 1
            return
        self.last_status = status
        counters = {
            "board_wh": status["energy"]["board_wh"],
            "inference_wh": status["energy"]["inference_wh"],
            "count": status["inference"]["count"],
            "output_tokens": status["inference"]["output_tokens"],
        }
        for name, value in counters.items():
            if value < self.highest.get(name, 0.0):
                result.counters_went_down.append(f"{name}: {self.highest[name]} -> {value}")
            self.highest[name] = max(value, self.highest.get(name, 0.0))

    async def read_rows(self, session: aiohttp.ClientSession) -> None:
        for _ in range(1000):
            query = f"/api/v1/inferences?after={self.cursor}&limit=1000"
            async with session.get(self.url + query, headers=self.headers) as r:
                page = await r.json()
            for row in page["items"]:
                self.rows[row["id"]] = row
            self.cursor = page["cursor"]
            if not page["has_more"]:
                return

    async def memory(self, pid: int, warmup_s: float) -> None:
        result = self.result
        await asyncio.sleep(warmup_s)
        result.rss_before_mib = rss_mib(pid)
        cpu_before, started = cpu_s(pid), time.monotonic()
        half = self.deadline - self.seconds / 2
        while time.monotonic() < self.deadline:
            now_mib = rss_mib(pid)
            result.rss_samples_mib.append(round(now_mib, 2))
            result.rss_peak_mib = max(result.rss_peak_mib, now_mib)
            if not result.rss_half_mib and time.monotonic() >= half:
                result.rss_half_mib = now_mib
            await asyncio.sleep(min(RSS_EVERY_S, max(0.0, self.deadline - time.monotonic())))
        result.cpu_percent = 100 * (cpu_s(pid) - cpu_before) / (time.monotonic() - started)
        samples = result.rss_samples_mib
        result.rss_slope_mib_per_min = slope_per_min(samples[len(samples) // 2 :], RSS_EVERY_S)

    async def run(self, pid: int) -> Result:
        result = self.result
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=self.concurrency + 10)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await self.open_gate(session)
            self.deadline = time.monotonic() + self.seconds
            warmup = min(30.0, max(3.0, self.seconds * 0.1))
            tasks = [
                asyncio.create_task(self.client(session, random.Random(self.rng.random())))
                for _ in range(self.concurrency)
            ]
            others = [
                asyncio.create_task(self.renew(session)),
                asyncio.create_task(self.poll(session)),
                asyncio.create_task(self.memory(pid, warmup)),
            ]
            await asyncio.wait_for(asyncio.gather(*tasks), self.seconds + 90)
            await asyncio.gather(*others)
            result.rss_after_mib = rss_mib(pid)
            result.rss_peak_mib = max(result.rss_peak_mib, result.rss_after_mib)
            # Every row is written within a moment of its response: wait for the last ones.
            for _ in range(50):
                await self.poll_once(session)
                if sum(r["outcome"] == "ok" for r in self.rows.values()) >= result.completed:
                    break
                await asyncio.sleep(0.2)
        status = self.last_status
        result.rows_ok = sum(r["outcome"] == "ok" for r in self.rows.values())
        result.rows_other = len(self.rows) - result.rows_ok
        result.tokens = sum(r["output_tokens"] or 0 for r in self.rows.values())
        sampler = status.get("sampler", {})
        result.worst_gap_s = float(sampler.get("worst_gap_s", float("nan")))
        result.rate_hz = float(sampler.get("rate_hz", float("nan")))
        uptime = float(status.get("uptime_s", float("nan")))
        result.samples_per_s = float(sampler.get("samples", 0)) / uptime if uptime else 0.0
        judge(result)
        return result


def judge(result: Result) -> None:
    problems = result.problems
    if result.dropped:
        problems.append(f"{result.dropped} requests dropped, e.g. {result.drops[:3]}")
    if result.rows_ok != result.completed:
        problems.append(f"{result.completed} requests completed but {result.rows_ok} ok rows")
    if result.failed_polls:
        problems.append(f"{result.failed_polls} status polls failed")
    if result.counters_went_down:
        problems.append(f"counters went down: {result.counters_went_down[:3]}")
    if not result.worst_gap_s <= MAX_WORST_GAP_S:
        problems.append(f"worst sampling gap {result.worst_gap_s} s > {MAX_WORST_GAP_S} s")
    if not result.samples_per_s >= MIN_RATE_SHARE * result.rate_hz:
        problems.append(f"{result.samples_per_s:.2f} samples/s at {result.rate_hz} Hz")
    growth = result.rss_after_mib - result.rss_before_mib
    if not growth <= MAX_RSS_GROWTH_MIB:
        problems.append(f"resident memory grew {growth:.1f} MiB after the warm-up")
    slope = result.rss_slope_mib_per_min
    if result.seconds >= FLATNESS_MIN_SECONDS and not slope < MAX_RSS_SLOPE_MIB_PER_MIN:
        problems.append(f"resident memory still rising in the second half: {slope:.3f} MiB/min")


def report(result: Result) -> str:
    lines = [
        f"soak: {result.seconds:g} s, {result.concurrency} concurrent streaming inferences, "
        "status and ledger polled every 1 s, gate lease renewed every 10 s",
        f"  requests:  {result.completed} completed of {result.started} started, "
        f"{result.dropped} dropped; {result.rows_ok} ok ledger rows "
        f"({result.rows_other} others), {result.tokens} tokens",
        f"  polling:   {result.polls} polls, {result.failed_polls} failed, slowest "
        f"{result.worst_poll_s * 1000:.0f} ms; counters never went down: "
        f"{not result.counters_went_down}",
        f"  sampling:  worst gap {result.worst_gap_s * 1000:.0f} ms at {result.rate_hz:g} Hz, "
        f"{result.samples_per_s:.2f} samples/s",
        f"  memory:    agent RSS {result.rss_before_mib:.1f} MiB after warm-up, "
        f"{result.rss_half_mib:.1f} MiB at half-time, {result.rss_after_mib:.1f} MiB at the end "
        f"(peak {result.rss_peak_mib:.1f} MiB); second-half trend "
        f"{result.rss_slope_mib_per_min:+.3f} MiB/min",
        f"  cost:      agent CPU {result.cpu_percent:.1f} % of one core",
    ]
    lines += [f"  PROBLEM:   {p}" for p in result.problems] or ["  all checks passed"]
    return "\n".join(lines)


async def soak(seconds: float, concurrency: int, seed: int, workdir: Path) -> Result:
    llm_port, agent_port = free_port(), free_port()
    python = sys.executable
    llm = spawn(
        [python, "-m", "joulegate_agent", "simulate-llm", "--host", HOST, "--port", str(llm_port)],
        workdir / "llm.log",
        {},
    )
    agent = None
    try:
        agent = spawn(
            simulated_agent_argv(agent_port, workdir / "data", f"http://{HOST}:{llm_port}"),
            workdir / "agent.log",
            {"JOULEGATE_TOKEN": TOKEN},
        )
        async with aiohttp.ClientSession() as session:
            await wait_http(session, f"http://{HOST}:{llm_port}/health", llm)
            await wait_http(session, f"http://{HOST}:{agent_port}/api/v1/health", agent)
        run = Soak(f"http://{HOST}:{agent_port}", seconds, concurrency, seed)
        result = await run.run(agent.pid)
        log = (workdir / "agent.log").read_text(errors="replace")
        if "Traceback" in log:
            result.problems.append("the agent logged a traceback (see agent.log)")
        return result
    finally:
        for process in (agent, llm):
            if process is not None:
                stop(process)


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long (default: 10)")
    length.add_argument("--seconds", type=float, help="how long, in seconds")
    parser.add_argument("--concurrency", type=int, default=50, help="streams in flight (50)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="keep the logs and ledger in this folder")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60.0 * (args.minutes or 10.0)
    if not 1 <= seconds <= 24 * 3600 or not 1 <= args.concurrency <= 1000:
        parser.error("--seconds must be 1..86400 and --concurrency 1..1000")
    signal.signal(signal.SIGTERM, _interrupted)  # so that the children are stopped too
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="joulegate-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(soak(seconds, args.concurrency, args.seed, workdir))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
