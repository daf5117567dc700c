"""Helpers of the batch queue's tests: input files, the official client, waiting on a batch."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

import openai
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.simulate_llm import SimulatorSettings

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
