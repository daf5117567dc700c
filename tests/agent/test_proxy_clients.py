"""The official `openai` and `ollama` client libraries work through the proxy unchanged: only the
base URL and the API key (the agent's token) differ from talking to the server directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.simulation.llm import SimulatedLLM, SimulatorSettings
from tests.agent.fakes.upstream import upstream_server
from tests.agent.helpers import proxy_config, rows, running_agent

FAST = SimulatorSettings(model="llama3.2:3b", tokens_per_s=2000.0, prefill_tokens_per_s=0.0)
PROMPT = "Why is the sky blue?"


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[Agent, str]]:
    async with (
        upstream_server(SimulatedLLM(FAST).app()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        yield agent, base_url(client)


def base_url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


def openai_client(agent: Agent, base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=agent.token, max_retries=0)


@asynccontextmanager
async def ollama_client(agent: Agent, base: str) -> AsyncIterator[ollama.AsyncClient]:
    client = ollama.AsyncClient(host=base, headers={"Authorization": f"Bearer {agent.token}"})
    try:
        yield client
    finally:
        await client.close()


async def test_openai_chat_completion_through_the_proxy(proxied: tuple[Agent, str]) -> None:
    agent, base = proxied
    async with openai_client(agent, base) as client:
        answer = await client.chat.completions.create(
            model="llama3.2:3b", messages=[{"role": "user", "content": PROMPT}], max_tokens=12
        )
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 12
    assert answer.choices[0].message.content
    [row] = await rows(agent)
    assert (row["route"], row["output_tokens"], row["prompt_tokens"]) == (
        "/v1/chat/completions",
        12,
        answer.usage.prompt_tokens,
    )
    assert row["model"] == "llama3.2:3b"
    assert row["tokens_estimated"] is False


async def test_openai_streamed_chat_with_usage_through_the_proxy(
    proxied: tuple[Agent, str],
) -> None:
    agent, base = proxied
    async with openai_client(agent, base) as client:
        stream = await client.chat.completions.create(
            model="llama3.2:3b",
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=9,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
    assert len(pieces) == 9
    assert usage is not None
    assert usage.completion_tokens == 9
    [row] = await rows(agent)
    assert row["output_tokens"] == 9
    assert row["ttft_s"] is not None


async def test_openai_legacy_completion_stream_through_the_proxy(
    proxied: tuple[Agent, str],
) -> None:
    agent, base = proxied
    async with openai_client(agent, base) as client:
        stream = await client.completions.create(
            model="llama3.2:3b", prompt=PROMPT, max_tokens=5, stream=True
        )
        text = "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])
    assert len(text.split()) == 5
    [row] = await rows(agent)
    assert (row["route"], row["output_tokens"]) == ("/v1/completions", 5)
    assert row["tokens_estimated"] is False  # llama.cpp-style timings on the final chunk


async def test_openai_model_list_passes_through_unmetered(proxied: tuple[Agent, str]) -> None:
    agent, base = proxied
    async with openai_client(agent, base) as client:
        models = await client.models.list()
    assert [m.id for m in models.data] == ["llama3.2:3b"]
    assert await rows(agent) == []


async def test_openai_client_with_a_wrong_key_is_refused(proxied: tuple[Agent, str]) -> None:
    _agent, base = proxied
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="not-the-token", max_retries=0)
    async with client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()


async def test_ollama_streamed_chat_through_the_proxy(proxied: tuple[Agent, str]) -> None:
    agent, base = proxied
    async with ollama_client(agent, base) as client:
        parts = [
            part
            async for part in await client.chat(
                model="llama3.2:3b",
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                options={"num_predict": 7},
            )
        ]
    assert parts[-1].done is True
    assert parts[-1].eval_count == 7
    [row] = await rows(agent)
    assert (row["route"], row["output_tokens"], row["model"]) == ("/api/chat", 7, "llama3.2:3b")
    assert row["prompt_tokens"] == parts[-1].prompt_eval_count


async def test_ollama_generate_without_streaming_through_the_proxy(
    proxied: tuple[Agent, str],
) -> None:
    agent, base = proxied
    async with ollama_client(agent, base) as client:
        answer = await client.generate(
            model="llama3.2:3b", prompt=PROMPT, stream=False, options={"num_predict": 4}
        )
    assert answer.done is True
    assert len((answer.response or "").split()) == 4
    [row] = await rows(agent)
    assert (row["route"], row["output_tokens"]) == ("/api/generate", 4)


async def test_ollama_model_list_passes_through_unmetered(proxied: tuple[Agent, str]) -> None:
    agent, base = proxied
    async with ollama_client(agent, base) as client:
        listing = await client.list()
    assert [m.model for m in listing.models] == ["llama3.2:3b"]
    assert await rows(agent) == []


def test_sync_openai_client_works_through_the_proxy_too(tmp_path: Path) -> None:
    """The synchronous client (what most scripts use) against a proxy served on a real port."""
    import asyncio
    import threading

    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    state: dict[str, Any] = {}

    async def serve() -> None:
        nonlocal stop
        async with (
            upstream_server(SimulatedLLM(FAST).app()) as url,
            running_agent(proxy_config(tmp_path, url)) as (agent, client),
        ):
            state.update(agent=agent, base=base_url(client))
            stop = asyncio.get_running_loop().create_future()
            state["loop"] = asyncio.get_running_loop()
            ready.set()
            await stop
            state["rows"] = await rows(agent)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(10)
        client = openai.OpenAI(
            base_url=f"{state['base']}/v1", api_key=state["agent"].token, max_retries=0
        )
        with client:
            answer = client.chat.completions.create(
                model="llama3.2:3b", messages=[{"role": "user", "content": PROMPT}], max_tokens=3
            )
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 3
    finally:
        assert stop is not None
        state["loop"].call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
    assert [r["output_tokens"] for r in state["rows"]] == [3]
