"""The lifetime energy counter: persisted, never decreasing, across restarts of the agent."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from joulegate_agent.agent import BOARD_ENERGY, Agent
from joulegate_agent.config import AgentConfig
from joulegate_agent.storage.store import Store


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
