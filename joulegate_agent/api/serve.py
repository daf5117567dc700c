"""`joulegate-agent serve`: run the API until SIGINT or SIGTERM, then stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from joulegate_agent.agent import Agent
from joulegate_agent.api.app import build_app
from joulegate_agent.api.mdns import Advertiser
from joulegate_agent.api.server import AgentRunner, GuardedSite, ServerLimits
from joulegate_agent.api.token import TOKEN_ENV, token_path
from joulegate_agent.config import AgentConfig

_LOGGER = logging.getLogger(__name__)


async def serve(config: AgentConfig) -> None:
    agent = Agent(config)
    app = build_app(agent)
    runner = AgentRunner(app, ServerLimits.for_this_process())
    await runner.setup()
    site = GuardedSite(runner, config.host, config.port)
    await agent.start()
    advertiser = Advertiser(agent.device_id, config.host, config.port) if config.zeroconf else None
    try:
        await site.start()
        if advertiser is not None:
            await advertiser.start()
        _announce(agent, config)
        await _until_signalled()
    finally:
        if advertiser is not None:
            await advertiser.stop()
        await runner.cleanup()  # the app's shutdown hooks (build_app), then its connections
        await agent.stop()


def _announce(agent: Agent, config: AgentConfig) -> None:
    shown_host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host  # noqa: S104
    where = f"${TOKEN_ENV}" if agent.token_from_env else str(token_path(config.data_dir))
    print(f"Joulegate agent {agent.version} ({agent.board.model}, device {agent.device_id})")
    print(f"  source:  {agent.source.info.kind} — {agent.boundary}")
    print(f"  API:     http://{shown_host}:{config.port}/api/v1/status")
    print(f"  token:   {where}  (show it with: joulegate-agent token --data-dir {config.data_dir})")
    print("  stop:    Ctrl-C", flush=True)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    _LOGGER.info("Stopping")
