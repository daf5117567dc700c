"""The real `joulegate-agent` (simulated power source) serving its app on 127.0.0.1, in-process.

Only the world at the agent's edges is simulated (its power source); the API, ledger, gate,
event stream and token are the agent's own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from demo.procs import free_port


class RealAgent:
    """A running agent and its address."""

    def __init__(self, agent: Any, port: int) -> None:
        """Keep the agent and where it listens."""
        self.agent = agent
        self.port = port

    host = "127.0.0.1"

    @property
    def token(self) -> str:
        """The agent's bearer token."""
        token: str = self.agent.token
        return token

    @property
    def base(self) -> str:
        """The agent's API address."""
        return f"http://{self.host}:{self.port}/api/v1"

    @property
    def headers(self) -> dict[str, str]:
        """The bearer token header."""
        return {"Authorization": f"Bearer {self.token}"}

    async def open_window(self, hass: HomeAssistant) -> str:
        """Start metering an inference through the explicit-window API; return its id."""
        session = async_get_clientsession(hass)
        async with session.post(
            f"{self.base}/windows", json={"model": "test"}, headers=self.headers
        ) as r:
            assert r.status == 201
            window: dict[str, Any] = await r.json()
        return str(window["window_id"])

    async def end_window(
        self, hass: HomeAssistant, window_id: str, output_tokens: int
    ) -> dict[str, Any]:
        """Finish an inference window; return its ledger row."""
        session = async_get_clientsession(hass)
        async with session.post(
            f"{self.base}/windows/{window_id}/end",
            json={"output_tokens": output_tokens, "outcome": "ok"},
            headers=self.headers,
        ) as r:
            assert r.status == 200
            row: dict[str, Any] = await r.json()
        return row

    async def meter_inference(self, hass: HomeAssistant, output_tokens: int) -> dict[str, Any]:
        """Meter an inference, as a non-HTTP runtime does."""
        return await self.end_window(hass, await self.open_window(hass), output_tokens)

    async def gate(self, hass: HomeAssistant) -> dict[str, Any]:
        """The agent's gate, as its API reports it."""
        session = async_get_clientsession(hass)
        async with session.get(f"{self.base}/gate", headers=self.headers) as r:
            assert r.status == 200
            gate: dict[str, Any] = await r.json()
        return gate


@asynccontextmanager
async def running_agent(tmp_path: Path) -> AsyncGenerator[RealAgent]:
    """Start the agent with its simulated source; stop it afterwards."""
    agent_module = pytest.importorskip("joulegate_agent.agent")
    app_module = pytest.importorskip("joulegate_agent.api.app")
    config_module = pytest.importorskip("joulegate_agent.config")
    port = free_port()
    config = config_module.AgentConfig(
        host="127.0.0.1",
        port=port,
        data_dir=tmp_path / "agent",
        source="simulated",
        zeroconf=False,
    )
    agent = agent_module.Agent(config)
    await agent.start()
    runner = web.AppRunner(app_module.build_app(agent), shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield RealAgent(agent, port)
    finally:
        await agent.inference.stop()  # ends event streams, so the server can close
        await runner.cleanup()
        await agent.stop()
