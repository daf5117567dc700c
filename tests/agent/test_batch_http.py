"""Batch uploads behind the agent's guarded HTTP server: a body that stalls gets a 408 and
leaves nothing, while an upload longer than the body timeout that keeps coming is taken."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from joulegate_agent.api.server import ServerLimits
from tests.agent.batch_helpers import chat_line, jsonl
from tests.agent.helpers import proxy_config
from tests.agent.served import Served, served_agent

LIMITS = ServerLimits(max_connections=50, body_timeout_s=0.5)
BOUNDARY = "b0undary"


def upload_parts(content: bytes) -> tuple[bytes, bytes]:
    """The multipart body of an upload, cut where its file's bytes begin."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, content + f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(served: Served, path: str, length: int, content_type: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.agent.token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert match, answer[:200]
    return int(match.group(1)), json.loads(answer.partition(b"\r\n\r\n")[2])


async def test_an_upload_that_stalls_gets_a_408_and_leaves_nothing(tmp_path: Path) -> None:
    head, rest = upload_parts(jsonl([chat_line("a")]))
    async with served_agent(proxy_config(tmp_path, None), LIMITS) as served:
        length = len(head) + len(rest)
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
        answer = await served.raw(
            request_head(served, "/v1/files", length, content_type) + head + rest[:10],
            timeout=15.0,
        )
        left = list((served.agent.config.data_dir / "batch-files").iterdir())
    status, body = status_and_json(answer)
    assert status == 408
    assert body["error"] == {
        "message": "The request body did not arrive within 0.5 s.",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_timeout",
    }
    assert left == []


async def test_an_upload_that_keeps_coming_may_take_longer_than_the_body_timeout(
    tmp_path: Path,
) -> None:
    head, rest = upload_parts(jsonl([chat_line(f"r{n}") for n in range(50)]))
    async with served_agent(proxy_config(tmp_path, None), LIMITS) as served:
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(request_head(served, "/v1/files", len(head) + len(rest), content_type))
        writer.write(head)
        step = len(rest) // 6 + 1
        for start in range(0, len(rest), step):  # 6 pieces, 0.3 s apart: 1.5 s in all
            await asyncio.sleep(0.3)
            writer.write(rest[start : start + step])
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    status, body = status_and_json(answer)
    assert status == 200
    assert body["bytes"] == len(rest) - len(f"\r\n--{BOUNDARY}--\r\n")


async def test_a_batch_request_body_that_stalls_gets_a_408(tmp_path: Path) -> None:
    async with served_agent(proxy_config(tmp_path, "http://127.0.0.1:9"), LIMITS) as served:
        answer = await served.raw(
            request_head(served, "/v1/batches", 100, "application/json") + b'{"input_f',
            timeout=15.0,
        )
    status, body = status_and_json(answer)
    assert status == 408
    assert isinstance(body["error"], dict)
    assert body["error"]["code"] == "request_timeout"
