"""The agent's disk fills up, or its data directory turns read-only, while it serves.

Disk full is real: the data directory is a tmpfs of a few MB mounted for the test (the tests run
as root; without the right to mount, those tests are skipped), filled by a file of zeros until
only a little room is left, so SQLite gets ENOSPC from the kernel. Read-only while running is
simulated at the SQLite edge (`PRAGMA query_only`, SQLite's real "attempt to write a readonly
database"), because Linux refuses to remount a filesystem read-only while the agent has its
database open for writing.

Either way: rows are held in memory (not in the counters, the ledger or the event stream until
written), `/api/v1/status` says so in its `storage` object, the proxy keeps serving until the spool
is full and then refuses new metered work with `503 storage_full`, and once the disk takes writes
again every held row is written, in order, and the counters grow by exactly those rows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.storage import spool
from joulegate_agent.storage.store import WAL_SIZE_LIMIT_BYTES
from tests.agent.fakes.llm_answers import SHAPES
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, running_agent
from tests.agent.tmpfs import tmpfs
from tests.reliability.harness import check_database_copy, counters_of

CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")
FILESYSTEM_BYTES = 4 << 20
LEFT_FREE_BYTES = 96 << 10
RECOVERY_TIMEOUT_S = 40.0  # the writer's backoff reaches RETRY_MAX_S (30 s) at the longest


def fill(filesystem: Path, leave: int = LEFT_FREE_BYTES) -> Path:
    """Write zeros until only `leave` bytes are free."""
    filler = filesystem / "filler"
    stats = os.statvfs(filesystem)
    room = stats.f_bavail * stats.f_frsize - leave
    chunk = b"\0" * 65536
    with filler.open("ab") as out:
        while room > 0:
            try:
                out.write(chunk[: min(len(chunk), room)])
                out.flush()
            except OSError:
                break
            room -= len(chunk)
    return filler


def ledger_ids(database: Path) -> list[int]:
    """The row ids a database holds, read while no agent has it open."""
    connection = sqlite3.connect(database)
    try:
        return [row[0] for row in connection.execute("SELECT id FROM inferences ORDER BY id")]
    finally:
        connection.close()


def read_only(agent: Agent) -> None:
    with agent.store.lock:
        agent.store.connection.execute("PRAGMA query_only=ON")


def writable(agent: Agent) -> None:
    with agent.store.lock:
        agent.store.connection.execute("PRAGMA query_only=OFF")


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
    assert response.status == 200, await response.text()
    assert await response.read() == CHAT.body


async def until_written(client: TestClient[Any, Any], agent: Agent) -> dict[str, Any]:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        storage = (await status(client, agent))["storage"]
        if storage["healthy"] and storage["pending_rows"] == 0:
            return storage
        await asyncio.sleep(0.2)
    raise AssertionError(f"held rows not written within {RECOVERY_TIMEOUT_S} s: {storage}")


async def break_and_mend(
    client: TestClient[Any, Any],
    agent: Agent,
    *,
    break_it: Callable[[], None],
    mend_it: Callable[[], None],
    sqlite_says: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for _ in range(3):
        await infer(client, agent)
    await agent.inference.drain()
    committed = await api_rows(client, agent)
    before = counters_of(await status(client, agent))
    assert len(committed) == 3

    break_it()
    held = 0
    for _ in range(60):  # a nearly full disk takes a few more rows; read-only fails at once
        await infer(client, agent)  # the proxy keeps serving: metering comes after
        await agent.inference.drain()
        storage = (await status(client, agent))["storage"]
        held = storage["pending_rows"]
        if held >= 5:
            break
    assert held >= 5
    during = await status(client, agent)
    assert during["storage"]["healthy"] is False
    assert sqlite_says in during["storage"]["error"]
    assert during["storage"]["spool_capacity"] == spool.SPOOL_CAPACITY
    written_meanwhile = len(await api_rows(client, agent)) - len(committed)
    assert counters_of(during)["count"] == before["count"] + written_meanwhile  # held: not counted
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, caplog.text  # said once, not per row
    assert sqlite_says in errors[0].getMessage()
    assert not errors[0].exc_info
    assert "its row is lost" not in caplog.text

    # An explicit window ends with its row held (202, no id yet); everything else answers.
    opened = await client.post("/api/v1/windows", json={}, headers=auth(agent))
    assert opened.status == 201
    window_id = (await opened.json())["window_id"]
    ended = await client.post(f"/api/v1/windows/{window_id}/end", headers=auth(agent))
    assert ended.status == 202
    assert (await ended.json())["id"] is None
    assert (await client.get("/api/v1/health")).status == 200
    gate = await client.put("/api/v1/gate", json={"open": True, "lease_s": 60}, headers=auth(agent))
    assert gate.status == 200

    mend_it()
    storage = await until_written(client, agent)
    assert storage["error"] is None
    after = await api_rows(client, agent)
    for row_id, row in committed.items():
        assert after[row_id] == row
    ids = sorted(after)
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # held rows got the next ids, in order
    assert any(row["route"] == "window" for row in after.values())
    totals = counters_of(await status(client, agent))
    assert totals["count"] == len([r for r in after.values() if r["outcome"] != "refused"])
    for name, value in before.items():
        assert totals[name] >= value
    assert "writable again" in caplog.text


async def test_a_full_disk_holds_rows_in_memory_until_it_has_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with tmpfs(tmp_path / "small", f"size={FILESYSTEM_BYTES},mode=0700") as filesystem:
        config = proxy_config(tmp_path, None, data_dir=filesystem / "data")
        async with (
            upstream_server(FakeUpstream()) as url,
            running_agent(proxy_config(tmp_path, url, data_dir=config.data_dir)) as (agent, api),
        ):
            filler = filesystem / "filler"
            await break_and_mend(
                api,
                agent,
                break_it=lambda: fill(filesystem).touch(),
                mend_it=filler.unlink,
                sqlite_says="database or disk is full",
                caplog=caplog,
            )
            wal = agent.store.path.with_name(agent.store.path.name + "-wal")
            assert wal.stat().st_size <= WAL_SIZE_LIMIT_BYTES
            database = agent.store.path
        check = check_database_copy(database, tmp_path / "check")
    assert check.integrity == "ok"
    assert check.inferences_counter == check.inferences_counted
    assert check.output_tokens_counter == check.output_tokens_counted


async def test_a_read_only_database_holds_rows_in_memory_until_it_is_writable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, api),
    ):
        await break_and_mend(
            api,
            agent,
            break_it=lambda: read_only(agent),
            mend_it=lambda: writable(agent),
            sqlite_says="attempt to write a readonly database",
            caplog=caplog,
        )


async def test_a_full_spool_refuses_new_metered_work_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "SPOOL_CAPACITY", 4)
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, api),
    ):
        read_only(agent)
        for _ in range(4):
            await infer(api, agent)
            await agent.inference.drain()
        assert (await status(api, agent))["storage"]["pending_rows"] == 4
        refused = await api.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        assert refused.status == 503
        body = await refused.json()
        assert body["error"] == "storage_full"
        assert "attempt to write a readonly database" in body["message"]
        opened = await api.post("/api/v1/windows", json={}, headers=auth(agent))
        assert opened.status == 503
        assert (await opened.json())["error"] == "storage_full"
        assert (await api.get("/api/v1/health")).status == 200
        assert (await api.get("/api/v1/inferences", headers=auth(agent))).status == 200

        writable(agent)
        await until_written(api, agent)
        await infer(api, agent)
        await agent.inference.drain()
        assert len(await api_rows(api, agent)) == 5


async def test_an_agent_restarted_on_a_full_disk_serves_its_ledger_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Under ~4 MB free the WAL used to take all the room, never be checkpointed, and leave the
    ledger wedged after a restart."""
    caplog.set_level(logging.INFO)
    with tmpfs(tmp_path / "small", f"size={FILESYSTEM_BYTES},mode=0700") as filesystem:
        data_dir = filesystem / "data"
        async with upstream_server(FakeUpstream()) as url:
            config = proxy_config(tmp_path, url, data_dir=data_dir)
            async with running_agent(config) as (agent, api):
                for _ in range(3):
                    await infer(api, agent)
                await agent.inference.drain()
                filler = fill(filesystem)
                for _ in range(60):
                    await infer(api, agent)
                    await agent.inference.drain()
                    if (await status(api, agent))["storage"]["pending_rows"]:
                        break
                fill(filesystem, leave=0)  # and what the WAL's checkpoint gave back
                await infer(api, agent)
                await agent.inference.drain()
            on_disk = ledger_ids(data_dir / "joulegate.db")
            assert len(on_disk) >= 3

            async with running_agent(config) as (agent, api):
                assert sorted(await api_rows(api, agent)) == on_disk
                assert (await status(api, agent))["storage"]["healthy"] is True
                filler.unlink()
                await infer(api, agent)
                await agent.inference.drain()
                assert len(await api_rows(api, agent)) == len(on_disk) + 1
                assert (await status(api, agent))["storage"]["healthy"] is True
