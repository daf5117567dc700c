"""The agent's HTTP server before any token is checked: stalled connections are closed, their
number stays under the descriptor budget, and aiohttp's own refusals are JSON."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from joulegate_agent.api.routes_core import openapi_document
from joulegate_agent.api.server import FD_RESERVE, ServerLimits, connection_cap
from tests.agent.helpers import proxy_config
from tests.agent.served import Served, served_agent

HALF_A_HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"
DOCUMENT = openapi_document()
OPERATIONS = [
    (path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in ("get", "put", "post", "delete", "patch")
]
WITH_A_BODY = [
    (path, method) for path, method, operation in OPERATIONS if "requestBody" in operation
]


def status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert match, answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head, head
    return int(match.group(1)), json.loads(body)


async def closed_within(
    served: Served, writer_reader: asyncio.StreamReader, timeout: float
) -> bool:
    try:
        return await asyncio.wait_for(writer_reader.read(), timeout) == b""
    except asyncio.TimeoutError:
        return False


def test_the_connection_cap_leaves_the_reserve_and_an_upstream_connection_for_each() -> None:
    assert connection_cap(1024) == (1024 - FD_RESERVE) // 2
    assert connection_cap(1024) * 2 + FD_RESERVE <= 1024
    assert connection_cap(64) >= 8


async def test_a_request_head_that_never_ends_is_closed_after_the_head_timeout(
    tmp_path: Path,
) -> None:
    limits = ServerLimits(max_connections=50, head_timeout_s=0.5)
    async with served_agent(proxy_config(tmp_path, None), limits) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(HALF_A_HEAD)
        started = time.monotonic()
        assert await closed_within(served, reader, 5.0)
        assert time.monotonic() - started < 3.0
        writer.close()


async def test_a_connection_that_never_sends_a_request_is_closed_after_the_idle_timeout(
    tmp_path: Path,
) -> None:
    limits = ServerLimits(max_connections=50, idle_timeout_s=0.5)
    async with served_agent(proxy_config(tmp_path, None), limits) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        assert await closed_within(served, reader, 5.0)
        writer.close()


async def test_past_the_cap_the_longest_waiting_half_open_connection_makes_room(
    tmp_path: Path,
) -> None:
    limits = ServerLimits(max_connections=4)
    async with served_agent(proxy_config(tmp_path, None), limits) as served:
        held = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(HALF_A_HEAD)
            await writer.drain()
            held.append((reader, writer))
            await asyncio.sleep(0.05)
        answer = await served.raw(
            b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status_and_json(answer)[0] == 200
        assert await closed_within(served, held[0][0], 2.0)  # the oldest half-open one
        assert len(served.runner.guard) <= 4
        for _, writer in held:
            writer.close()


async def test_a_trickling_request_body_gets_a_json_408(tmp_path: Path) -> None:
    limits = ServerLimits(max_connections=50, body_timeout_s=0.5)
    config = proxy_config(tmp_path, None, gate_fallback_open=False)
    async with served_agent(config, limits) as served:
        head = (
            f"PUT /api/v1/gate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.agent.token}"
            "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        ).encode()
        answer = await served.raw(head + b'{"open": ', timeout=15.0)
    status, body = status_and_json(answer)
    assert (status, body["error"]) == (408, "request_timeout")
    assert not served.agent.inference.gate.is_open


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"NOT-HTTP\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["space in a header name", "bad content-length", "no request line", "line too long"],
)
async def test_a_request_aiohttp_cannot_parse_gets_a_json_error(
    request_bytes: bytes, tmp_path: Path
) -> None:
    async with served_agent(proxy_config(tmp_path, None)) as served:
        answer = await served.raw(request_bytes)
    status, body = status_and_json(answer)
    assert 400 <= status < 500
    assert body["error"] == "bad_request"
    assert "not valid HTTP" in str(body["message"])


async def test_an_authorization_header_that_is_not_utf8_gets_a_json_401(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with served_agent(proxy_config(tmp_path, None)) as served:
        answer = await served.raw(
            b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x80"
            b"\r\nConnection: close\r\n\r\n"
        )
    status, body = status_and_json(answer)
    assert (status, body["error"]) == (401, "invalid_token")
    assert "Traceback" not in caplog.text


async def one_answer(served: Served, request: bytes) -> bytes:
    """The agent's answer to `request`, without waiting for it to close the connection (after
    an error it lingers, reading what is left of the body, up to aiohttp's lingering time)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        return head + await asyncio.wait_for(reader.readexactly(length), 10.0)
    finally:
        writer.close()


def documented(path: str, method: str, status: int) -> dict[str, Any]:
    """The operation's documented response for `status`, its $ref followed."""
    response: dict[str, Any] = DOCUMENT["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def assert_documents(response: dict[str, Any], body: object) -> None:
    schema = response["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": DOCUMENT["components"]})


async def test_every_operation_documents_the_400_of_a_request_that_is_not_http(
    tmp_path: Path,
) -> None:
    async with served_agent(proxy_config(tmp_path, None)) as served:
        answer = await served.raw(b"NOT-HTTP\r\n\r\n")
    status, body = status_and_json(answer)
    assert (status, body["error"]) == (400, "bad_request")
    for path, method, _ in OPERATIONS:
        response = documented(path, method, 400)
        assert "bad_request" in response["description"], (method, path)
        if "content" in response:  # else: a proxied route, the upstream's answer relayed as is
            assert_documents(response, body)


@pytest.mark.parametrize(("path", "method"), WITH_A_BODY, ids=[" ".join(op) for op in WITH_A_BODY])
async def test_every_operation_with_a_body_documents_its_408_when_the_body_stalls(
    tmp_path: Path, path: str, method: str
) -> None:
    limits = ServerLimits(max_connections=50, body_timeout_s=0.3)
    content_type = (
        "multipart/form-data; boundary=b0undary" if path == "/v1/files" else "application/json"
    )
    async with served_agent(proxy_config(tmp_path, "http://127.0.0.1:9"), limits) as served:
        head = (
            f"{method.upper()} {path.replace('{window_id}', 'w1')} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {served.agent.token}\r\nContent-Type: {content_type}\r\n"
            "Content-Length: 100\r\nConnection: close\r\n\r\n"
        ).encode()
        answer = await one_answer(served, head + b"--b0undary\r\n")
    status, body = status_and_json(answer)
    assert status == 408, body
    assert_documents(documented(path, method, 408), body)
