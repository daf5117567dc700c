"""Ledger housekeeping: rows past retention pruned and the WAL checkpointed, at start and then
hourly, with the owner's own chores (explicit windows never ended) on the same beat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable

from joulegate_agent.storage.ledger import Ledger
from joulegate_agent.storage.store import Store

_LOGGER = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 3600.0


class Housekeeping:
    def __init__(self, ledger: Ledger, store: Store, chores: Callable[[], None]) -> None:
        self.ledger = ledger
        self.store = store
        self._chores = chores
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                pruned = await loop.run_in_executor(None, self.ledger.prune)
                await loop.run_in_executor(None, self.store.checkpoint)
                if pruned:
                    _LOGGER.info(
                        "Pruned %d ledger rows older than %d days",
                        pruned,
                        self.ledger.retention_days,
                    )
            except (sqlite3.Error, OSError) as err:  # the disk: status shows the writer's state
                _LOGGER.warning("Ledger retention skipped (%s); it runs again in an hour", err)
            except Exception:
                _LOGGER.exception("Ledger housekeeping failed")
            self._chores()
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
