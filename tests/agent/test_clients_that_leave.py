"""A client that leaves stops consuming: its queue slot is freed, its upstream request is cut, and
its row still says what happened. Run on the server `serve` runs, where aiohttp would otherwise
keep running a handler whose client is gone."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.agent.fakes.upstream import upstream_server
from tests.agent.helpers import proxy_config, rows, wait_for
from tests.agent.served import served_agent

DEFER = "X-Joulegate-Defer-Until"


@dataclass
class SlowGenerator:
    """An upstream that takes `generation_s` to answer a non-streamed completion, and records
    who asked and whose generation was cut short."""

    generation_s: float = 3.0
    asked: list[str] = field(default_factory=list)
    finished: int = 0
    cut_short: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.complete)
        return app

    async def complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.asked.append(str(body.get("user")))
        try:
            await asyncio.sleep(self.generation_s)
        except asyncio.CancelledError:
            self.cut_short.set()
            raise
        self.finished += 1
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        return web.json_response(
            {"choices": [{"message": {"content": "ok"}}], "model": "m", "usage": usage}
        )


def post_head(token: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{extra}"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def chat(user: str) -> bytes:
    return json.dumps({"model": "m", "user": user, "messages": []}).encode()


async def test_deferred_clients_that_leave_free_their_slots_and_never_run(tmp_path: Path) -> None:
    upstream = SlowGenerator(generation_s=0.05)
    async with upstream_server(upstream.app()) as url:
        config = proxy_config(tmp_path, url, gate_fallback_open=False, queue_capacity=4)
        async with served_agent(config) as served:
            queue = served.agent.inference.queue
            leavers = []
            for n in range(4):
                _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
                body = chat(f"leaver-{n}")
                writer.write(post_head(served.agent.token, len(body), DEFER + ": 600\r\n") + body)
                await writer.drain()
                leavers.append(writer)
            await wait_for(lambda: len(queue) == 4)
            for writer in leavers:
                writer.close()
            await wait_for(lambda: len(queue) == 0)

            async with aiohttp.ClientSession() as session:
                newcomer = asyncio.ensure_future(
                    session.post(
                        f"{served.url}/v1/chat/completions",
                        data=chat("newcomer"),
                        headers={**served.headers, DEFER: "600"},
                    )
                )
                await wait_for(lambda: len(queue) == 1)
                served.agent.inference.gate.set(open=True, lease_s=60)
                response = await newcomer
                assert response.status == 200
                response.release()
            await asyncio.sleep(0.2)
    assert upstream.asked == ["newcomer"]


async def test_a_client_that_leaves_stops_its_upstream_request(tmp_path: Path) -> None:
    upstream = SlowGenerator(generation_s=3.0)
    async with (
        upstream_server(upstream.app()) as url,
        served_agent(proxy_config(tmp_path, url)) as served,
    ):
        _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        body = chat("leaver")
        writer.write(post_head(served.agent.token, len(body)) + body)
        await writer.drain()
        await wait_for(lambda: upstream.asked == ["leaver"])
        await asyncio.sleep(0.3)
        left_at = time.monotonic()
        writer.close()
        await asyncio.wait_for(upstream.cut_short.wait(), 2.0)
        assert time.monotonic() - left_at < 1.0
        [row] = await rows(served.agent)
    assert upstream.finished == 0
    assert row["outcome"] == "cancelled"
    assert row["energy_j"] > 0
