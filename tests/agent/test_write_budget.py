"""The agent's writes do not depend on how often anyone reads, and what it shows stays shown.

Commits are counted with SQLite's own statement trace on the agent's connection: every write
transaction ends in a COMMIT statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from joulegate_agent.agent import BOARD_ENERGY, FLUSH_INTERVAL_S, Agent
from tests.agent.fakes.llm_answers import SHAPES
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, running_agent

CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")


@contextmanager
def commits_of(agent: Agent) -> Iterator[list[str]]:
    seen: list[str] = []

    def trace(statement: str) -> None:
        if statement.strip().upper().startswith("COMMIT"):
            seen.append(statement)

    agent.store.connection.set_trace_callback(trace)
    try:
        yield seen
    finally:
        agent.store.connection.set_trace_callback(None)


def board_energy_on_disk(agent: Agent) -> float:
    """What a restart would show: the counter read through a connection of its own."""
    connection = sqlite3.connect(agent.store.path)
    try:
        row = connection.execute(
            "SELECT value FROM counters WHERE name = ?", (BOARD_ENERGY,)
        ).fetchone()
    finally:
        connection.close()
    return float(row[0]) / 3600.0 if row else 0.0


async def board_wh(client: TestClient[Any, Any], agent: Agent) -> float:
    response = await client.get("/api/v1/status", headers=auth(agent))
    assert response.status == 200
    value: float = (await response.json())["energy"]["board_wh"]
    return value


async def test_status_reads_write_nothing(tmp_path: Path) -> None:
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        await asyncio.sleep(0.3)  # the sampler has metered some energy, not yet on disk
        with commits_of(agent) as commits:
            for _ in range(20):
                await board_wh(client, agent)
        assert commits == []


async def test_status_never_shows_more_than_a_restart_would(tmp_path: Path) -> None:
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        for _ in range(5):
            await asyncio.sleep(0.1)
            shown = await board_wh(client, agent)
            assert shown <= round(board_energy_on_disk(agent), 6)


async def test_a_ledger_row_carries_the_board_energy_to_disk_in_its_commit(
    tmp_path: Path,
) -> None:
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        await asyncio.sleep(0.3)
        assert board_energy_on_disk(agent) == 0.0
        with commits_of(agent) as commits:
            response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
            assert response.status == 200
            await response.read()
            await agent.inference.drain()
        assert len(commits) == 1
        assert board_energy_on_disk(agent) > 0.0
        assert await board_wh(client, agent) == round(board_energy_on_disk(agent), 6)


async def test_stopping_writes_all_the_board_energy_metered(tmp_path: Path) -> None:
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, _client),
    ):
        await asyncio.sleep(0.3)
    assert board_energy_on_disk(agent) * 3600.0 == agent.meter.total_j


def test_an_idle_agent_writes_every_few_minutes_not_every_few_seconds() -> None:
    assert 120.0 <= FLUSH_INTERVAL_S <= 600.0
