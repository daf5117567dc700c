"""Which proxied routes the gate guards: every route that makes the upstream compute is gated and
metered; only an allow-list of routes that compute nothing passes with the gate closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, rows, running_agent

COMPUTING = [
    ("POST", "/v1/responses"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/images/generations"),
    ("POST", "/v1/embeddings"),
    ("POST", "/embedding"),
    ("POST", "/embeddings"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("POST", "/v1/rerank"),
    ("POST", "/v1/audio/transcriptions"),
    ("POST", "/v1/audio/speech"),
    ("POST", "/api/create"),
    ("POST", "/api/pull"),
    ("POST", "/api/blobs/sha256-0"),
    ("GET", "/v1/some/future/route"),
]
COMPUTING_NOTHING = [
    ("GET", "/v1/models"),
    ("GET", "/v1/models/llama-3.2-3b-instruct"),
    ("GET", "/api/tags"),
    ("POST", "/api/show"),
    ("GET", "/api/ps"),
    ("GET", "/api/version"),
    ("GET", "/props"),
    ("GET", "/health"),
    ("POST", "/tokenize"),
    ("POST", "/detokenize"),
]


@pytest.mark.parametrize(("method", "path"), COMPUTING)
async def test_a_computing_route_is_refused_while_the_gate_is_closed(
    method: str, path: str, tmp_path: Path
) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, client),
    ):
        response = await client.request(method, path, json={"model": "m"}, headers=auth(agent))
        assert response.status == 503
        assert (await response.json())["error"] == "gate_closed"
        [row] = await rows(agent)
    assert fake.seen == []
    assert (row["outcome"], row["route"]) == ("refused", path)


@pytest.mark.parametrize(("method", "path"), COMPUTING)
async def test_a_computing_route_is_metered_while_the_gate_is_open(
    method: str, path: str, tmp_path: Path
) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        response = await client.request(method, path, json={"model": "m"}, headers=auth(agent))
        assert response.status == 200
        await response.read()
        [row] = await rows(agent)
    assert [seen.path_qs for seen in fake.seen] == [path]
    assert (row["outcome"], row["route"], row["gate_open"]) == ("ok", path, True)
    assert row["output_tokens"] is None  # a route whose answers the agent cannot read


@pytest.mark.parametrize(("method", "path"), COMPUTING_NOTHING)
async def test_a_route_that_computes_nothing_passes_the_closed_gate_unmetered(
    method: str, path: str, tmp_path: Path
) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, client),
    ):
        response = await client.request(method, path, headers=auth(agent))
        assert response.status == 200
        assert await rows(agent) == []
    assert [seen.path_qs for seen in fake.seen] == [path]
