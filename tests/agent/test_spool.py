"""The ledger writer's board energy: never lost silently or counted twice, no hung flush."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from joulegate_agent.storage.ledger import Ledger
from joulegate_agent.storage.spool import LedgerWriter, UnsavedEnergy
from joulegate_agent.storage.store import Store

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
