"""The ledger: durable rows, a cursor that only grows, counters that never drop, export."""

from __future__ import annotations

import csv
import io
import itertools
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from joulegate_agent.storage.ledger import (
    JSON_FIELDS,
    InferenceRow,
    Ledger,
    export_rows,
    parse_iso_time,
)
from joulegate_agent.storage.store import MIGRATIONS, Store
from tests.agent.fakes.llm_answers import SHAPES
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, rows, running_agent

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
_WINDOW_IDS = itertools.count()  # id() of a freed dict can come back: not unique


def row(n: int = 0, **changes: object) -> InferenceRow:
    values: dict[str, object] = {
        "window_id": f"w{n}-{next(_WINDOW_IDS)}",
        "started_at": T0 + timedelta(minutes=n),
        "ended_at": T0 + timedelta(minutes=n, seconds=4),
        "duration_s": 4.0,
        "energy_j": 40.0,
        "marginal_j": 22.0,
        "avg_w": 10.0,
        "peak_w": 10.6,
        "idle_w": 4.5,
        "ttft_s": 0.21,
        "prompt_tokens": 52,
        "output_tokens": 100,
        "model": "llama3.2:3b",
        "route": "/api/chat",
        "http_status": 200,
        "outcome": "ok",
        "gate_open": True,
        "boundary": "module input rail (VDD_IN)",
    }
    values.update(changes)
    return InferenceRow(**values)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "joulegate.db")
    yield opened
    opened.close()


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return Ledger(store)


def test_recorded_rows_get_strictly_increasing_ids(ledger: Ledger) -> None:
    ids = [ledger.record(row(n)).id or 0 for n in range(3)]
    assert ids[0] < ids[1] < ids[2]


def test_a_row_is_committed_to_disk_when_record_returns(ledger: Ledger, store: Store) -> None:
    recorded = ledger.record(row())
    other = sqlite3.connect(store.path)  # another connection sees only committed data
    try:
        count = other.execute(
            "SELECT COUNT(*) FROM inferences WHERE id = ?", (recorded.id,)
        ).fetchone()[0]
    finally:
        other.close()
    assert count == 1


def test_the_row_json_has_the_contract_fields_and_derived_figures(ledger: Ledger) -> None:
    data = ledger.record(row()).to_json()
    assert list(data) == list(JSON_FIELDS)
    assert data["j_per_token"] == pytest.approx(0.4)
    assert data["wh"] == pytest.approx(40 / 3600, abs=1e-7)
    assert data["tokens_per_s"] == pytest.approx(25.0)
    assert data["started_at"] == "2026-11-26T12:00:00.000+00:00"


def test_a_row_keeps_its_energy_error_bound(ledger: Ledger) -> None:
    recorded = ledger.record(row(energy_error_j=1.25))
    assert ledger.get(recorded.id or 0) == recorded
    assert recorded.to_json()["energy_error_j"] == 1.25


def test_rows_from_before_the_error_bound_read_with_a_bound_of_zero(tmp_path: Path) -> None:
    path = tmp_path / "joulegate.db"
    old = sqlite3.connect(path, isolation_level=None)
    for number, statement in enumerate(MIGRATIONS[:4], start=1):
        old.execute(statement)
        old.execute(f"PRAGMA user_version={number}")
    old.execute(
        "INSERT INTO inferences (window_id, started_at, ended_at, started_ts, ended_ts,"
        " duration_s, tokens_estimated, energy_j, outcome, gate_open, boundary) VALUES"
        " ('old', '2026-11-26T12:00:00.000+00:00', '2026-11-26T12:00:04.000+00:00',"
        " 0, 4, 4.0, 0, 40.0, 'ok', 1, 'module input rail (VDD_IN)')"
    )
    old.close()
    store = Store(path)
    try:
        (kept,) = Ledger(store).page().items
    finally:
        store.close()
    assert (kept.window_id, kept.energy_error_j) == ("old", 0.0)


def test_a_row_without_output_tokens_has_no_j_per_token(ledger: Ledger) -> None:
    data = ledger.record(row(output_tokens=None)).to_json()
    assert data["j_per_token"] is None
    assert data["tokens_per_s"] is None


def test_recording_adds_to_the_lifetime_counters(ledger: Ledger) -> None:
    ledger.record(row(1))
    ledger.record(row(2, output_tokens=20, energy_j=10.0, marginal_j=None))
    totals = ledger.totals()
    assert totals.inferences == 2
    assert totals.output_tokens == 120
    assert totals.energy_j == pytest.approx(50.0)
    assert totals.marginal_j == pytest.approx(22.0)


def test_refused_rows_are_kept_but_not_counted_as_inferences(ledger: Ledger) -> None:
    ledger.record(row(outcome="refused", energy_j=0.0, marginal_j=0.0, output_tokens=None))
    assert ledger.count() == 1
    assert ledger.totals().inferences == 0


def test_a_failed_insert_leaves_the_counters_untouched(ledger: Ledger) -> None:
    first = ledger.record(row(1))
    with pytest.raises(sqlite3.IntegrityError):
        ledger.record(row(2, window_id=first.window_id))  # duplicate window id
    assert ledger.totals().inferences == 1


def test_pages_follow_the_cursor(ledger: Ledger) -> None:
    ids = [ledger.record(row(n)).id for n in range(5)]
    first = ledger.page(after=0, limit=2)
    assert [r.id for r in first.items] == ids[:2]
    assert (first.cursor, first.has_more) == (ids[1], True)
    second = ledger.page(after=first.cursor, limit=2)
    assert [r.id for r in second.items] == ids[2:4]
    last = ledger.page(after=second.cursor, limit=2)
    assert [r.id for r in last.items] == ids[4:]
    assert last.has_more is False
    empty = ledger.page(after=last.cursor, limit=2)
    assert (empty.items, empty.cursor, empty.has_more) == ([], last.cursor, False)


def test_pruning_removes_old_rows_and_never_the_counters(ledger: Ledger) -> None:
    now = T0 + timedelta(days=400)
    ledger.record(row(0))  # 400 days old
    recent = ledger.record(
        row(0, started_at=now - timedelta(days=1), ended_at=now - timedelta(days=1))
    )
    before = ledger.totals()
    assert ledger.prune(now) == 1
    assert [r.id for r in ledger.rows()] == [recent.id]
    assert ledger.totals() == before


def test_ids_keep_growing_after_pruning(ledger: Ledger) -> None:
    old = ledger.record(row(0))
    ledger.prune(T0 + timedelta(days=400))
    assert ledger.record(row(1)).id > old.id  # type: ignore[operator]


def test_retention_is_configurable(store: Store) -> None:
    short = Ledger(store, retention_days=7)
    short.record(row(0))
    assert short.prune(T0 + timedelta(days=6)) == 0
    assert short.prune(T0 + timedelta(days=8)) == 1


def test_rows_and_counters_survive_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "joulegate.db"
    store = Store(path)
    Ledger(store).record(row(0))
    store.close()
    reopened = Store(path)
    try:
        ledger = Ledger(reopened)
        assert ledger.count() == 1
        assert ledger.totals().inferences == 1
    finally:
        reopened.close()


def test_export_jsonl_writes_one_api_row_per_line(ledger: Ledger) -> None:
    recorded = [ledger.record(row(n)) for n in range(3)]
    out = io.StringIO()
    assert export_rows(ledger, out, "jsonl") == 3
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [r.to_json() for r in recorded]


def test_export_csv_has_the_energy_error_bound_beside_the_energy(ledger: Ledger) -> None:
    ledger.record(row(energy_error_j=0.5))
    out = io.StringIO()
    export_rows(ledger, out, "csv")
    (line,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (line["energy_j"], line["energy_error_j"]) == ("40.0", "0.5")


def test_export_csv_has_a_header_and_one_line_per_row(ledger: Ledger) -> None:
    ledger.record(row(0, model=None, ttft_s=None))
    out = io.StringIO()
    export_rows(ledger, out, "csv")
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(table[0]) == list(JSON_FIELDS)
    assert table[0]["model"] == ""
    assert table[0]["gate_open"] == "true"
    assert float(table[0]["energy_j"]) == 40.0


def test_export_since_keeps_rows_that_started_then_or_later(ledger: Ledger) -> None:
    for n in range(4):
        ledger.record(row(n))
    out = io.StringIO()
    assert export_rows(ledger, out, "jsonl", since=T0 + timedelta(minutes=2)) == 2


def test_export_rejects_unknown_formats(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="format"):
        export_rows(ledger, io.StringIO(), "xml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T12:00:00Z", T0),
        ("2026-11-26T13:00:00+01:00", T0),
        ("2026-11-26T12:00:00", T0),
        ("2026-11-26", T0 - timedelta(hours=12)),
    ],
)
def test_since_accepts_iso_times_and_dates(text: str, expected: datetime) -> None:
    assert parse_iso_time(text) == expected


def test_since_rejects_other_text() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_iso_time("last tuesday")


CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")
JSON = {"Content-Type": "application/json"}


async def test_lone_surrogates_in_names_are_recorded_not_lost(tmp_path: Path) -> None:
    """Before: the row failed to commit (UnicodeEncodeError), so a client could run an
    inference that never reached the ledger by naming its model "\\udfff"."""
    async with (
        upstream_server(FakeUpstream()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        started = await client.post(
            "/api/v1/windows",
            data='{"label": "a\\ud800b", "model": "m\\udfff"}',
            headers=auth(agent) | JSON,
        )
        assert started.status == 201
        window = (await started.json())["window_id"]
        ended = await client.post(f"/api/v1/windows/{window}/end", headers=auth(agent))
        assert ended.status == 200
        proxied = await client.post(
            CHAT.path, data='{"model": "\\udfff", "messages": []}', headers=auth(agent) | JSON
        )
        assert proxied.status == 200
        recorded = await rows(agent)
    assert [(r["label"], r["model"]) for r in recorded] == [
        ("a\ufffdb", "m\ufffd"),
        (None, "\ufffd"),  # the model the request named, as SQLite can store it
    ]
