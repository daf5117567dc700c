"""An agent behind the server `serve` runs (guarded connections, handlers cancelled when their
client leaves), on a real loopback port: aiohttp's TestServer is not that server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from joulegate_agent.agent import Agent
from joulegate_agent.api.app import build_app
from joulegate_agent.api.server import AgentRunner, GuardedSite, ServerLimits
from joulegate_agent.config import AgentConfig


@dataclass
class Served:
    agent: Agent
    runner: AgentRunner
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agent.token}"}

    async def raw(self, request: bytes, timeout: float = 10.0) -> bytes:
        """Send `request` on a new connection; everything the agent answers until it closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(request)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()


@asynccontextmanager
async def served_agent(
    config: AgentConfig, limits: ServerLimits | None = None
) -> AsyncIterator[Served]:
    agent = Agent(config)
    runner = AgentRunner(build_app(agent), limits or ServerLimits.for_this_process())
    await runner.setup()
    await agent.start()
    site = GuardedSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Served(agent, runner, port)
    finally:
        await runner.cleanup()  # as serve stops: the app's shutdown hooks, then its connections
        await agent.stop()
