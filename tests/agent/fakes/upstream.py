"""A fake LLM server on 127.0.0.1 that replays the answers real servers send (llm_answers.py);
knobs make it slow, fail or hang up in chosen ways."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.agent.fakes.llm_answers import MODELS, SHAPES, TAGS, Shape


@dataclass
class Seen:
    """A request as the upstream received it."""

    method: str
    path_qs: str
    headers: dict[str, list[str]]
    body: bytes
    host: str | None

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass
class FakeUpstream:
    """Replays one `Shape` for its path (and stream flag); knobs make it fail in chosen ways."""

    shapes: tuple[Shape, ...] = SHAPES
    chunk_delay_s: float = 0.002
    status: int = 200
    hang_s: float = 0.0
    drop_after_chunks: int | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    current: Shape | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def pick(self, path: str, body: bytes) -> Shape | None:
        if self.current is not None:
            return self.current
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            request = {}
        want_stream = request.get("stream", path.startswith("/api/"))
        for shape in self.shapes:
            if shape.path == path and shape.stream == bool(want_stream):
                return shape
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        self.seen.append(Seen(request.method, request.raw_path, headers, body, request.host))
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
        if request.path == "/api/tags":
            return web.json_response(TAGS)
        if request.path == "/v1/models":
            return web.json_response(MODELS)
        if self.status >= 400:
            return web.json_response(
                {
                    "error": {
                        "code": self.status,
                        "message": "model is loading",
                        "type": "unavailable_error",
                    }
                },
                status=self.status,
            )
        shape = self.pick(request.path, body)
        if shape is None:
            return web.json_response(
                {"echo": True, "path": request.path_qs}, headers=self.extra_headers
            )
        response = web.StreamResponse(
            headers={"Content-Type": shape.content_type, **self.extra_headers}
        )
        if not shape.stream:
            response.content_length = len(shape.body)
        await response.prepare(request)
        try:
            for index, chunk in enumerate(shape.chunks):
                if self.drop_after_chunks is not None and index >= self.drop_after_chunks:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                await response.write(chunk)
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response


def with_options(shape: Shape, **changes: Any) -> Shape:
    return replace(shape, **changes)


@asynccontextmanager
async def upstream_server(fake: FakeUpstream | web.Application) -> AsyncIterator[str]:
    app = fake.app() if isinstance(fake, FakeUpstream) else fake
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
