"""Errors at the HTTP level: every one is JSON, says what happened, and none needs a traceback."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from joulegate_agent.agent import DATABASE_FILE
from tests.agent.fakes.llm_answers import SHAPES
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, rows, running_agent


def corrupt_pages_after_the_first(database: Path) -> None:
    """Damage every page but the header-and-schema page, as a failing SD card would, and touch
    the header from another connection so the agent's own page cache is dropped."""
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = database.stat().st_size
    with database.open("r+b") as handle:
        handle.seek(4096)
        handle.write(os.urandom(size - 4096))
    other.execute("PRAGMA user_version=99")
    other.close()


async def test_a_damaged_ledger_says_it_cannot_be_read_on_a_read(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        for _ in range(3):
            started = await client.post("/api/v1/windows", json={}, headers=auth(agent))
            window_id = (await started.json())["window_id"]
            await client.post(f"/api/v1/windows/{window_id}/end", json={}, headers=auth(agent))
        corrupt_pages_after_the_first(tmp_path / "data" / DATABASE_FILE)
        response = await client.get("/api/v1/inferences", headers=auth(agent))
        body = await response.json()
    assert response.status == 503
    assert body["error"] == "storage_unavailable"
    assert "cannot read" in body["message"]
    assert "cannot write" not in body["message"]


CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")
JSON = {"Content-Type": "application/json"}


async def test_json_nested_too_deep_is_a_400_not_a_500(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    async with (
        upstream_server(FakeUpstream(current=CHAT)) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        for path in ("/api/v1/gate", "/api/v1/windows"):
            method = "PUT" if path.endswith("gate") else "POST"
            response = await client.request(method, path, data=deep, headers=auth(agent) | JSON)
            assert response.status == 400
            assert (await response.json())["error"] == "invalid_json"
        proxied = await client.post(CHAT.path, data=deep, headers=auth(agent) | JSON)
        assert proxied.status == 200  # relayed: the upstream judges its own request
        [row] = await rows(agent)
    assert row["model"] == CHAT.model
