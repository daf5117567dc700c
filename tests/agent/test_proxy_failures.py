"""Upstream down or failing, and clients that leave: clear answers, and honest rows."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.agent.fakes.llm_answers import SHAPES
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, rows, running_agent

STREAM = next(s for s in SHAPES if s.name == "Ollama /api/generate ndjson")
CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_upstream_down_gives_502_upstream_unavailable(tmp_path: Path) -> None:
    upstream = f"http://127.0.0.1:{closed_port()}"
    async with running_agent(proxy_config(tmp_path, upstream)) as (agent, client):
        response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        assert response.status == 502
        body = await response.json()
        [row] = await rows(agent)
    assert body["error"] == "upstream_unavailable"
    assert body["message"]
    assert (row["outcome"], row["http_status"]) == ("error", 502)


async def test_silent_upstream_gives_504_after_the_timeout(tmp_path: Path) -> None:
    fake = FakeUpstream(hang_s=5.0)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, upstream_timeout_s=0.3)) as (agent, client),
    ):
        response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        assert response.status == 504
        assert (await response.json())["error"] == "upstream_timeout"
        [row] = await rows(agent)
    assert (row["outcome"], row["http_status"]) == ("error", 504)


async def test_upstream_error_status_is_relayed_unchanged_and_recorded_as_error(
    tmp_path: Path,
) -> None:
    fake = FakeUpstream(status=503)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        assert response.status == 503
        assert (await response.json())["error"]["message"] == "model is loading"
        [row] = await rows(agent)
    assert (row["outcome"], row["http_status"]) == ("error", 503)


async def test_upstream_dying_mid_stream_cuts_the_client_off_and_records_error(
    tmp_path: Path,
) -> None:
    fake = FakeUpstream(shapes=(STREAM,), drop_after_chunks=3)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.post(STREAM.path, json=STREAM.request, headers=auth(agent))
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
        [row] = await rows(agent)
    assert row["outcome"] == "error"
    assert row["output_tokens"] == 3
    assert row["tokens_estimated"] is True  # the done object never came


async def test_client_disconnect_mid_stream_records_cancelled_and_stops_the_upstream(
    tmp_path: Path,
) -> None:
    fake = FakeUpstream(shapes=(STREAM,), chunk_delay_s=0.1)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                client.make_url(STREAM.path), json=STREAM.request, headers=auth(agent)
            )
            await response.content.readline()
            response.close()  # the client goes away after the first token
        await asyncio.wait_for(fake.disconnected.wait(), 5)
        [row] = await rows(agent)
    assert row["outcome"] == "cancelled"
    assert row["http_status"] == 200
    assert row["energy_j"] > 0
    assert row["output_tokens"] is not None
    assert row["output_tokens"] < STREAM.output_tokens


async def test_agent_keeps_serving_after_failures(tmp_path: Path) -> None:
    fake = FakeUpstream(shapes=(STREAM,), drop_after_chunks=1)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.post(STREAM.path, json=STREAM.request, headers=auth(agent))
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
        fake.drop_after_chunks = None
        response = await client.post(STREAM.path, json=STREAM.request, headers=auth(agent))
        assert await response.read() == STREAM.body
        outcomes = [row["outcome"] for row in await rows(agent)]
    assert outcomes == ["error", "ok"]
