"""Ledger rows on their way to disk, held in memory while the disk cannot take them.

One task, the `LedgerWriter`, makes every ledger write of the agent: the rows (grouped, one
transaction for all that finished together) and the board energy metered since the last write,
which rides along in the same transaction. Because it is the only writer, no two writes can add
the same energy twice, and the number of commits follows the rows, a timer and shutdown, never how
often anyone reads.

When a write fails because of the disk (full, read-only, I/O error, locked, corrupt), its rows stay
in a bounded spool in memory and the write is retried with backoff (RETRY_FIRST_S doubling up to
RETRY_MAX_S; a flush retries at once). Spooled rows are not in the lifetime counters, the ledger or
the event stream until they are written, so nothing shown can go back if the process dies with
them. After each failure the WAL is checkpointed and truncated, so its pages go back to a nearly
full filesystem instead of wedging it. A failure that is the row's own (a constraint, a value
SQLite cannot bind) loses only that row, with one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joulegate_agent.aio import wait_set
from joulegate_agent.errors import JoulegateError
from joulegate_agent.storage.ledger import InferenceRow, Ledger

_LOGGER = logging.getLogger(__name__)

SPOOL_CAPACITY = 10_000
"""Rows held while the disk fails: about 10 MB of memory, hours of a busy board's rows."""
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 30.0
BATCH_MAX = 500


class SpoolFullError(JoulegateError):
    """The spool already holds its capacity of unwritten rows."""


def is_storage_fault(err: BaseException) -> bool:
    """True when a failed write is the disk's fault (retrying can succeed), False when it is the
    row's own (retrying the same row fails the same way)."""
    if isinstance(err, OSError):
        return True
    row_faults = (
        sqlite3.IntegrityError,
        sqlite3.ProgrammingError,
        sqlite3.InterfaceError,
        sqlite3.DataError,
        sqlite3.NotSupportedError,
    )
    return isinstance(err, sqlite3.DatabaseError) and not isinstance(err, row_faults)


@dataclass(frozen=True, slots=True)
class StorageHealth:
    """The `storage` object of /api/v1/status."""

    healthy: bool
    pending_rows: int
    spool_capacity: int
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "pending_rows": self.pending_rows,
            "spool_capacity": self.spool_capacity,
            "error": self.error,
        }


class UnsavedEnergy:
    """Energy metered but not yet on disk under a lifetime counter (only the writer saves it)."""

    def __init__(self, counter: str, total_j: Callable[[], float]) -> None:
        self.counter = counter
        self._total_j = total_j
        self._saved_j = 0.0

    def take(self) -> tuple[float, float]:
        """(the total metered now, what of it is not on disk yet)."""
        total = self._total_j()
        return total, max(0.0, total - self._saved_j)

    def saved(self, total: float) -> None:
        self._saved_j = max(self._saved_j, total)


@dataclass(slots=True)
class _Entry:
    row: InferenceRow
    future: asyncio.Future[InferenceRow]


class LedgerWriter:
    """Writes rows and energy to the ledger, in order, spooling them while the disk fails."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        publish: Callable[[InferenceRow], None],
        energy: UnsavedEnergy | None = None,
        checkpoint: Callable[[], None] | None = None,
        capacity: int | None = None,
    ) -> None:
        self._ledger = ledger
        self._publish = publish
        self._energy = energy
        self._checkpoint = checkpoint
        self.capacity = SPOOL_CAPACITY if capacity is None else capacity
        self._entries: list[_Entry] = []
        self._flush_waiters: list[asyncio.Future[bool]] = []
        self._error: str | None = None
        self._backoff_s = RETRY_FIRST_S
        self._one_by_one = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def full(self) -> bool:
        return len(self._entries) >= self.capacity

    def health(self) -> StorageHealth:
        return StorageHealth(
            healthy=self._error is None,
            pending_rows=len(self._entries),
            spool_capacity=self.capacity,
            error=self._error,
        )

    def add(self, row: InferenceRow) -> asyncio.Future[InferenceRow]:
        """Queue `row`. The future gives the committed row (with its id), or the row itself
        (id None) as soon as it is held in the spool because the disk is failing."""
        if self.full:
            raise SpoolFullError(
                f"{len(self._entries)} rows are waiting for the disk already ({self._error})"
            )
        future: asyncio.Future[InferenceRow] = asyncio.get_running_loop().create_future()
        self._entries.append(_Entry(row, future))
        if self._error is not None:
            future.set_result(row)
        self._start()
        return future

    async def flush(self) -> bool:
        """Write everything pending now, rows and energy (retrying at once if the disk was
        failing); True once it is all on disk, False if the disk still fails."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(future)
        self._wake.set()
        self._start()
        return await asyncio.shield(future)

    async def close(self) -> None:
        """A last flush; rows and board energy the disk still refuses are lost with the process,
        and said so."""
        written = await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not written and self._entries:
            _LOGGER.error(
                "%d ledger rows could not be written (%s) and are lost as the agent stops",
                len(self._entries),
                self._error,
            )
        if not written and self._energy is not None:
            unsaved_j = self._energy.take()[1]
            if unsaved_j > 0:
                _LOGGER.error(
                    "%.3f Wh of board energy metered since the last write could not be saved "
                    "(%s) and is lost as the agent stops",
                    unsaved_j / 3600.0,
                    self._error or "the last write failed",
                )
        for entry in self._entries:
            if not entry.future.done():
                entry.future.cancel()
        self._entries.clear()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._entries or self._flush_waiters:
            await self._write_once()

    async def _write_once(self) -> None:
        loop = asyncio.get_running_loop()
        batch = self._entries[: 1 if self._one_by_one else BATCH_MAX]
        waiters, self._flush_waiters = self._flush_waiters, []
        total_j, unsaved_j = self._energy.take() if self._energy else (0.0, 0.0)
        counters = {self._energy.counter: unsaved_j} if self._energy and unsaved_j > 0 else {}
        if self._one_by_one:
            self._one_by_one -= 1
        try:
            committed = await loop.run_in_executor(
                None, self._ledger.record_many, [entry.row for entry in batch], counters
            )
        except Exception as err:
            if is_storage_fault(err):
                await self._disk_failed(err, waiters)
                return
            if not batch:
                self._energy_refused(err, waiters)
                return
            self._flush_waiters[:0] = waiters
            if len(batch) > 1:
                self._one_by_one = len(batch)  # find the row at fault, keep the others
            else:
                self._drop(batch[0], err)
            return
        del self._entries[: len(batch)]
        if self._energy is not None:
            self._energy.saved(total_j)
        if self._error is not None:
            _LOGGER.warning(
                "The ledger is writable again; writing the %d rows held meanwhile",
                len(batch) + len(self._entries),
            )
            self._error = None
            self._backoff_s = RETRY_FIRST_S
        for entry, row in zip(batch, committed, strict=True):
            self._publish(row)
            if not entry.future.done():
                entry.future.set_result(row)
        if self._entries:
            self._flush_waiters[:0] = waiters
        else:
            _resolve(waiters, True)

    async def _disk_failed(self, err: Exception, waiters: list[asyncio.Future[bool]]) -> None:
        if self._error is None:
            _LOGGER.error(
                "Cannot write the ledger (%s): rows are kept in memory (up to %d) and written "
                "when the disk takes them again; /api/v1/status shows the storage state",
                err,
                self.capacity,
            )
        self._error = str(err) or type(err).__name__
        for entry in self._entries:
            if not entry.future.done():
                entry.future.set_result(entry.row)
        _resolve(waiters, False)
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
        self._wake.clear()
        await wait_set(self._wake, self._backoff_s)
        self._backoff_s = min(RETRY_MAX_S, self._backoff_s * 2)

    def _energy_refused(self, err: Exception, waiters: list[asyncio.Future[bool]]) -> None:
        """A write of the energy alone failed, not for the disk: the energy stays unsaved (take()
        gives it again to the next write, nothing is counted twice) and the flush says False."""
        _LOGGER.error(
            "Could not add the board energy to the ledger (%s): it is tried again with the next "
            "write",
            err,
        )
        _resolve(waiters, False)

    def _drop(self, entry: _Entry, err: Exception) -> None:
        self._entries = [kept for kept in self._entries if kept is not entry]
        if entry.future.done():  # it was held in the spool: nobody waits for it any more
            _LOGGER.error(
                "Could not record an inference window in the ledger (%s): its row is lost", err
            )
        else:
            entry.future.set_exception(err)


def _resolve(waiters: list[asyncio.Future[bool]], value: bool) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(value)
