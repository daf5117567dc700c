"""Batches and their requests in SQLite: what to run next, each result exactly once.

A batch and all its request lines are inserted in one transaction. A request's result is set
once (`UPDATE ... WHERE result IS NULL`), so however often a request runs (at least once: one
interrupted before its result was committed runs again), its `custom_id` has one result line.
A batch is finished in one transaction with the rows of its output and error files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from joulegate_agent.batch.file_store import FileRecord, insert_locked
from joulegate_agent.batch.validation import BatchRequest
from joulegate_agent.storage.store import Store

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
TERMINAL = ("failed", "completed", "expired", "cancelled")
_STAMPS = {
    "in_progress": "in_progress_at",
    "finalizing": "finalizing_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}
_FIELDS = (
    "id",
    "input_file_id",
    "endpoint",
    "completion_window",
    "metadata",
    "status",
    "model",
    "deadline",
    "created_at",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "output_file_id",
    "error_file_id",
    "errors",
    "total",
)
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM batches"  # noqa: S608 - constant


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class Counts:
    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        return self.completed + self.failed

    @property
    def left(self) -> int:
        return self.total - self.done


@dataclass(frozen=True, slots=True)
class Use:
    """Ledger rows and what they add up to."""

    rows: int
    energy_j: float
    run_s: float
    longest_s: float


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    status: str
    model: str | None
    deadline: float
    created_at: int
    stamps: dict[str, int | None] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    counts: Counts = field(default_factory=Counts)

    def to_json(self) -> dict[str, Any]:
        """OpenAI's Batch object (the `joulegate` block is added by the service)."""
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            **{stamp: self.stamps.get(stamp) for stamp in _STAMPS.values()},
            "expires_at": int(self.deadline),
            "request_counts": {
                "total": self.counts.total,
                "completed": self.counts.completed,
                "failed": self.counts.failed,
            },
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class PendingRequest:
    batch_id: str
    line: int
    custom_id: str
    body: str
    endpoint: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.batch_id, self.line)


class BatchStore:
    """Every method is synchronous and takes the Store's lock; async callers use an executor."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- creating ------------------------------------------------------------------------------

    def create(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        deadline: float,
        now: int,
        model: str | None,
        requests: list[BatchRequest],
        errors: list[dict[str, Any]],
    ) -> BatchRecord:
        """A new batch, `in_progress` with its requests or `failed` with the problems found;
        an input file that already has an active batch gets that one back (a client's retry)."""
        batch_id = new_batch_id()
        store = self._store
        with store.lock, store.transaction_locked() as conn:
            existing = conn.execute(
                f"{_SELECT} WHERE input_file_id = ? AND status IN ({_marks(ACTIVE)}) "
                "ORDER BY seq DESC LIMIT 1",
                (input_file_id, *ACTIVE),
            ).fetchone()
            if existing is not None:
                return self._with_counts(conn, existing)
            status, stamp = ("failed", "failed_at") if errors else ("in_progress", "in_progress_at")
            conn.execute(
                "INSERT INTO batches (id, input_file_id, endpoint, completion_window, metadata,"  # noqa: S608 - constant names
                f" status, model, deadline, created_at, {stamp}, errors, total)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch_id,
                    input_file_id,
                    endpoint,
                    completion_window,
                    None if metadata is None else json.dumps(metadata),
                    status,
                    model,
                    deadline,
                    now,
                    now,
                    json.dumps(errors) if errors else None,
                    0 if errors else len(requests),
                ),
            )
            if not errors:
                conn.executemany(
                    "INSERT INTO batch_requests (batch_id, line, custom_id, body)"
                    " VALUES (?, ?, ?, ?)",
                    [(batch_id, r.line, r.custom_id, r.body) for r in requests],
                )
            row = conn.execute(f"{_SELECT} WHERE id = ?", (batch_id,)).fetchone()
            return self._with_counts(conn, row)

    # -- reading -------------------------------------------------------------------------------

    def get(self, batch_id: str) -> BatchRecord | None:
        with self._store.lock:
            conn = self._store.connection
            row = conn.execute(f"{_SELECT} WHERE id = ?", (batch_id,)).fetchone()
            return None if row is None else self._with_counts(conn, row)

    def page(self, after: str | None, limit: int) -> tuple[list[BatchRecord], bool]:
        """Newest first; `after` is the id of the last batch of the previous page."""
        with self._store.lock:
            conn = self._store.connection
            if after is None:
                rows = conn.execute(f"{_SELECT} ORDER BY seq DESC LIMIT ?", (limit + 1,)).fetchall()
            else:
                rows = conn.execute(
                    f"{_SELECT} WHERE seq < COALESCE((SELECT seq FROM batches WHERE id = ?), -1)"  # noqa: S608 - constant names
                    " ORDER BY seq DESC LIMIT ?",
                    (after, limit + 1),
                ).fetchall()
            return [self._with_counts(conn, r) for r in rows[:limit]], len(rows) > limit

    def active(self) -> list[BatchRecord]:
        """Batches not yet finished, the earliest deadline first."""
        with self._store.lock:
            conn = self._store.connection
            rows = conn.execute(
                f"{_SELECT} WHERE status IN ({_marks(ACTIVE)}) ORDER BY deadline, seq", ACTIVE
            ).fetchall()
            return [self._with_counts(conn, r) for r in rows]

    def pending(self, skip: set[tuple[str, int]], limit: int) -> list[PendingRequest]:
        """Requests without a result of batches in progress, the earliest deadline first,
        leaving out those running now (`skip`)."""
        with self._store.lock:
            rows = self._store.connection.execute(
                "SELECT r.batch_id, r.line, r.custom_id, r.body, b.endpoint"
                " FROM batch_requests r JOIN batches b ON b.id = r.batch_id"
                " WHERE b.status = 'in_progress' AND r.result IS NULL"
                " ORDER BY b.deadline, b.seq, r.line LIMIT ?",
                (limit + len(skip),),
            ).fetchall()
        found = [PendingRequest(*row) for row in rows]
        return [r for r in found if r.key not in skip][:limit]

    def results(self, batch_id: str, failed: bool) -> Iterator[bytes]:
        """The result lines of one file, in input order, in chunks so the lock is not held long."""
        after = 0
        while True:
            with self._store.lock:
                rows = self._store.connection.execute(
                    "SELECT line, result FROM batch_requests WHERE batch_id = ? AND failed = ?"
                    " AND line > ? ORDER BY line LIMIT 500",
                    (batch_id, int(failed), after),
                ).fetchall()
            if not rows:
                return
            for line, result in rows:
                after = line
                yield (result + "\n").encode()

    # -- writing -------------------------------------------------------------------------------

    def record_result(self, batch_id: str, line: int, result: str, failed: bool) -> bool:
        """Set a request's result unless it has one; True when this call set it."""
        with self._store.lock, self._store.transaction_locked() as conn:
            changed = conn.execute(
                "UPDATE batch_requests SET result = ?, failed = ?"
                " WHERE batch_id = ? AND line = ? AND result IS NULL",
                (result, int(failed), batch_id, line),
            ).rowcount
        return bool(changed)

    def fail_unfinished(self, batch_id: str, make_line: Any) -> int:
        """Give every request without a result an error line (`make_line(custom_id)`)."""
        with self._store.lock, self._store.transaction_locked() as conn:
            rows = conn.execute(
                "SELECT line, custom_id FROM batch_requests WHERE batch_id = ? AND result IS NULL",
                (batch_id,),
            ).fetchall()
            conn.executemany(
                "UPDATE batch_requests SET result = ?, failed = 1 WHERE batch_id = ? AND line = ?",
                [(make_line(custom_id), batch_id, line) for line, custom_id in rows],
            )
        return len(rows)

    def set_status(
        self, batch_id: str, status: str, now: int, *, only_from: tuple[str, ...]
    ) -> bool:
        """Move a batch to `status` (stamping its time) if it is in one of `only_from`."""
        stamp = _STAMPS[status]
        with self._store.lock, self._store.transaction_locked() as conn:
            changed = conn.execute(
                f"UPDATE batches SET status = ?, {stamp} = COALESCE({stamp}, ?)"  # noqa: S608 - constant names
                f" WHERE id = ? AND status IN ({_marks(only_from)})",
                (status, now, batch_id, *only_from),
            ).rowcount
        return bool(changed)

    def finish(
        self,
        batch_id: str,
        status: str,
        now: int,
        output: FileRecord | None,
        error: FileRecord | None,
    ) -> None:
        """The batch's result files' rows and its final status, in one transaction."""
        stamp = _STAMPS[status]
        with self._store.lock, self._store.transaction_locked() as conn:
            for record in (output, error):
                if record is not None:
                    insert_locked(conn, record)
            conn.execute(
                f"UPDATE batches SET status = ?, {stamp} = ?, output_file_id = ?,"  # noqa: S608 - constant names
                " error_file_id = ? WHERE id = ?",
                (
                    status,
                    now,
                    None if output is None else output.id,
                    None if error is None else error.id,
                    batch_id,
                ),
            )

    def prune(self, before: float) -> int:
        """Forget finished batches created before `before` (their files expire on their own)."""
        with self._store.lock, self._store.transaction_locked() as conn:
            old = [
                str(r[0])
                for r in conn.execute(
                    f"SELECT id FROM batches WHERE status IN ({_marks(TERMINAL)})"  # noqa: S608 - constant names
                    " AND created_at < ?",
                    (*TERMINAL, before),
                ).fetchall()
            ]
            conn.executemany("DELETE FROM batch_requests WHERE batch_id = ?", [(i,) for i in old])
            conn.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in old])
        return len(old)

    # -- the ledger's view of a batch ------------------------------------------------------------

    def ledger_use(self, batch_id: str) -> Use:
        """What every attempt of this batch's requests used."""
        return self._use(
            "SELECT COUNT(*), COALESCE(SUM(energy_j), 0), COALESCE(SUM(duration_s), 0),"
            " COALESCE(MAX(duration_s), 0) FROM inferences"
            " WHERE batch_id = ? AND outcome != 'refused'",
            (batch_id,),
        )

    def model_use(self, model: str, rows: int = 50) -> Use:
        """What the model's most recent successful rows used."""
        return self._use(
            "SELECT COUNT(*), COALESCE(SUM(energy_j), 0), COALESCE(SUM(duration_s), 0),"
            " COALESCE(MAX(duration_s), 0) FROM (SELECT energy_j, duration_s FROM inferences"
            " WHERE model = ? AND outcome = 'ok' ORDER BY id DESC LIMIT ?)",
            (model, rows),
        )

    def _use(self, query: str, args: tuple[Any, ...]) -> Use:
        with self._store.lock:
            count, energy, duration, longest = self._store.connection.execute(
                query, args
            ).fetchone()
        return Use(int(count), float(energy), float(duration), float(longest))

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _with_counts(conn: Any, row: tuple[Any, ...]) -> BatchRecord:
        values = dict(zip(_FIELDS, row, strict=True))
        completed, failed = conn.execute(
            "SELECT COALESCE(SUM(failed = 0), 0), COALESCE(SUM(failed = 1), 0)"
            " FROM batch_requests WHERE batch_id = ?",
            (values["id"],),
        ).fetchone()
        return BatchRecord(
            id=values["id"],
            input_file_id=values["input_file_id"],
            endpoint=values["endpoint"],
            completion_window=values["completion_window"],
            metadata=None if values["metadata"] is None else json.loads(values["metadata"]),
            status=values["status"],
            model=values["model"],
            deadline=values["deadline"],
            created_at=values["created_at"],
            stamps={stamp: values[stamp] for stamp in _STAMPS.values()},
            output_file_id=values["output_file_id"],
            error_file_id=values["error_file_id"],
            errors=None if values["errors"] is None else json.loads(values["errors"]),
            counts=Counts(total=values["total"], completed=int(completed), failed=int(failed)),
        )


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join("?" for _ in values)
