"""The agent's durable state: one SQLite database in the data directory.

WAL mode with synchronous=FULL: a row is on disk before the API shows it, and a crash (even
SIGKILL mid-write) leaves the last committed state. Counters only ever grow: `add_counter`
refuses negative deltas, so nothing can make Home Assistant's total_increasing sensors drop.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from joulegate_agent.errors import UnusableDataError

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
    # The ledger's identity: a new ledger (deleted, lost, reset) gets a new random id, so a client
    # holding a cursor into the old one can tell and start over.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO meta (key, value) VALUES ('ledger_id', lower(hex(randomblob(16))))",
    # clock.py: whether the wall clock was synchronised when the row was written (NULL: unknown),
    # and the time retention ages the row from (its end, corrected for a wall clock off then).
    "ALTER TABLE inferences ADD COLUMN clock_synced INTEGER",
    "ALTER TABLE inferences ADD COLUMN retention_ts REAL",
    "UPDATE inferences SET retention_ts = ended_ts",
    "CREATE INDEX inferences_retention_ts ON inferences (retention_ts)",
    # energy_error.py: how far energy_j can be off (rows from before it: 0, not known)
    "ALTER TABLE inferences ADD COLUMN energy_error_j REAL NOT NULL DEFAULT 0",
    # power/: the power level the window ran at (NULL: the box's own settings, or it changed)
    "ALTER TABLE inferences ADD COLUMN power_level TEXT",
    # batch/: the batch request a ledger row ran
    "ALTER TABLE inferences ADD COLUMN batch_id TEXT",
    "ALTER TABLE inferences ADD COLUMN custom_id TEXT",
    "CREATE INDEX inferences_batch_id ON inferences (batch_id) WHERE batch_id IS NOT NULL",
    # batch/files.py: uploaded inputs and written results; the bytes live in the files folder
    "CREATE TABLE batch_files ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, filename TEXT NOT NULL,"
    " purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    " expires_at INTEGER)",
    # batch/store.py: one row per batch, one per request line (its result once it has one)
    "CREATE TABLE batches ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    " input_file_id TEXT NOT NULL, endpoint TEXT NOT NULL, completion_window TEXT NOT NULL,"
    " metadata TEXT, status TEXT NOT NULL, model TEXT, deadline REAL NOT NULL,"
    " created_at INTEGER NOT NULL, in_progress_at INTEGER, finalizing_at INTEGER,"
    " completed_at INTEGER, failed_at INTEGER, expired_at INTEGER, cancelling_at INTEGER,"
    " cancelled_at INTEGER, output_file_id TEXT, error_file_id TEXT, errors TEXT,"
    " total INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX batches_input_file ON batches (input_file_id)",
    "CREATE TABLE batch_requests ("
    " batch_id TEXT NOT NULL, line INTEGER NOT NULL, custom_id TEXT NOT NULL, body TEXT NOT NULL,"
    " result TEXT, failed INTEGER, PRIMARY KEY (batch_id, line))",
    "CREATE INDEX batch_requests_pending ON batch_requests (batch_id) WHERE result IS NULL",
]


WAL_AUTOCHECKPOINT_PAGES = 256
WAL_SIZE_LIMIT_BYTES = 1 << 20
STALE_BUILD_S = 60.0


class Store:
    """The open database. Raises UnusableDataError (one line: the file, what is wrong, what to do)
    when the ledger is empty, corrupt, read-only or otherwise cannot be opened for writing."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = threading.Lock()
        if not path.exists():
            _create(path)
        elif _is_empty(path):
            raise UnusableDataError(
                path,
                "the ledger is empty (0 bytes): its rows and lifetime counters are gone",
                "restore it from a backup, or delete it to start a new ledger (its clients see "
                "a new ledger_id and start over)",
            )
        try:
            self.connection = _connect(path)
        except sqlite3.Error as err:
            raise _unusable(path, err) from None
        try:
            self._migrate()
            with self.lock:
                self.connection.execute("BEGIN IMMEDIATE")  # can it write at all?
                self.connection.execute("ROLLBACK")
                row = self.connection.execute(
                    "SELECT value FROM meta WHERE key = 'ledger_id'"
                ).fetchone()
        except sqlite3.Error as err:
            self.connection.close()
            raise _unusable(path, err) from None
        self.ledger_id: str = str(row[0])

    def _migrate(self) -> None:
        with self.lock:
            _migrate(self.connection)

    @contextlib.contextmanager
    def transaction_locked(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, BEGIN IMMEDIATE to COMMIT, inside `lock` (the caller holds it).

        On any failure, COMMIT included, it rolls back what SQLite has not already rolled back and
        raises the original error. After "database or disk is full" SQLite has rolled back by
        itself: a plain ROLLBACK would fail and hide that error behind "cannot rollback - no
        transaction is active", and a transaction left open would make every later BEGIN fail.
        """
        with _transaction(self.connection) as conn:
            yield conn

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


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection) -> None:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
        with _transaction(conn):
            conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA busy_timeout=5000")
        # A small WAL: checkpointed every 256 pages (1 MiB) and truncated back to 1 MiB, so on a
        # nearly full filesystem it cannot take the last megabytes and wedge the ledger.
        connection.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    except BaseException:
        connection.close()
        raise
    return connection


def _create(path: Path) -> None:
    """Build a new ledger beside `path` and link it into place once complete: a start killed
    half-way leaves no ledger rather than an empty one (which would read as a lost ledger)."""
    for stale in path.parent.glob(f"{path.name}.*.new*"):  # left by a start that was killed
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_BUILD_S:
                stale.unlink()
    building = path.with_name(f"{path.name}.{os.getpid()}.new")
    try:
        connection = _connect(building)
        os.chmod(building, 0o600)  # the owner's only, whatever the umask; the WAL follows it
        try:
            _migrate(connection)
        finally:
            connection.close()  # checkpoints the WAL into the file and removes it
        with building.open("rb") as built:
            os.fsync(built.fileno())
        try:
            os.link(building, path)
        except FileExistsError:
            pass  # another process made one meanwhile: keep it
        except OSError:  # a filesystem without hard links (FAT, exFAT)
            if not path.exists():
                os.replace(building, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except sqlite3.Error as err:
        raise _unusable(path, err) from None
    except OSError as err:  # the chmod, fsync or link after SQLite's own work (a full disk)
        raise UnusableDataError(
            path,
            f"a new ledger cannot be written ({err.strerror or err})",
            "free some space on its filesystem or make its directory writable for the agent",
        ) from None
    finally:
        for leftover in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                building.with_name(building.name + leftover).unlink()


def _is_empty(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0)


def _unusable(path: Path, err: sqlite3.Error) -> UnusableDataError:
    text = str(err)
    read_only = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    if read_only or "readonly" in text:
        return UnusableDataError(
            path,
            f"the ledger is read-only ({text})",
            "make its filesystem (remount read-write) and directory writable for the agent",
        )
    if "full" in text:
        return UnusableDataError(
            path, f"the ledger's filesystem is full ({text})", "free some space on it"
        )
    if not isinstance(err, sqlite3.OperationalError):  # "file is not a database", "malformed"
        return UnusableDataError(
            path,
            f"the ledger is not a SQLite database or is damaged ({text})",
            f"move it aside (mv {path} {path}.corrupt) to start a new ledger, "
            "or restore it from a backup",
        )
    return UnusableDataError(
        path,
        f"the ledger cannot be opened ({text})",
        "check that the data directory and the file are the agent's and writable",
    )
