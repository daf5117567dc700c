"""The agent's disk fills up, or its data directory turns read-only, while it serves.

How it is simulated (the tests run as root, where file permissions change nothing, and cannot
mount a tiny filesystem): through SQLite itself, on the agent's own connection.
- Disk full: `PRAGMA max_page_count` pinned at the database's current size, so the first write
  that needs one more page fails inside SQLite with its real SQLITE_FULL error, "database or
  disk is full", exactly as when the filesystem has no room left.
- Read-only: `PRAGMA query_only = ON`, so every write fails with SQLite's real "attempt to write
  a readonly database", as with a data directory remounted read-only.
Either way: the proxy keeps serving (metering happens after the response), the log says clearly
what happened, a request that needs a write gets a JSON 503, the API keeps answering, nothing
committed is lost, the counters never decrease and still match the rows, and once the disk has
room again rows are recorded again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from tests.agent.llm_fakes import (
    SHAPES,
    FakeUpstream,
    auth,
    proxy_config,
    running_agent,
    upstream_server,
)
from tests.reliability.harness import check_database_copy, counters_of

CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")
DEFAULT_MAX_PAGES = 1073741823


def disk_full(agent: Agent) -> None:
    with agent.store.lock:
        conn = agent.store.connection
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")


def disk_has_room(agent: Agent) -> None:
    with agent.store.lock:
        agent.store.connection.execute(f"PRAGMA max_page_count={DEFAULT_MAX_PAGES}")


def read_only(agent: Agent) -> None:
    with agent.store.lock:
        agent.store.connection.execute("PRAGMA query_only=ON")


def writable(agent: Agent) -> None:
    with agent.store.lock:
        agent.store.connection.execute("PRAGMA query_only=OFF")


FAILURES: dict[str, tuple[Callable[[Agent], None], Callable[[Agent], None], str]] = {
    "disk full": (disk_full, disk_has_room, "database or disk is full"),
    "read-only": (read_only, writable, "attempt to write a readonly database"),
}


async def api_rows(client: TestClient[Any, Any], agent: Agent) -> dict[int, dict[str, Any]]:
    response = await client.get("/api/v1/inferences?limit=1000", headers=auth(agent))
    assert response.status == 200
    page = await response.json()
    assert page["has_more"] is False
    return {row["id"]: row for row in page["items"]}


async def status(client: TestClient[Any, Any], agent: Agent) -> dict[str, Any]:
    response = await client.get("/api/v1/status", headers=auth(agent))
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def infer(client: TestClient[Any, Any], agent: Agent) -> None:
    response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
    assert response.status == 200
    assert await response.read() == CHAT.body


def not_lower(after: dict[str, float], before: dict[str, float]) -> None:
    for name, value in before.items():
        assert after[name] >= value, (name, before, after)


@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_storage_failure_keeps_the_api_and_the_ledger(
    failure: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    break_it, mend_it, sqlite_says = FAILURES[failure]
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url, sample_rate_hz=50.0)) as (agent, client),
    ):
        run: Callable[[], Awaitable[None]] = agent.inference.drain
        for _ in range(3):
            await infer(client, agent)
        await run()
        committed = await api_rows(client, agent)
        counters = counters_of(await status(client, agent))
        assert len(committed) == 3

        break_it(agent)
        lost = 0
        for _ in range(60):  # the disk fills up within a few rows; read-only fails at once
            await infer(client, agent)  # the proxy keeps serving: metering comes after
            await run()
            lost = sum("its row is lost" in r.getMessage() for r in caplog.records)
            if lost >= 3:
                break
        assert lost >= 3, caplog.text
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors
        assert all(sqlite_says in r.getMessage() for r in errors), caplog.text
        assert not any(r.exc_info for r in errors)  # one clear line each, no traceback

        # Writing an explicit window's row fails cleanly; everything else keeps answering.
        opened = await client.post("/api/v1/windows", json={}, headers=auth(agent))
        assert opened.status == 201
        window_id = (await opened.json())["window_id"]
        ended = await client.post(f"/api/v1/windows/{window_id}/end", headers=auth(agent))
        assert ended.status == 503
        body = await ended.json()
        assert body["error"] == "storage_unavailable"
        assert sqlite_says in body["message"]
        assert (await client.get("/api/v1/health")).status == 200
        gate = await client.put(
            "/api/v1/gate", json={"open": True, "lease_s": 60}, headers=auth(agent)
        )
        assert gate.status == 200
        for _ in range(3):
            during = counters_of(await status(client, agent))
            not_lower(during, counters)
            counters = during
        persist_errors = [r for r in caplog.records if "persist the energy counter" in r.message]
        assert len(persist_errors) <= 1  # said once, not at every status read
        still = await api_rows(client, agent)
        for row_id, row in committed.items():
            assert still[row_id] == row

        mend_it(agent)
        caplog.clear()
        await infer(client, agent)
        await run()
        after = await api_rows(client, agent)
        assert len(after) > len(still)
        for row_id, row in still.items():
            assert after[row_id] == row
        not_lower(counters_of(await status(client, agent)), counters)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        database = agent.store.path
    check = check_database_copy(database, tmp_path / "check")
    assert check.integrity == "ok"
    assert check.inferences_counter == check.inferences_counted
    assert check.output_tokens_counter == check.output_tokens_counted
