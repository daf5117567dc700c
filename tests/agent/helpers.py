"""Helpers of the agent's tests that drive a real agent: its config in front of an upstream, the
agent started with a client of its real app, its token, its rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from joulegate_agent.agent import Agent
from joulegate_agent.api.app import build_app
from joulegate_agent.config import AgentConfig

ClientFactory = Callable[..., Coroutine[Any, Any, TestClient[Any, Any]]]


def proxy_config(tmp_path: Path, upstream: str | None, **overrides: Any) -> AgentConfig:
    """An agent on the simulated source in front of `upstream`; the gate falls back open unless
    the test says otherwise, so proxy tests need no lease."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "data_dir": tmp_path / "data",
        "source": "simulated",
        "zeroconf": False,
        "sample_rate_hz": 50.0,
        "upstream": upstream,
        "gate_fallback_open": True,
        **overrides,
    }
    return AgentConfig(**settings)


@asynccontextmanager
async def running_agent(config: AgentConfig) -> AsyncIterator[tuple[Agent, TestClient[Any, Any]]]:
    """A started agent and a client of its real app on a real loopback port."""
    agent = Agent(config)
    await agent.start()
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(agent), host="127.0.0.1"))
    await client.start_server()
    try:
        yield agent, client
    finally:
        await client.close()
        await agent.stop()


def auth(agent: Agent) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent.token}"}


async def rows(agent: Agent) -> list[dict[str, Any]]:
    """Every ledger row, once every window in flight has been recorded."""
    await agent.inference.drain()
    return [row.to_json() for row in agent.inference.ledger.rows()]


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
