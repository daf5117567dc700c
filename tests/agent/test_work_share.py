"""Overlapping proxied requests share the board's energy by the work each got, not by waiting.

The simulated LLM runs on 127.0.0.1 in front of a real agent on the simulated board, whose power
follows the decodes under way: one at a time (Ollama on a small board, llama-server with one
slot) or several side by side (llama-server's slots).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.simulation.llm import SimulatedLLM, SimulatorSettings
from tests.agent.fakes.upstream import upstream_server
from tests.agent.helpers import auth, proxy_config, rows, running_agent

PROMPT = "Why is the sky blue? Answer in one short paragraph, please."


async def stream(
    agent: Agent, client: TestClient[Any, Any], path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json={**body, "stream": True}, headers=auth(agent))
    assert response.status == 200
    await response.read()


async def ollama_generate(agent: Agent, client: TestClient[Any, Any], tokens: int) -> None:
    body = {"prompt": PROMPT, "options": {"num_predict": tokens}}
    await stream(agent, client, "/api/generate", body)


async def test_equal_requests_queued_at_a_one_at_a_time_server_get_equal_energy(
    tmp_path: Path,
) -> None:
    one_at_a_time = SimulatorSettings(tokens_per_s=50.0, prefill_tokens_per_s=400.0, slots=1)
    async with (
        upstream_server(SimulatedLLM(one_at_a_time).app()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        warm_up = asyncio.create_task(ollama_generate(agent, client, 40))  # the board at work
        await asyncio.sleep(0.3)
        await asyncio.gather(*(ollama_generate(agent, client, 40) for _ in range(4)))
        await warm_up
        recorded = await rows(agent)
    queued = sorted(recorded, key=lambda row: row["ended_at"])[1:]
    energies = [row["energy_j"] for row in queued]
    assert max(energies) <= 1.05 * min(energies), energies


async def test_concurrent_streams_at_different_speeds_share_energy_by_tokens(
    tmp_path: Path,
) -> None:
    batched = SimulatorSettings(tokens_per_s=60.0, prefill_tokens_per_s=0.0, slots=4)
    async with (
        upstream_server(SimulatedLLM(batched).app()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        fast = {"prompt": PROMPT, "n_predict": 90}
        slow = {"prompt": PROMPT, "n_predict": 30, "simulate_tokens_per_s": 20.0}
        await asyncio.gather(
            stream(agent, client, "/completion", fast), stream(agent, client, "/completion", slow)
        )
        by_tokens = {row["output_tokens"]: row for row in await rows(agent)}
    ratio = by_tokens[90]["energy_j"] / by_tokens[30]["energy_j"]
    assert ratio == pytest.approx(3.0, rel=0.15)


async def test_windows_that_cover_the_time_add_up_to_the_boards_energy(tmp_path: Path) -> None:
    one_at_a_time = SimulatorSettings(tokens_per_s=50.0, prefill_tokens_per_s=400.0, slots=1)
    async with (
        upstream_server(SimulatedLLM(one_at_a_time).app()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        before = agent.meter.total_j
        await asyncio.gather(*(ollama_generate(agent, client, 20) for _ in range(3)))
        recorded = await rows(agent)
        board = agent.meter.total_j - before
    windows = sum(row["energy_j"] for row in recorded)
    assert windows <= board
    assert windows == pytest.approx(board, rel=0.03)
