"""A home's stream of inference requests, sent through the agent's proxy.

Requests arrive at random (a Poisson stream), in the three dialects the proxy meters
(OpenAI-compatible, Ollama, llama.cpp), streamed or not. Some are deferrable: they carry
`X-Joulegate-Defer-Until` and wait in the agent's queue for the gate to open instead of being
refused at once - the nightly summaries and photo captions a home can run whenever the sun shines.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp

DEFER_HEADER = "X-Joulegate-Defer-Until"
MODEL = "llama3.2:3b"

INTERACTIVE = (
    "Is the back door locked?",
    "What should I cook with leeks, potatoes and cream?",
    "Turn the living room lights to a warm evening scene and tell me what you changed.",
    "How long will the washing machine take on the eco program?",
    "Summarise today's weather for a bike ride to work.",
)
DEFERRABLE = (
    "Write captions for the 40 photos from Saturday's hike.",
    "Summarise last night's doorbell camera events.",
    "Transcribe and summarise the voice memos from this week.",
    "Tag the new recipes in the family cookbook by season.",
    "Draft the monthly energy report for the house.",
)


@dataclass(slots=True)
class TrafficStats:
    sent: int = 0
    ok: int = 0
    refused: int = 0  # 503: gate closed (interactive) or deadline passed (deferrable)
    deferrable_ok: int = 0  # of those ok: deferrable ones (they may have waited for the gate)
    errors: int = 0
    output_tokens: int = 0
    last: str = ""
    by_status: dict[int, int] = field(default_factory=dict)


def _request(rng: random.Random, deferrable: bool) -> tuple[str, dict[str, Any]]:
    prompt = rng.choice(DEFERRABLE if deferrable else INTERACTIVE)
    max_tokens = rng.randint(24, 120) if not deferrable else rng.randint(80, 200)
    dialect = rng.choice(("openai", "openai", "ollama", "llama.cpp"))
    if dialect == "openai":
        body: dict[str, Any] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": rng.random() < 0.6,
        }
        if body["stream"]:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", body
    if dialect == "ollama":
        return "/api/chat", {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "stream": rng.random() < 0.5,
            "options": {"num_predict": max_tokens},
        }
    return "/completion", {"prompt": prompt, "n_predict": max_tokens, "stream": False}


class Traffic:
    """Sends requests to the agent's proxy at `base_url` until cancelled."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        *,
        seed: int = 1,
        mean_interval_s: float = 6.0,
        defer_fraction: float = 0.35,
        defer_s: float = 240.0,
        max_in_flight: int = 8,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.rng = random.Random(seed)  # noqa: S311 - a request mix, not cryptography
        self.mean_interval_s = mean_interval_s
        self.defer_fraction = defer_fraction
        self.defer_s = defer_s
        self.stats = TrafficStats()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, deferrable: bool) -> int:
        """One request; returns its HTTP status (0 when it failed to connect)."""
        route, body = _request(self.rng, deferrable)
        headers = {"Authorization": f"Bearer {self.token}"}
        if deferrable:
            headers[DEFER_HEADER] = f"{self.defer_s:.0f}"
        self.stats.sent += 1
        timeout = aiohttp.ClientTimeout(total=(self.defer_s if deferrable else 0) + 120)
        try:
            async with self.session.post(
                f"{self.base_url}{route}", json=body, headers=headers, timeout=timeout
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            self.stats.errors += 1
            return 0
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        kind = "deferrable" if deferrable else "interactive"
        if status == 200:
            self.stats.ok += 1
            if deferrable:
                self.stats.deferrable_ok += 1
            self.stats.last = f"{kind} {route}: 200 ({len(raw)} bytes)"
        elif status == 503:
            self.stats.refused += 1
            self.stats.last = f"{kind} {route}: 503 gate closed"
        else:
            self.stats.errors += 1
            self.stats.last = f"{kind} {route}: {status} {raw[:120]!r}"
        return status

    async def _one(self, deferrable: bool) -> None:
        async with self._slots:
            await self.send(deferrable)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.rng.expovariate(1.0 / self.mean_interval_s))
                deferrable = self.rng.random() < self.defer_fraction
                task = asyncio.create_task(self._one(deferrable))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
