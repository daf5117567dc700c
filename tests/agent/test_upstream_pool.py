"""The proxy's pool of upstream connections is sized from the descriptor budget, not aiohttp's
default of 100: with 100 streams open, a 101st request waited for one of them to end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from joulegate_agent.api.server import connection_cap
from joulegate_agent.proxy.routes import ProxySettings
from tests.agent.fakes.llm_answers import MODELS
from tests.agent.fakes.upstream import upstream_server
from tests.agent.helpers import auth, proxy_config, running_agent, wait_for

STREAMS = 120


def test_the_upstream_pool_has_a_connection_for_every_client_connection(tmp_path: Path) -> None:
    settings = ProxySettings.from_config(proxy_config(tmp_path, "http://127.0.0.1:1"))
    assert settings.max_upstream_connections == connection_cap()


async def test_a_model_list_is_not_held_behind_a_hundred_open_streams(tmp_path: Path) -> None:
    release = asyncio.Event()
    streaming = 0

    async def stream(request: web.Request) -> web.StreamResponse:
        nonlocal streaming
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        streaming += 1
        await response.write(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n')
        await release.wait()
        await response.write(b"data: [DONE]\n\n")
        return response

    async def models(_request: web.Request) -> web.Response:
        return web.json_response(MODELS)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream)
    app.router.add_get("/v1/models", models)
    async with (
        upstream_server(app) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        target = client.make_url("/v1/chat/completions")

        async def one() -> None:
            async with session.post(target, json={"stream": True}, headers=auth(agent)) as r:
                await r.read()

        streams = [asyncio.ensure_future(one()) for _ in range(STREAMS)]
        try:
            await wait_for(lambda: streaming >= 100, timeout=20)
            started = time.monotonic()
            async with session.get(
                client.make_url("/v1/models"),
                headers=auth(agent),
                timeout=aiohttp.ClientTimeout(total=5.0),
            ) as r:
                assert r.status == 200
            waited = time.monotonic() - started
            await wait_for(lambda: streaming == STREAMS, timeout=20)
        finally:
            release.set()
            await asyncio.gather(*streams, return_exceptions=True)
    assert waited < 1.0
