"""Batch files: uploaded inputs and written results, bytes in a folder and a row in SQLite.

The folder (`batch-files/` in the data directory) is private (0700). An upload is written to a
temporary name, synced, renamed into place, and only then gets its row: a crash leaves no row
without its bytes (a file without a row is swept at start). Every file expires after the
retention period (30 days by default, as OpenAI keeps batch files), and uploads are refused
once the folder would hold more than its quota; results are always written.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from joulegate_agent.errors import JoulegateError
from joulegate_agent.storage.store import Store

FOLDER = "batch-files"
PURPOSE_INPUT = "batch"
PURPOSE_OUTPUT = "batch_output"
PURPOSES = (PURPOSE_INPUT, PURPOSE_OUTPUT)
FILENAME_MAX_CHARS = 255
_PARTIAL = ".partial"
ORPHAN_AGE_S = 3600


class FileLimitError(JoulegateError):
    """An upload is over the size limit or the quota (`FileStore.limit_error` says which)."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None

    def to_json(self) -> dict[str, Any]:
        """OpenAI's File object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


_SELECT = "SELECT id, filename, purpose, bytes, created_at, expires_at FROM batch_files"


def _record(row: tuple[Any, ...]) -> FileRecord:
    return FileRecord(*row)


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex}"


class Upload:
    """One upload being streamed to disk under the size limit and the quota."""

    def __init__(self, files: FileStore, limit: int) -> None:
        self.file_id = new_file_id()
        self.path = files.folder / (self.file_id + _PARTIAL)
        self.size = 0
        self._limit = limit
        self._handle: BinaryIO = open(  # noqa: SIM115 - closed in finish/abort
            os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"
        )

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            raise FileLimitError
        self._handle.write(chunk)

    def finish(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def abort(self) -> None:
        self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class FileStore:
    def __init__(
        self,
        store: Store,
        data_dir: Path,
        *,
        retention_days: int,
        quota_bytes: int,
        max_upload_bytes: int,
    ) -> None:
        self._store = store
        self.folder = data_dir / FOLDER
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self.retention_s = retention_days * 86400
        self.quota_bytes = quota_bytes
        self.max_upload_bytes = max_upload_bytes

    def path(self, file_id: str) -> Path:
        return self.folder / file_id

    # -- uploads ---------------------------------------------------------------------------------

    def begin_upload(self) -> Upload:
        """An upload limited to what both the per-file limit and the quota leave."""
        room = self.quota_bytes - self.used_bytes()
        return Upload(self, max(0, min(self.max_upload_bytes, room)))

    def limit_error(self, upload: Upload) -> str:
        """Why an upload that ran over its limit was refused."""
        if upload.size > self.max_upload_bytes:
            return f"The file is larger than the limit of {self.max_upload_bytes} bytes."
        return (
            f"The batch files would take more than their quota of {self.quota_bytes} bytes; "
            "delete files you no longer need (DELETE /v1/files/{id})."
        )

    def commit_upload(self, upload: Upload, filename: str, purpose: str) -> FileRecord:
        """Sync the upload, move it into place, then give it its row."""
        upload.finish()
        final = self.path(upload.file_id)
        os.replace(upload.path, final)
        _sync_dir(self.folder)
        now = int(time.time())
        record = FileRecord(
            upload.file_id, filename, purpose, upload.size, now, now + self.retention_s
        )
        self._insert(record)
        return record

    # -- results ---------------------------------------------------------------------------------

    def write_result(self, file_id: str, filename: str, lines: Iterable[bytes]) -> FileRecord:
        """Write a result file (replacing one of a finalize that a crash interrupted); its row
        is the caller's to insert, in the transaction that finishes the batch."""
        partial = self.folder / (file_id + _PARTIAL)
        size = 0
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            for line in lines:
                out.write(line)
                size += len(line)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.path(file_id))
        _sync_dir(self.folder)
        now = int(time.time())
        return FileRecord(file_id, filename, PURPOSE_OUTPUT, size, now, now + self.retention_s)

    # -- rows ------------------------------------------------------------------------------------

    def _insert(self, record: FileRecord) -> None:
        with self._store.lock, self._store.transaction_locked() as conn:
            insert_locked(conn, record)

    def get(self, file_id: str) -> FileRecord | None:
        with self._store.lock:
            row = self._store.connection.execute(f"{_SELECT} WHERE id = ?", (file_id,)).fetchone()
        return None if row is None else _record(row)

    def page(
        self, *, purpose: str | None, after: str | None, limit: int, newest_first: bool
    ) -> tuple[list[FileRecord], bool]:
        """A page of files, newest first unless asked otherwise; `after` is a file id."""
        clauses: list[str] = []
        args: list[object] = []
        if purpose is not None:
            clauses.append("purpose = ?")
            args.append(purpose)
        if after is not None:
            op = "<" if newest_first else ">"
            clauses.append(f"seq {op} COALESCE((SELECT seq FROM batch_files WHERE id = ?), ?)")  # noqa: S608 - constant names
            args += [after, -1 if newest_first else 2**62]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        with self._store.lock:
            rows = self._store.connection.execute(
                f"{_SELECT}{where} ORDER BY seq {order} LIMIT ?", (*args, limit + 1)
            ).fetchall()
        return [_record(r) for r in rows[:limit]], len(rows) > limit

    def delete(self, file_id: str) -> bool:
        with self._store.lock, self._store.transaction_locked() as conn:
            deleted = conn.execute("DELETE FROM batch_files WHERE id = ?", (file_id,)).rowcount
        with contextlib.suppress(FileNotFoundError):
            self.path(file_id).unlink()
        return bool(deleted)

    def used_bytes(self) -> int:
        with self._store.lock:
            value = self._store.connection.execute(
                "SELECT COALESCE(SUM(bytes), 0) FROM batch_files"
            ).fetchone()[0]
        return int(value)

    def content(self, file_id: str, chunk: int = 64 * 1024) -> Iterator[bytes]:
        with self.path(file_id).open("rb") as handle:
            while data := handle.read(chunk):
                yield data

    def prune(self, now: float | None = None) -> int:
        """Delete files past their expiry, and bytes that never got their row (a crash between
        the rename and the row; an hour old, so a file about to get its row is left alone)."""
        moment = int(now if now is not None else time.time())
        with self._store.lock, self._store.transaction_locked() as conn:
            expired = [
                str(r[0])
                for r in conn.execute(
                    "SELECT id FROM batch_files WHERE expires_at IS NOT NULL AND expires_at <= ?",
                    (moment,),
                ).fetchall()
            ]
            conn.executemany("DELETE FROM batch_files WHERE id = ?", [(i,) for i in expired])
            known = {str(r[0]) for r in conn.execute("SELECT id FROM batch_files").fetchall()}
        for entry in self.folder.iterdir():
            if entry.name in known or entry.name.endswith(_PARTIAL):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < moment - ORPHAN_AGE_S:
                    entry.unlink()
        return len(expired)

    def sweep_partials(self) -> None:
        """At start: uploads and result files a crash left half written."""
        for entry in self.folder.glob(f"*{_PARTIAL}"):
            entry.unlink(missing_ok=True)


def insert_locked(conn: Any, record: FileRecord) -> None:
    """Insert (or replace) a file's row inside a transaction the caller holds."""
    conn.execute(
        "INSERT INTO batch_files (id, filename, purpose, bytes, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET bytes = excluded.bytes, "
        "created_at = excluded.created_at, expires_at = excluded.expires_at",
        (
            record.id,
            record.filename,
            record.purpose,
            record.bytes,
            record.created_at,
            record.expires_at,
        ),
    )


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
