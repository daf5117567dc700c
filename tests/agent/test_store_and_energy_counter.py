"""The lifetime energy counter: persisted, never decreasing, across restarts of the agent."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from joulegate_agent.agent import BOARD_ENERGY, Agent
from joulegate_agent.config import AgentConfig
from joulegate_agent.storage.store import Store
from tests.agent.helpers import auth, proxy_config, running_agent


def test_counters_accumulate_and_persist(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.add_counter("x", 1.5)
    store.add_counter("x", 2.0)
    store.close()
    reopened = Store(tmp_path / "db")
    assert reopened.counter("x") == pytest.approx(3.5)
    reopened.close()


def test_all_counters_read_together_match_each_read_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.add_counter("x", 1.5)
    store.add_counter("y", 2.0)
    assert store.counters() == {"x": store.counter("x"), "y": store.counter("y")}
    store.close()


def test_a_counter_refuses_to_go_down(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.add_counter("x", 1.0)
    with pytest.raises(ValueError, match="can only grow"):
        store.add_counter("x", -0.5)
    assert store.counter("x") == 1.0
    store.close()


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    Store(tmp_path / "db").close()
    connection = sqlite3.connect(tmp_path / "db")
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()
    assert mode == "wal"


async def test_board_energy_continues_across_a_restart(agent_config: AgentConfig) -> None:
    first = Agent(agent_config)
    await first.start()
    await asyncio.sleep(0.5)
    await first.stop()

    second = Agent(agent_config)
    persisted = second.store.counter(BOARD_ENERGY)
    await second.start()
    try:
        await asyncio.sleep(0.3)
        await second.flush_energy()
        assert persisted > 1.0
        assert second.board_energy_wh > persisted / 3600.0
    finally:
        await second.stop()


async def test_board_energy_reported_between_flushes_never_decreases(
    agent_config: AgentConfig,
) -> None:
    agent = Agent(agent_config)
    await agent.start()
    try:
        readings = []
        for _ in range(5):
            await asyncio.sleep(0.1)
            readings.append(agent.board_energy_wh)
            await agent.flush_energy()
            readings.append(agent.board_energy_wh)
        assert readings == sorted(readings)
        assert readings[-1] > readings[0]
    finally:
        await agent.stop()


async def test_board_energy_shown_by_status_is_already_on_disk(tmp_path: Path) -> None:
    """A SIGKILL right after a status read cannot take back the energy it showed: status shows
    what is on disk (and reading it writes nothing, so before the first write that is 0)."""
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        await asyncio.sleep(0.3)
        for n in range(3):
            shown = (await (await client.get("/api/v1/status", headers=auth(agent))).json())[
                "energy"
            ]["board_wh"]
            other = sqlite3.connect(agent.store.path)  # what a restarted agent would read
            found = other.execute(
                "SELECT value FROM counters WHERE name = ?", (BOARD_ENERGY,)
            ).fetchone()
            other.close()
            on_disk = found[0] if found else 0.0
            assert (shown > 0) == (n > 0)
            assert shown == round(on_disk / 3600.0, 6)
            await agent.flush_energy()
            await asyncio.sleep(0.1)


async def test_concurrent_flushes_add_the_energy_once(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, _client):
        await asyncio.sleep(0.3)
        await asyncio.gather(*(agent.flush_energy() for _ in range(8)))
        assert agent.store.counter(BOARD_ENERGY) <= agent.meter.total_j + 1e-9


def test_a_full_disk_raises_its_own_error_and_the_store_recovers(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    with store.lock:
        pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
        store.connection.execute(f"PRAGMA max_page_count={pages}")
    failure = None
    for n in range(10_000):
        try:
            store.add_counter(f"counter-{n}", 1.0)
        except sqlite3.OperationalError as err:
            failure = err
            break
    assert str(failure) == "database or disk is full"  # not "cannot rollback - no transaction"
    assert not store.connection.in_transaction
    with store.lock:
        store.connection.execute("PRAGMA max_page_count=1073741823")
    assert store.add_counter("after", 2.0) == 2.0
    store.close()
