"""The agent's durable state: one SQLite database in the data directory.

WAL mode with synchronous=FULL: a row is on disk before the API shows it, and a crash (even
SIGKILL mid-write) leaves the last committed state. Counters only ever grow: `add_counter`
refuses negative deltas, so nothing can make Home Assistant's total_increasing sensors drop.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

MIGRATIONS: list[str] = [
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value REAL NOT NULL)",
    # ledger.py: one row per finished inference window; id is the API cursor
    "CREATE TABLE inferences ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, window_id TEXT NOT NULL UNIQUE,"
    " started_at TEXT NOT NULL, ended_at TEXT NOT NULL,"
    " started_ts REAL NOT NULL, ended_ts REAL NOT NULL, duration_s REAL NOT NULL, ttft_s REAL,"
    " prompt_tokens INTEGER, output_tokens INTEGER, tokens_estimated INTEGER NOT NULL,"
    " energy_j REAL NOT NULL, marginal_j REAL, avg_w REAL, peak_w REAL, idle_w REAL,"
    " model TEXT, route TEXT, label TEXT, http_status INTEGER, outcome TEXT NOT NULL,"
    " gate_open INTEGER NOT NULL, boundary TEXT NOT NULL)",
    "CREATE INDEX inferences_started_ts ON inferences (started_ts)",
    "CREATE INDEX inferences_ended_ts ON inferences (ended_ts)",
]


WAL_AUTOCHECKPOINT_PAGES = 256
WAL_SIZE_LIMIT_BYTES = 1 << 20


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = threading.Lock()
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute("PRAGMA busy_timeout=5000")
        # A small WAL: checkpointed every 256 pages (1 MiB) and truncated back to 1 MiB, so on a
        # nearly full filesystem it cannot take the last megabytes and wedge the ledger.
        self.connection.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        self.connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        self._migrate()

    def _migrate(self) -> None:
        with self.lock:
            version: int = self.connection.execute("PRAGMA user_version").fetchone()[0]
            for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
                with self.transaction_locked() as conn:
                    conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={number}")

    @contextlib.contextmanager
    def transaction_locked(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, BEGIN IMMEDIATE to COMMIT, inside `lock` (the caller holds it).

        On any failure, COMMIT included, it rolls back what SQLite has not already rolled back and
        raises the original error. After "database or disk is full" SQLite has rolled back by
        itself: a plain ROLLBACK would fail and hide that error behind "cannot rollback - no
        transaction is active", and a transaction left open would make every later BEGIN fail.
        """
        conn = self.connection
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def counter(self, name: str) -> float:
        with self.lock:
            return self._counter(name)

    def counters(self) -> dict[str, float]:
        """Every lifetime counter, in one statement (the status answer needs them all)."""
        with self.lock:
            rows = self.connection.execute("SELECT name, value FROM counters").fetchall()
        return {str(name): float(value) for name, value in rows}

    def add_counter(self, name: str, delta: float) -> float:
        """Add to a lifetime counter in its own transaction and return the new value."""
        with self.lock, self.transaction_locked():
            self.add_counter_locked(name, delta)
            return self._counter(name)

    def add_counter_locked(self, name: str, delta: float) -> None:
        """Add inside a transaction the caller holds (with `lock` taken)."""
        if delta < 0:
            raise ValueError(f"counter {name} can only grow, got delta {delta}")
        self.connection.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, delta),
        )

    def _counter(self, name: str) -> float:
        row = self.connection.execute(
            "SELECT value FROM counters WHERE name = ?", (name,)
        ).fetchone()
        return float(row[0]) if row else 0.0

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it to nothing, giving its space back."""
        with self.lock:
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def close(self) -> None:
        with self.lock:
            self.connection.close()
