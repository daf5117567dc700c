"""The ledger writer's board energy: never lost silently or counted twice, no hung flush."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from joulegate_agent.storage.ledger import Ledger
from joulegate_agent.storage.spool import LedgerWriter, UnsavedEnergy
from joulegate_agent.storage.store import Store
from tests.agent.helpers import proxy_config, rows, running_agent

COUNTER = "board_energy_j"
FLUSH_TIMEOUT_S = 5.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "joulegate.db")
    yield opened
    opened.close()


def refuse_energy(store: Store) -> None:
    """A write of the energy counter fails as a constraint does (not a storage fault)."""
    with store.lock:
        store.connection.execute(
            f"CREATE TRIGGER refuse_energy BEFORE INSERT ON counters WHEN NEW.name = '{COUNTER}' "
            "BEGIN SELECT RAISE(ABORT, 'energy refused'); END"
        )


def accept_energy(store: Store) -> None:
    with store.lock:
        store.connection.execute("DROP TRIGGER refuse_energy")


def read_only(store: Store) -> None:
    with store.lock:
        store.connection.execute("PRAGMA query_only=ON")


def writer_for(store: Store, metered_j: list[float]) -> LedgerWriter:
    return LedgerWriter(
        Ledger(store),
        publish=lambda _row: None,
        energy=UnsavedEnergy(COUNTER, lambda: metered_j[0]),
    )


async def test_a_refused_energy_only_write_fails_the_flush_and_keeps_the_energy_for_later(
    store: Store,
) -> None:
    metered_j = [3600.0]
    writer = writer_for(store, metered_j)
    refuse_energy(store)

    assert await asyncio.wait_for(writer.flush(), FLUSH_TIMEOUT_S) is False

    accept_energy(store)
    metered_j[0] = 7200.0
    assert await asyncio.wait_for(writer.flush(), FLUSH_TIMEOUT_S) is True
    assert await asyncio.wait_for(writer.flush(), FLUSH_TIMEOUT_S) is True
    assert store.counter(COUNTER) == pytest.approx(7200.0)
    await writer.close()


async def test_board_energy_lost_at_shutdown_is_logged_with_its_watt_hours(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(store, [5400.0])
    read_only(store)

    with caplog.at_level(logging.ERROR, logger="joulegate_agent.storage.spool"):
        await asyncio.wait_for(writer.close(), FLUSH_TIMEOUT_S)

    assert any(
        "1.500 Wh" in record.getMessage() and "board energy" in record.getMessage()
        for record in caplog.records
    ), [record.getMessage() for record in caplog.records]


async def test_rows_finishing_together_are_committed_together(tmp_path: Path) -> None:
    """One transaction per row fell behind under load (the backlog grew without bound): rows
    that finish together are now written in groups, in order, each published once."""
    async with running_agent(proxy_config(tmp_path, None)) as (agent, _client):
        service = agent.inference
        calls: list[int] = []
        record_many = service.ledger.record_many

        def counting(rows_: list[Any], *more: Any) -> list[Any]:
            calls.append(len(rows_))
            return record_many(rows_, *more)

        service.ledger.record_many = counting  # type: ignore[method-assign,assignment]
        subscription = service.events.subscribe()
        windows = [service.open_explicit(label=f"w{n}") for n in range(100)]
        await asyncio.sleep(0.15)
        ended = await asyncio.gather(*(service.end_explicit(w.window_id) for w in windows))
        published = []
        while not subscription.queue.empty():
            item = subscription.queue.get_nowait()
            if item is not None and item[0] == "inference":
                published.append(item[1]["id"])
        subscription.close()
    ids = [row.id for row in ended if row.id is not None]
    assert sum(calls) == 100
    assert len(calls) < 20
    assert published == sorted(published) == sorted(ids)


async def test_a_bad_row_in_a_group_loses_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, _client):
        service = agent.inference
        record_many = service.ledger.record_many

        def picky(rows_: list[Any], *more: Any) -> list[Any]:
            if any(row.label == "bad" for row in rows_):
                raise sqlite3.IntegrityError("simulated failure of one row")
            return record_many(rows_, *more)

        service.ledger.record_many = picky  # type: ignore[method-assign,assignment]
        windows = [service.open_explicit(label="bad" if n == 3 else "ok") for n in range(10)]
        await asyncio.sleep(0.15)
        results = await asyncio.gather(
            *(service.end_explicit(w.window_id) for w in windows), return_exceptions=True
        )
        recorded = await rows(agent)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert [r["label"] for r in recorded] == ["ok"] * 9
    assert caplog.text.count("its row is lost") == 1
