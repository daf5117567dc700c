"""What the proxy makes of an upstream's answer at the HTTP level: hop-by-hop headers stay on
their hop, and an answer that is not HTTP is called what it is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.agent.helpers import auth, proxy_config, rows, running_agent


@asynccontextmanager
async def raw_upstream(answer: bytes) -> AsyncIterator[str]:
    """An upstream on 127.0.0.1 that answers every request with exactly `answer`, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_headers_the_upstream_names_in_connection_are_not_relayed(tmp_path: Path) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Connection: close, X-Hop-Secret\r\nX-Hop-Secret: for-the-agent-only\r\n"
        b"X-Kept: yes\r\n\r\n{}"
    )
    async with (
        raw_upstream(answer) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        response = await client.get("/v1/models", headers=auth(agent))
        assert response.status == 200
    assert "X-Hop-Secret" not in response.headers
    assert response.headers["X-Kept"] == "yes"


async def test_an_answer_that_is_not_http_is_a_bad_gateway_not_an_unreachable_one(
    tmp_path: Path,
) -> None:
    async with (
        raw_upstream(b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        response = await client.post(
            "/v1/chat/completions", json={"model": "m"}, headers=auth(agent)
        )
        body = await response.json()
        [row] = await rows(agent)
    assert response.status == 502
    assert body["error"] == "upstream_bad_response"
    assert "not reachable" not in body["message"]
    assert "not valid HTTP" in body["message"]
    assert (row["outcome"], row["http_status"]) == ("error", 502)
