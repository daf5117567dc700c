"""A small batch submitted at the demo's start: work that waits for the sun.

It goes to the agent as the official `openai` client sends it, in plain HTTP: the JSONL input file
uploaded to `/v1/files` (multipart, `purpose=batch`), then `/v1/batches` with its id. The agent
runs the batch's requests while the gate admits batch work, and Home Assistant's batch sensors and
the dashboard show its progress and, once it is done, its solar share. A second run of the demo
finds the batch an earlier run left in progress and submits none: the queue does not pile up.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from demo.traffic import DEFERRABLE, MODEL

SOURCE = "joulegate-demo"
"""The batch's `metadata.source`: how a later run of the demo knows its own batch."""
REQUESTS = 12
ENDPOINT = "/v1/chat/completions"
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")


def input_file(requests: int = REQUESTS) -> bytes:
    """The batch's input: one chat completion a line, each with its own `custom_id`."""
    lines = []
    for n in range(requests):
        prompt = DEFERRABLE[n % len(DEFERRABLE)]
        lines.append(
            {
                "custom_id": f"demo-{n + 1}",
                "method": "POST",
                "url": ENDPOINT,
                "body": {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": 120,
                },
            }
        )
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


class BatchError(RuntimeError):
    """The agent refused the demo's batch; the message is the agent's."""


async def submit(
    session: aiohttp.ClientSession, agent_url: str, token: str, *, requests: int = REQUESTS
) -> tuple[dict[str, Any], bool]:
    """The demo's batch in progress on the agent, and whether this call submitted it."""
    base = agent_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{base}/v1/batches", params={"limit": "20"}, headers=headers) as r:
        listed = await _json(r)
    for batch in listed.get("data", []):
        if batch.get("status") in ACTIVE and (batch.get("metadata") or {}).get("source") == SOURCE:
            return batch, False
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field(
        "file", input_file(requests), filename="captions.jsonl", content_type="application/jsonl"
    )
    async with session.post(f"{base}/v1/files", data=form, headers=headers) as r:
        uploaded = await _json(r)
    body = {
        "input_file_id": uploaded["id"],
        "endpoint": ENDPOINT,
        "completion_window": "24h",
        "metadata": {"source": SOURCE, "joulegate_when_sun_fails": "grid"},
    }
    async with session.post(f"{base}/v1/batches", json=body, headers=headers) as r:
        return await _json(r), True


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    data: dict[str, Any] = await response.json(content_type=None)
    if response.status >= 400:
        message = (data.get("error") or {}).get("message") or str(data)
        raise BatchError(f"{response.method} {response.url.path}: {response.status} {message}")
    return data
