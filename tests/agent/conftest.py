"""Fixtures shared by the agent's tests: a real agent on the simulated source, and its API."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.api.app import build_app
from joulegate_agent.config import AgentConfig
from tests.agent.helpers import ClientFactory


@pytest.fixture
def no_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """A box without nvidia-ml-py, whatever this environment has installed."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


@pytest.fixture
def agent_config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        host="127.0.0.1",
        port=8787,
        data_dir=tmp_path / "data",
        source="simulated",
        zeroconf=False,
    )


@pytest.fixture
async def agent(agent_config: AgentConfig) -> AsyncIterator[Agent]:
    running = Agent(agent_config)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def api(agent: Agent, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    """A client of the agent's real app; send `headers=auth(agent)` to be let in."""
    return await aiohttp_client(build_app(agent))
