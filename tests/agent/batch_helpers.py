"""Helpers of the batch queue's tests: input files, the official client, waiting on a batch."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import openai
from aiohttp.test_utils import TestClient
from openai.types import Batch

from joulegate_agent.agent import Agent
from joulegate_agent.simulation.llm import SimulatedLLM, SimulatorSettings
from tests.agent.fakes.upstream import upstream_server
from tests.agent.helpers import proxy_config, running_agent

MODEL = "llama3.2:3b"
FAST = SimulatorSettings(model=MODEL, tokens_per_s=2000.0, prefill_tokens_per_s=0.0)
CHAT: Literal["/v1/chat/completions"] = "/v1/chat/completions"


def chat_line(custom_id: str, max_tokens: int = 5, **extra: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Say something about {custom_id}"}],
            "max_tokens": max_tokens,
            **extra,
        },
    }


def jsonl(lines: list[Any]) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def openai_client(agent: Agent, client: TestClient[Any, Any]) -> openai.AsyncOpenAI:
    base = str(client.make_url("")).rstrip("/")
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=agent.token, max_retries=0)


@asynccontextmanager
async def batch_agent(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Agent, TestClient[Any, Any], openai.AsyncOpenAI]]:
    """An agent in front of a fast simulated LLM, its HTTP client and the official client."""
    async with (
        upstream_server(SimulatedLLM(FAST).app()) as url,
        running_agent(proxy_config(tmp_path, url, **overrides)) as (agent, http),
        openai_client(agent, http) as client,
    ):
        yield agent, http, client


async def submit(
    client: openai.AsyncOpenAI, content: bytes, name: str = "a.jsonl", **create: Any
) -> Batch:
    """Upload `content` as a batch input file and create a batch of it (a 24 h window)."""
    uploaded = await client.files.create(file=(name, content), purpose="batch")
    return await client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h", **create
    )


async def wait_for_status(
    client: openai.AsyncOpenAI, batch_id: str, statuses: tuple[str, ...], timeout: float = 15.0
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch stayed {batch.status}, waited for {statuses}")
        await asyncio.sleep(0.05)


def lines_of(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in content.splitlines() if line.strip()]
