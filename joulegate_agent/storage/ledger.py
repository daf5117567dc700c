"""The inference ledger: one SQLite row per finished window, plus lifetime counters.

A row and the lifetime counters it adds to are written in one transaction (WAL,
synchronous=FULL), and the row is committed before anything can read it through the API. The row
id (INTEGER PRIMARY KEY AUTOINCREMENT) is the API's pagination cursor: it only ever grows, even
after retention pruning deletes old rows. Pruning deletes rows only; the counters never move
backwards.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Literal, TextIO

from joulegate_agent.storage.clock import RetentionClock, clock_synced
from joulegate_agent.storage.store import Store

Outcome = Literal["ok", "error", "cancelled", "refused"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "cancelled", "refused")

COUNTER_INFERENCES = "inferences"
COUNTER_OUTPUT_TOKENS = "output_tokens"
COUNTER_ENERGY_J = "inference_energy_j"
COUNTER_MARGINAL_J = "marginal_energy_j"

DEFAULT_RETENTION_DAYS = 365
_META_RETENTION_CLOCK = "retention_clock"
_META_ANCHORED = "retention_clock_anchored"
PAGE_LIMIT_MAX = 1000
PAGE_LIMIT_DEFAULT = 100
EXPORT_FORMATS = ("csv", "jsonl")


def iso(moment: datetime) -> str:
    """ISO 8601 with milliseconds and the UTC offset, as everywhere in the API."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def round_or_none(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def storable_text(text: str) -> str:
    """`text` with any lone surrogate replaced by U+FFFD (the same object when it has none)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return text


@dataclass(frozen=True, slots=True)
class InferenceRow:
    """One finished inference window. `id` is None until the ledger has committed it.

    `energy_error_j` bounds how far `energy_j` can be from the truth (energy_error.py).
    """

    window_id: str
    started_at: datetime
    ended_at: datetime
    duration_s: float
    energy_j: float
    outcome: Outcome
    gate_open: bool
    boundary: str
    marginal_j: float | None = None
    avg_w: float | None = None
    peak_w: float | None = None
    idle_w: float | None = None
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    model: str | None = None
    route: str | None = None
    label: str | None = None
    http_status: int | None = None
    clock_synced: bool | None = None
    retention_ts: float | None = None
    """Seconds since the epoch that retention ages the row from (clock.py); None until stamped."""
    energy_error_j: float = 0.0
    power_level: str | None = None
    """The power level the whole window ran at; None: the box's own settings, or it changed."""
    batch_id: str | None = None
    custom_id: str | None = None
    """The batch request this row ran (both None for proxied and explicit windows)."""
    id: int | None = None

    def __post_init__(self) -> None:
        # Text from outside (the model named in a request or a response, a label) may hold lone
        # surrogates (JSON "\ud800"), which SQLite cannot store: the row would be lost, and the
        # inference go unmetered. They become U+FFFD instead.
        for name in ("model", "route", "label", "custom_id"):
            value = getattr(self, name)
            if value is not None:
                clean = storable_text(value)
                if clean is not value:
                    object.__setattr__(self, name, clean)

    @property
    def j_per_token(self) -> float | None:
        if not self.output_tokens:
            return None
        return self.energy_j / self.output_tokens

    @property
    def wh(self) -> float:
        return self.energy_j / 3600.0

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second of the whole window (prompt processing included)."""
        if self.output_tokens is None or self.duration_s <= 0:
            return None
        return self.output_tokens / self.duration_s

    def to_json(self) -> dict[str, Any]:
        """The API's `<inference row>` object."""
        return {name: shown(self) for name, shown in _SHOWN}

    def _values(self) -> tuple[Any, ...]:
        return tuple(stored(self) for _, stored in _STORED)

    @classmethod
    def _from_db(cls, row: sqlite3.Row | tuple[Any, ...]) -> InferenceRow:
        return cls(**{name: load(value) for (name, load), value in zip(_LOADED, row, strict=True)})


_Get = Callable[[InferenceRow], Any]


def _same(value: Any) -> Any:
    return value


def _flag_or_none(value: Any) -> bool | None:
    return None if value is None else bool(value)


@dataclass(frozen=True, slots=True)
class _Field:
    """One piece of an inference row, the one place that names it: its key in the API and the
    CSV export (`shown`: the value there), its SQLite column (`stored`: the value written), and
    how the row's field of the same name is read back (`loaded`). None: not there."""

    name: str
    shown: _Get | None = None
    stored: _Get | None = None
    loaded: Callable[[Any], Any] | None = None


def _plain(name: str, digits: int | None = None, *, shown: bool = True) -> _Field:
    """A field stored and read back as it is, shown as it is or rounded to `digits`."""
    get: _Get = attrgetter(name)
    show: _Get = get if digits is None else (lambda row: round_or_none(get(row), digits))
    return _Field(name, shown=show if shown else None, stored=get, loaded=_same)


def _derived(name: str, digits: int) -> _Field:
    """Shown in the API, computed from the row, never stored."""
    get: _Get = attrgetter(name)
    return _Field(name, shown=lambda row: round_or_none(get(row), digits))


def _moment(name: str) -> _Field:
    """A time, stored as ISO 8601 text."""
    get: _Get = attrgetter(name)
    return _Field(
        name,
        shown=lambda row: iso(get(row)),
        stored=lambda row: iso(get(row)),
        loaded=datetime.fromisoformat,
    )


def _boolean(name: str, convert: Callable[[Any], Any]) -> _Field:
    """A yes/no (or unknown), stored as 1/0 (or NULL)."""
    get: _Get = attrgetter(name)
    return _Field(
        name,
        shown=get,
        stored=lambda row: None if get(row) is None else int(get(row)),
        loaded=convert,
    )


_FIELDS = (
    _Field("id", shown=attrgetter("id"), loaded=_same),  # SQLite's rowid: read, never written
    _plain("window_id"),
    _moment("started_at"),
    _moment("ended_at"),
    _plain("duration_s", 3),
    _plain("ttft_s", 3),
    _plain("prompt_tokens"),
    _plain("output_tokens"),
    _boolean("tokens_estimated", bool),
    _plain("energy_j", 3),
    _plain("energy_error_j", 3),
    _plain("marginal_j", 3),
    _plain("avg_w", 3),
    _plain("peak_w", 3),
    _derived("j_per_token", 4),
    _derived("wh", 7),
    _derived("tokens_per_s", 2),
    _plain("model"),
    _plain("route"),
    _plain("http_status"),
    _plain("outcome"),
    _boolean("gate_open", bool),
    _plain("boundary"),
    _plain("label"),
    _boolean("clock_synced", _flag_or_none),
    _plain("power_level"),
    _plain("batch_id"),
    _plain("custom_id"),
    # Columns the API does not show: the times as numbers to query by, the idle baseline, and
    # the time retention ages the row from (clock.py).
    _Field("started_ts", stored=lambda row: row.started_at.timestamp()),
    _Field("ended_ts", stored=lambda row: row.ended_at.timestamp()),
    _plain("idle_w", shown=False),
    _plain("retention_ts", shown=False),
)
_SHOWN: tuple[tuple[str, _Get], ...] = tuple(
    (field.name, field.shown) for field in _FIELDS if field.shown is not None
)
_STORED: tuple[tuple[str, _Get], ...] = tuple(
    (field.name, field.stored) for field in _FIELDS if field.stored is not None
)
_LOADED: tuple[tuple[str, Callable[[Any], Any]], ...] = tuple(
    (field.name, field.loaded) for field in _FIELDS if field.loaded is not None
)  # `id` first

JSON_FIELDS = tuple(name for name, _ in _SHOWN)
"""The keys of an inference row in the API, in order (also the CSV header)."""

_SELECT = f"SELECT {', '.join(name for name, _ in _LOADED)} FROM inferences"  # noqa: S608 - constant
_INSERT = (
    f"INSERT INTO inferences ({', '.join(name for name, _ in _STORED)}) "  # noqa: S608 - constant
    f"VALUES ({', '.join('?' for _ in _STORED)})"
)


@dataclass(frozen=True, slots=True)
class LedgerPage:
    items: list[InferenceRow]
    cursor: int
    has_more: bool
    ledger_id: str
    """The cursor's ledger: a cursor into another ledger (reset, replaced) means nothing here."""

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [row.to_json() for row in self.items],
            "cursor": self.cursor,
            "has_more": self.has_more,
            "ledger_id": self.ledger_id,
        }


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """Lifetime counters: they only grow, across restarts and retention pruning."""

    inferences: int
    output_tokens: int
    energy_j: float
    marginal_j: float


class Ledger:
    """Inference rows in the agent's Store. Every method is synchronous and thread-safe (it takes
    the Store's lock); async callers run `record` in an executor so a commit's fsync never blocks
    the event loop."""

    def __init__(
        self,
        store: Store,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        synced: Callable[[], bool | None] = clock_synced,
        clock: RetentionClock | None = None,
    ) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self._store = store
        self.retention_days = retention_days
        if clock is None:
            resume_ts, anchored = retention_resume(store)
            clock = RetentionClock(resume_ts, anchored=anchored, synced=synced)
        self.clock = clock

    def stamp(self, row: InferenceRow) -> InferenceRow:
        """`row` with the clock's state now: synchronised or not (as the retention clock's own
        probe found it: one probe a row), and its retention time."""
        if row.retention_ts is not None:
            return row
        offset, synced = self.clock.reading()
        return replace(
            row,
            clock_synced=synced,
            retention_ts=None if offset is None else row.ended_at.timestamp() + offset,
        )

    def record(self, row: InferenceRow) -> InferenceRow:
        """Commit `row` and add it to the lifetime counters, in one transaction.

        Refused requests get a row but never ran, so they do not count as inferences.
        """
        return self.record_many([row])[0]

    def record_many(
        self, rows: list[InferenceRow], counters: Mapping[str, float] | None = None
    ) -> list[InferenceRow]:
        """Commit `rows` and add them to the lifetime counters, all in one transaction (one
        fsync for the lot: under load, rows are written in groups and the writer keeps up), with
        `counters` (other lifetime counters' deltas, such as the board energy) in the same one."""
        for row in rows:
            if row.outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {row.outcome!r}")
        rows = [self.stamp(row) for row in rows]
        store = self._store
        committed: list[InferenceRow] = []
        if not rows and not counters:
            return committed  # nothing to write: no transaction, no fsync
        with store.lock, store.transaction_locked() as conn:
            for row in rows:
                cursor = conn.execute(_INSERT, row._values())
                committed.append(replace(row, id=cursor.lastrowid))
            ran = sum(1 for row in rows if row.outcome != "refused")
            if ran:
                store.add_counter_locked(COUNTER_INFERENCES, ran)
            if rows:
                store.add_counter_locked(
                    COUNTER_OUTPUT_TOKENS, sum(max(0, row.output_tokens or 0) for row in rows)
                )
                store.add_counter_locked(
                    COUNTER_ENERGY_J, sum(max(0.0, row.energy_j) for row in rows)
                )
                store.add_counter_locked(
                    COUNTER_MARGINAL_J, sum(max(0.0, row.marginal_j or 0.0) for row in rows)
                )
            for name, delta in (counters or {}).items():
                store.add_counter_locked(name, delta)
        return committed

    def page(self, after: int = 0, limit: int = PAGE_LIMIT_DEFAULT) -> LedgerPage:
        """Rows with id > `after`, oldest first; `cursor` is the last id returned (or `after`)."""
        limit = max(1, min(PAGE_LIMIT_MAX, limit))
        with self._store.lock:
            rows = self._store.connection.execute(
                f"{_SELECT} WHERE id > ? ORDER BY id LIMIT ?", (after, limit + 1)
            ).fetchall()
        items = [InferenceRow._from_db(r) for r in rows[:limit]]
        cursor = items[-1].id if items and items[-1].id is not None else after
        return LedgerPage(
            items=items,
            cursor=cursor,
            has_more=len(rows) > limit,
            ledger_id=self._store.ledger_id,
        )

    def get(self, row_id: int) -> InferenceRow | None:
        with self._store.lock:
            row = self._store.connection.execute(f"{_SELECT} WHERE id = ?", (row_id,)).fetchone()
        return None if row is None else InferenceRow._from_db(row)

    def last(self) -> InferenceRow | None:
        with self._store.lock:
            row = self._store.connection.execute(f"{_SELECT} ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else InferenceRow._from_db(row)

    def rows(self, since: datetime | None = None, batch: int = 500) -> Iterator[InferenceRow]:
        """Every row that started at or after `since` (all when None), oldest first, in batches
        so the Store's lock is never held for long."""
        since_ts = since.timestamp() if since is not None else float("-inf")
        after = 0
        while True:
            with self._store.lock:
                fetched = self._store.connection.execute(
                    f"{_SELECT} WHERE id > ? AND started_ts >= ? ORDER BY id LIMIT ?",
                    (after, since_ts, batch),
                ).fetchall()
            if not fetched:
                return
            for raw in fetched:
                row = InferenceRow._from_db(raw)
                after = raw[0]
                yield row

    def count(self) -> int:
        with self._store.lock:
            value: int = self._store.connection.execute(
                "SELECT COUNT(*) FROM inferences"
            ).fetchone()[0]
        return value

    def totals(self) -> LedgerTotals:
        counters = self._store.counters()
        return LedgerTotals(
            inferences=round(counters.get(COUNTER_INFERENCES, 0.0)),
            output_tokens=round(counters.get(COUNTER_OUTPUT_TOKENS, 0.0)),
            energy_j=counters.get(COUNTER_ENERGY_J, 0.0),
            marginal_j=counters.get(COUNTER_MARGINAL_J, 0.0),
        )

    def prune(self, now: datetime | None = None) -> int:
        """Delete rows whose retention time is more than `retention_days` before the retention
        clock (or `now`), which never jumps with the wall clock; counters stay as they are.

        Rows written before the clock had any anchor get the clock's time once it has one (they
        are kept a full retention period from then), and so do rows stamped ahead of it (by a
        clock since corrected backwards): else, as the newest retention time a restart resumes
        from, they would carry the clock ahead again and delete the rows written since."""
        trusted = now.timestamp() if now is not None else self.clock.now()
        anchored = now is not None or self.clock.anchored
        cutoff = trusted - self.retention_days * 86400.0
        deleted = 0
        with self._store.lock, self._store.transaction_locked() as conn:
            if anchored:
                conn.execute(
                    "UPDATE inferences SET retention_ts = ? WHERE retention_ts IS NULL", (trusted,)
                )
                if now is None:
                    conn.execute(
                        "UPDATE inferences SET retention_ts = ? WHERE retention_ts > ?",
                        (trusted, trusted),
                    )
                deleted = conn.execute(
                    "DELETE FROM inferences WHERE retention_ts < ?", (cutoff,)
                ).rowcount
            if now is None:
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [(_META_RETENTION_CLOCK, repr(trusted)), (_META_ANCHORED, str(int(anchored)))],
                )
        return int(deleted)


def retention_resume(store: Store) -> tuple[float | None, bool]:
    """Where a ledger's retention clock resumes: the latest time it had reached, stored or on a
    row (None for a ledger without either), and whether it was anchored (clock.py)."""
    with store.lock:
        conn = store.connection
        meta = dict(
            conn.execute(
                "SELECT key, value FROM meta WHERE key IN (?, ?)",
                (_META_RETENTION_CLOCK, _META_ANCHORED),
            ).fetchall()
        )
        newest = conn.execute("SELECT MAX(retention_ts) FROM inferences").fetchone()[0]
    times = [float(t) for t in (meta.get(_META_RETENTION_CLOCK), newest) if t is not None]
    return (max(times) if times else None), meta.get(_META_ANCHORED, "1") == "1"


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def export_rows(
    ledger: Ledger, out: TextIO, fmt: str = "jsonl", since: datetime | None = None
) -> int:
    """Write the ledger (rows started at or after `since`) as CSV or JSON Lines; return the
    number of rows written. Columns and keys are the API's inference row."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    written = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(JSON_FIELDS)
        for row in ledger.rows(since):
            data = row.to_json()
            writer.writerow([_csv_cell(data[key]) for key in JSON_FIELDS])
            written += 1
    else:
        for row in ledger.rows(since):
            out.write(json.dumps(row.to_json(), separators=(",", ":")) + "\n")
            written += 1
    return written


def parse_iso_time(text: str) -> datetime:
    """An ISO 8601 date or time; without an offset it is taken as UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as err:
        raise ValueError(f"not an ISO 8601 date or time: {text!r}") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment
