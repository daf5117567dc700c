"""Security: the token guards every route but health and never leaks; bodies have a limit; the
proxy reaches its configured upstream and nothing else.

(Also covered elsewhere: every route of the OpenAPI document refuses a missing or wrong token,
tests/agent/test_api_core.py; the agent's token is never forwarded upstream and an absolute-form
request line or a Host header cannot pick the host, tests/agent/test_proxy_forwarding.py; Home
Assistant's config flow refuses a host that is not a Joulegate agent, other services, HTML and
hosts without the health route, tests/integration/test_config_flow.py::test_user_flow_errors;
diagnostics redact the token, tests/integration/test_diagnostics.py.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from demo.procs import free_port
from tests.agent.fakes.llm_answers import SHAPES
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, running_agent
from tests.reliability.conftest import Processes
from tests.reliability.harness import agent_process

CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")
TOKEN = "known-token-Zq9xW3vB7nM2kL5pR8tY1uI4oE6aS0dF"
UPSTREAM_SECRET = "upstream-secret-H7g5"
WRONG_TOKENS = [
    TOKEN[:-1],
    TOKEN + "x",
    TOKEN.upper(),
    TOKEN[1:],
    " " + TOKEN[::-1],
]


def concrete(path: str) -> str:
    """A request path for a registered route pattern."""
    return (
        path.replace("{tail:.*}", "models")
        .replace("{name:[a-z_]+}", "tags")
        .replace("{digest}", "sha256-0")
        .replace("{window_id}", "w1")
    )


def registered_routes(app: web.Application) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None or route.method == "HEAD":
            continue
        methods = ["GET", "POST"] if route.method == "*" else [route.method]
        routes += [(method, concrete(path)) for method in methods]
    return sorted(set(routes))


async def test_every_registered_route_but_health_needs_the_token(tmp_path: Path) -> None:
    """Every route the app registers (not only those in the document), plus unknown paths."""
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (_agent, client),
    ):
        assert client.app is not None
        routes = registered_routes(client.app)
        assert len(routes) > 20
        routes += [("GET", "/nope"), ("GET", "/api/v1/nope"), ("DELETE", "/v1/models")]
        for method, path in routes:
            for headers in ({}, *({"Authorization": f"Bearer {t}"} for t in WRONG_TOKENS)):
                response = await client.request(method, path, headers=headers)
                if path == "/api/v1/health":
                    assert response.status == 200
                    continue
                assert response.status == 401, (method, path, headers)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                body = await response.json()
                assert body["error"] in ("unauthorized", "invalid_token")
        assert fake.seen == []  # nothing reached the upstream without the token


async def test_without_proxy_auth_the_api_still_needs_the_token(tmp_path: Path) -> None:
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url, proxy_auth=False)) as (_agent, client),
    ):
        assert (await client.post(CHAT.path, json=CHAT.request)).status == 200
        for path in ("/api/v1/status", "/api/v1/inferences", "/api/v1/gate"):
            assert (await client.get(path)).status == 401


async def test_the_token_never_appears_in_logs_or_bodies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right and wrong tokens, every kind of error, the proxy's failures: neither the token, nor
    a wrong token a client sent, nor the upstream's credentials show in a log line or a body."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("JOULEGATE_TOKEN", TOKEN)
    bodies: list[str] = []
    right = {"Authorization": f"Bearer {TOKEN}"}

    async def call(client: TestClient[Any, Any], method: str, path: str, **kw: Any) -> None:
        response = await client.request(method, path, **kw)
        try:
            text = await response.text()
        except aiohttp.ClientPayloadError:
            text = "(cut off: the upstream died mid-response)"
        bodies.append(f"{response.status} {dict(response.headers)} {text}")

    async def everything(client: TestClient[Any, Any], fake: FakeUpstream) -> None:
        for wrong in WRONG_TOKENS:
            bearer = {"Authorization": f"Bearer {wrong}"}
            await call(client, "GET", "/api/v1/status", headers={"Authorization": wrong})
            await call(client, "GET", "/api/v1/status", headers=bearer)
            await call(client, "POST", CHAT.path, json=CHAT.request, headers=bearer)
        await call(client, "GET", "/api/v1/status", headers={"Authorization": f"Basic {TOKEN}"})
        for method, path in [
            ("GET", "/api/v1/status"),
            ("GET", "/api/v1/info"),
            ("GET", "/api/v1/nope"),
            ("DELETE", "/api/v1/status"),
            ("GET", "/api/v1/inferences?after=x"),
            ("POST", "/api/v1/windows/nope/end"),
        ]:
            await call(client, method, path, headers=right)
        await call(client, "PUT", "/api/v1/gate", data=b"{", headers=right)
        await call(client, "PUT", "/api/v1/gate", json={"open": "yes"}, headers=right)
        await call(client, "POST", CHAT.path, json=CHAT.request, headers=right)
        defer = {**right, "X-Joulegate-Defer-Until": "soon"}
        await call(client, "POST", CHAT.path, json=CHAT.request, headers=defer)
        await call(client, "POST", CHAT.path, data=b"x" * (2 << 20), headers=right)
        fake.status = 500
        await call(client, "POST", CHAT.path, json=CHAT.request, headers=right)
        fake.status = 200
        fake.drop_after_chunks = 0
        await call(client, "POST", CHAT.path, json=CHAT.request, headers=right)
        fake.drop_after_chunks = None

    in_url = FakeUpstream()
    with_key = FakeUpstream()
    async with upstream_server(in_url) as url_a, upstream_server(with_key) as url_b:
        credentials = url_a.replace("http://", f"http://user:{UPSTREAM_SECRET}@")
        config_a = proxy_config(tmp_path / "a", credentials)
        config_b = proxy_config(tmp_path / "b", url_b, upstream_api_key=UPSTREAM_SECRET)
        for config, fake in ((config_a, in_url), (config_b, with_key)):
            async with running_agent(config) as (agent, client):
                assert agent.token == TOKEN
                await everything(client, fake)
                await agent.inference.drain()
    # The upstream gone: a 502, whose message names the upstream without its credentials.
    async with running_agent(config_a) as (agent, client):
        await call(client, "POST", CHAT.path, json=CHAT.request, headers=right)
        assert "upstream_unavailable" in bodies[-1]

    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert len(bodies) > 40
    for secret in [TOKEN, *[w.strip() for w in WRONG_TOKENS], UPSTREAM_SECRET]:
        assert not [line for line in logged if secret in line], secret
        assert not [body for body in bodies if secret in body], secret
    # The upstream got its own credentials, never the agent's token.
    assert {s.header("Authorization") for s in with_key.seen} == {f"Bearer {UPSTREAM_SECRET}"}
    assert all((s.header("Authorization") or "").startswith("Basic ") for s in in_url.seen)


def test_the_token_never_appears_in_the_running_agents_output(
    tmp_path: Path, processes: Processes
) -> None:
    """The real process with debug logging: its whole output holds no token."""
    import requests  # type: ignore[import-untyped]

    upstream_port = free_port()  # nothing listens: the proxy fails with 502
    agent = processes.add(
        agent_process(
            tmp_path, upstream=f"http://127.0.0.1:{upstream_port}", token=TOKEN, extra=("-v",)
        )
    )
    agent.start()
    with requests.Session() as session:
        for token in (TOKEN, *WRONG_TOKENS):
            headers = {"Authorization": f"Bearer {token}"}
            for path in ("/api/v1/status", "/api/v1/inferences", "/api/v1/nope"):
                session.get(agent.url + path, headers=headers, timeout=5)
            session.post(agent.url + CHAT.path, json=CHAT.request, headers=headers, timeout=5)
    assert agent.stop() == 0
    output = agent.log_path.read_text(errors="replace")
    assert "Joulegate agent" in output
    assert "$JOULEGATE_TOKEN" in output
    for secret in (TOKEN, *[w.strip() for w in WRONG_TOKENS]):
        assert secret not in output


async def test_request_bodies_over_the_limit_are_refused(tmp_path: Path) -> None:
    fake = FakeUpstream()
    limit = 4096
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, max_body_bytes=limit)) as (agent, client),
    ):
        big = b"{" + b" " * limit + b"}"

        async def chunked() -> Any:
            for _ in range(8):
                yield b" " * 1024

        cases: list[tuple[str, str, Any]] = [
            ("POST", CHAT.path, big),  # declared Content-Length over the limit
            ("POST", CHAT.path, chunked()),  # no Content-Length: counted as it arrives
            ("POST", "/api/generate", big),
            ("PUT", "/api/v1/gate", big),
            ("POST", "/api/v1/windows", big),
        ]
        for method, path, data in cases:
            response = await client.request(method, path, data=data, headers=auth(agent))
            assert response.status == 413, (method, path)
            body = await response.json()
            assert body["error"] == "request_too_large"
        # Headers past aiohttp's limits: a clean 4xx, and the agent still answers.
        huge = await client.get("/api/v1/status", headers={**auth(agent), "X-Big": "x" * 20000})
        assert 400 <= huge.status < 500
        assert (await client.get("/api/v1/health")).status == 200
    assert fake.seen == []


async def raw(port: int | None, request: bytes) -> bytes:
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert match, answer[:200]
    return int(match.group(1))


async def test_the_proxy_reaches_its_upstream_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Request-line and header tricks that would send a forward proxy elsewhere: each one goes
    to the configured upstream or is refused, and a second server (the "evil" host, also on
    127.0.0.1) never sees a request. An environment proxy is ignored, and an upstream's
    redirect is relayed to the client, never followed."""
    upstream, evil = FakeUpstream(), FakeUpstream()
    async with upstream_server(evil) as evil_url:
        evil_host = evil_url.removeprefix("http://")
        monkeypatch.setenv("HTTP_PROXY", evil_url)
        monkeypatch.setenv("http_proxy", evil_url)
        monkeypatch.setenv("ALL_PROXY", evil_url)
        async with (
            upstream_server(upstream) as url,
            running_agent(proxy_config(tmp_path, url)) as (agent, client),
        ):
            up_host = url.removeprefix("http://")
            token = f"Authorization: Bearer {agent.token}\r\n".encode()
            e = evil_host.encode()
            tricks = [
                b"GET http://" + e + b"/v1/models HTTP/1.1\r\nHost: " + e + b"\r\n",
                b"GET http://user@" + e + b"/api/tags HTTP/1.1\r\nHost: " + e + b"\r\n",
                b"GET https://" + e + b"/v1/models HTTP/1.1\r\nHost: " + e + b"\r\n",
                b"GET /v1/models HTTP/1.1\r\nHost: " + e + b"\r\n",
                b"GET //" + e + b"/v1/models HTTP/1.1\r\nHost: x\r\n",
                b"GET ///" + e + b"/v1/models HTTP/1.1\r\nHost: x\r\n",
                b"GET /v1/../../" + e + b"/v1/models HTTP/1.1\r\nHost: x\r\n",
                b"GET /v1/%2e%2e/%2e%2e/" + e + b"/x HTTP/1.1\r\nHost: x\r\n",
                b"GET /v1/..%2f..%2f" + e + b"/x HTTP/1.1\r\nHost: x\r\n",
                b"GET /v1/@" + e + b"/x HTTP/1.1\r\nHost: x\r\n",
                b"GET /v1/%40" + e + b"/x HTTP/1.1\r\nHost: x\r\n",
                b"GET /v1\\\\" + e + b"/x HTTP/1.1\r\nHost: x\r\n",
                b"GET /api/blobs/..%2f..%2f" + e + b" HTTP/1.1\r\nHost: x\r\n",
                b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: " + e + b"\r\n"
                b"Forwarded: host=" + e + b"\r\nX-Original-URL: http://" + e + b"/\r\n"
                b"X-Rewrite-URL: http://" + e + b"/\r\n",
                b"CONNECT " + e + b" HTTP/1.1\r\nHost: " + e + b"\r\n",
                b"OPTIONS * HTTP/1.1\r\nHost: " + e + b"\r\n",
                b"GET http://"
                + e
                + b"@"
                + up_host.encode()
                + b"/v1/models HTTP/1.1\r\nHost: x\r\n",
            ]
            forwarded = 0
            for trick in tricks:
                before = len(upstream.seen)
                answer = await raw(client.port, trick + token + b"Connection: close\r\n\r\n")
                code = status_of(answer)
                reached = len(upstream.seen) - before
                assert code < 500, (trick, answer[:300])
                assert reached or 400 <= code < 500, (trick, answer[:300])
                forwarded += reached
            assert forwarded >= 5  # the tricks that are valid requests went upstream, not elsewhere
            assert {seen.host for seen in upstream.seen} == {up_host}

            # A redirect from the upstream is relayed, not followed.
            redirecting = web.Application()

            async def redirect(_request: web.Request) -> web.Response:
                raise web.HTTPFound(f"{evil_url}/v1/models")

            redirecting.router.add_route("*", "/{tail:.*}", redirect)
        async with (
            upstream_server(redirecting) as url,
            running_agent(proxy_config(tmp_path / "r", url)) as (agent, client),
        ):
            response = await client.get("/v1/models", headers=auth(agent), allow_redirects=False)
            assert response.status == 302
            assert response.headers["Location"] == f"{evil_url}/v1/models"
    assert evil.seen == []


@pytest.mark.parametrize(
    "path",
    [
        "/v1/../../admin",
        "/v1/%2e%2e/%2E%2e/admin",
        "/v1/..%2f..%2fadmin",
        "/v1/..%5c..%5cadmin",
        "/v1/./models",
        "/api/blobs/..",
        "/v1/models/..",
    ],
)
async def test_dot_segments_cannot_leave_the_upstreams_base_path(path: str, tmp_path: Path) -> None:
    """With an upstream under a base path (`http://host/llm`), `..` would lead the upstream to
    another application on its host: such paths are refused, raw or percent-encoded."""
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url + "/llm")) as (agent, client),
    ):
        token = f"Authorization: Bearer {agent.token}\r\n".encode()
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + token
        answer = await raw(client.port, request + b"Connection: close\r\n\r\n")
        assert status_of(answer) == 400, answer[:300]
        assert b"invalid_path" in answer
        ok = await client.get("/v1/models", headers=auth(agent))
        assert ok.status == 200
    assert [seen.path_qs for seen in fake.seen] == ["/llm/v1/models"]


async def test_error_bodies_are_json_and_say_no_more_than_needed(tmp_path: Path) -> None:
    """A 502 names the upstream without its credentials; 401s never echo the token sent."""
    async with running_agent(
        proxy_config(tmp_path, f"http://admin:pw-Secret1@127.0.0.1:{free_port()}")
    ) as (agent, client):
        response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        assert response.status == 502
        body = await response.json()
        assert "pw-Secret1" not in json.dumps(body)
        assert "admin" not in json.dumps(body)
        assert "127.0.0.1" in body["message"]
        refused = await client.get("/api/v1/status", headers={"Authorization": "Bearer guess-1"})
        assert "guess-1" not in await refused.text()


async def test_the_agent_answers_its_api_while_a_client_floods_it_with_bad_requests(
    tmp_path: Path,
) -> None:
    """A bounded burst of malformed and unauthenticated requests from one client does not stop
    the agent from answering a good one."""
    async with (
        running_agent(proxy_config(tmp_path, None)) as (agent, client),
        aiohttp.ClientSession() as session,
    ):

        async def junk(n: int) -> None:
            headers = {"Authorization": f"Bearer wrong-{n}"}
            async with session.put(
                client.make_url("/api/v1/gate"), data=b"[" * 5000, headers=headers
            ) as r:
                assert r.status == 401

        await asyncio.gather(*(junk(n) for n in range(200)))
        good = await client.get("/api/v1/status", headers=auth(agent))
        assert good.status == 200
