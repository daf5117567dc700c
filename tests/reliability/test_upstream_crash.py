"""The upstream LLM server killed (SIGKILL) in the middle of a streamed answer.

The simulated LLM server runs as a real process; the agent (in this process, on a real loopback
port) relays its stream. When the server dies the client must get a clean error at once (its
connection is cut, so a truncated answer cannot pass for a whole one), the window must be
recorded as an error with the tokens that did arrive, and the agent must stay healthy: it answers
its API, refuses cleanly with 502 while the server is down, and relays again once it is back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.agent.helpers import auth, proxy_config, rows, running_agent
from tests.reliability.conftest import Processes
from tests.reliability.harness import simulator_process, upstream_url

STREAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama.cpp": ("/completion", {"prompt": "Why?", "n_predict": 200, "stream": True}),
    "openai": (
        "/v1/chat/completions",
        {
            "model": "llama3.2:3b",
            "messages": [{"role": "user", "content": "Why?"}],
            "max_tokens": 200,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    "ollama": (
        "/api/chat",
        {
            "model": "llama3.2:3b",
            "messages": [{"role": "user", "content": "Why?"}],
            "options": {"num_predict": 200},
        },
    ),
}
LINES_BEFORE_KILL = 6


@pytest.mark.parametrize("dialect", sorted(STREAMS))
async def test_upstream_killed_mid_stream(
    dialect: str, tmp_path: Path, processes: Processes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    path, body = STREAMS[dialect]
    llm = processes.add(simulator_process(tmp_path, tokens_per_s=20.0))
    await asyncio.to_thread(llm.start)
    config = proxy_config(tmp_path, upstream_url(llm))
    async with running_agent(config) as (agent, client):
        response = await client.post(path, json=body, headers=auth(agent))
        assert response.status == 200
        lines = 0
        while lines < LINES_BEFORE_KILL:
            line = await asyncio.wait_for(response.content.readline(), 5)
            lines += bool(line.strip())
        llm.kill(signal.SIGKILL)
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.read(), 5)  # a clean error, not a hang

        [row] = await rows(agent)
        assert (row["outcome"], row["http_status"]) == ("error", 200)
        assert row["tokens_estimated"] is True  # the final counts never came
        assert row["output_tokens"] is not None
        assert 1 <= row["output_tokens"] < 200
        assert row["energy_j"] > 0

        health = await client.get("/api/v1/health")
        assert health.status == 200
        status = await client.get("/api/v1/status", headers=auth(agent))
        assert status.status == 200
        assert (await status.json())["inference"]["in_flight"] == 0

        down = await client.post(path, json=body, headers=auth(agent))
        assert down.status == 502
        assert (await down.json())["error"] == "upstream_unavailable"

        await asyncio.to_thread(llm.start)
        again = await client.post(path, json={**body, "n_predict": 3}, headers=auth(agent))
        assert again.status == 200
        await again.read()
        outcomes = [(r["outcome"], r["http_status"]) for r in await rows(agent)]
    assert outcomes[:2] == [("error", 200), ("error", 502)]
    assert outcomes[2][0] == "ok"
    relayed = [r for r in caplog.records if "Upstream failed mid-response" in r.getMessage()]
    assert len(relayed) == 1
