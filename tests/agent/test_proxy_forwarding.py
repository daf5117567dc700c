"""What the proxy forwards, what it keeps back, and where it connects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.agent.fakes.llm_answers import SHAPES
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, rows, running_agent

CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")


async def test_method_path_query_and_body_reach_the_upstream_unchanged(tmp_path: Path) -> None:
    fake = FakeUpstream()
    body = json.dumps(CHAT.request, indent=1).encode()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        await client.post(
            "/v1/chat/completions?api-version=2024-06-01&q=a%20b",
            data=body,
            headers={**auth(agent), "Content-Type": "application/json"},
        )
    [seen] = fake.seen
    assert seen.method == "POST"
    assert seen.path_qs == "/v1/chat/completions?api-version=2024-06-01&q=a%20b"
    assert seen.body == body
    assert seen.header("Content-Type") == "application/json"


async def test_the_agent_token_is_never_forwarded_upstream(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
    [seen] = fake.seen
    assert seen.header("Authorization") is None
    assert all(agent.token not in value for v in seen.headers.values() for value in v)


async def test_the_configured_upstream_key_is_sent_instead(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, upstream_api_key="sk-upstream-123")) as (
            agent,
            client,
        ),
    ):
        await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
    assert fake.seen[0].header("Authorization") == "Bearer sk-upstream-123"


async def test_hop_by_hop_and_joulegate_headers_are_not_forwarded(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        await client.post(
            CHAT.path,
            json=CHAT.request,
            headers={
                **auth(agent),
                "Connection": "keep-alive, X-Private",
                "X-Private": "secret",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic abc",
                "TE": "trailers",
                "X-Joulegate-Defer-Until": "30",
                "X-Request-Id": "req-42",
                "User-Agent": "my-client/1.0",
            },
        )
    seen = fake.seen[0]
    for name in ("x-private", "keep-alive", "proxy-authorization", "te", "x-joulegate-defer-until"):
        assert seen.header(name) is None, name
    assert seen.header("X-Request-Id") == "req-42"
    assert seen.header("User-Agent") == "my-client/1.0"


async def test_the_upstream_host_comes_from_the_settings_never_the_request(
    tmp_path: Path,
) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        await client.post(
            CHAT.path, json=CHAT.request, headers={**auth(agent), "Host": "evil.example:80"}
        )
        # An absolute-form request line names another host; the proxy still only uses its own.
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        body = json.dumps(CHAT.request).encode()
        writer.write(
            b"POST http://evil.example/v1/chat/completions HTTP/1.1\r\n"
            b"Host: evil.example\r\nAuthorization: Bearer " + agent.token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert [s.host for s in fake.seen] == [url.removeprefix("http://")] * 2


async def test_response_status_and_headers_come_back(tmp_path: Path) -> None:
    fake = FakeUpstream(extra_headers={"X-Upstream": "llama.cpp", "Set-Cookie": "a=1"})
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        assert response.status == 200
        assert response.headers["X-Upstream"] == "llama.cpp"
        assert response.headers["Set-Cookie"] == "a=1"
        assert response.headers["Content-Length"] == str(len(CHAT.body))


async def test_non_inference_routes_pass_through_without_a_window(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        tags = await client.get("/api/tags", headers=auth(agent))
        models = await client.get("/v1/models", headers=auth(agent))
        props = await client.get("/props", headers=auth(agent))
        assert (tags.status, models.status, props.status) == (200, 200, 200)
        assert (await tags.json())["models"][0]["name"] == "llama3.2:3b"
        assert await rows(agent) == []


async def test_proxy_routes_need_the_token(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            _agent,
            client,
        ),
    ):
        response = await client.post(CHAT.path, json=CHAT.request)
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    assert fake.seen == []


async def test_proxy_auth_switched_off_lets_lan_clients_in(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, proxy_auth=False)) as (_agent, client),
    ):
        response = await client.post(CHAT.path, json=CHAT.request)
        assert response.status == 200
        assert (await client.get("/api/v1/gate")).status == 401  # the API itself stays closed


async def test_a_body_over_the_limit_gets_413_and_never_reaches_the_upstream(
    tmp_path: Path,
) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, max_body_bytes=2048)) as (agent, client),
    ):
        response = await client.post(CHAT.path, data=b"x" * 4096, headers=auth(agent))
        assert response.status == 413
        assert (await response.json())["error"] == "request_too_large"

        async def chunked() -> object:
            for _ in range(4):
                yield b"y" * 1024

        response = await client.post(CHAT.path, data=chunked(), headers=auth(agent))
        assert response.status == 413
    assert fake.seen == []


async def test_without_an_upstream_proxy_routes_say_so(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        assert response.status == 502
        assert (await response.json())["error"] == "upstream_not_configured"


async def test_agent_api_routes_are_never_proxied(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.get("/api/v1/no-such-route", headers=auth(agent))
        assert response.status == 404
    assert fake.seen == []
