"""Wall-clock jumps never delete real rows, and each row says whether the clock was synchronised.

The wall clock, the monotonic clock and the system's synchronised flag are the world's edge here:
they are fakes the tests move; the ledger, its retention clock and its database are real.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.storage.clock import STA_UNSYNC, RetentionClock, clock_synced
from joulegate_agent.storage.ledger import InferenceRow, Ledger, export_rows, retention_resume
from joulegate_agent.storage.store import MIGRATIONS, Store
from tests.agent.helpers import auth

DAY = 86400.0
TRUE_START = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc).timestamp()


@dataclass
class World:
    """The clocks a ledger sees: wall time (settable, as a wrong RTC or NTP would set it), the
    monotonic time since boot, and whether the system says the wall clock is synchronised."""

    wall: float = TRUE_START
    monotonic: float = 1000.0
    synced: bool | None = None

    def passes(self, seconds: float) -> None:
        """Real time passes: both clocks move."""
        self.wall += seconds
        self.monotonic += seconds

    def reboot(self, wall: float) -> None:
        self.wall = wall
        self.monotonic = 5.0

    def ledger(self, store: Store, retention_days: int = 365) -> Ledger:
        def synced() -> bool | None:
            return self.synced

        resume_ts, anchored = retention_resume(store)
        clock = RetentionClock(
            resume_ts,
            anchored=anchored,
            synced=synced,
            wall=lambda: self.wall,
            monotonic=lambda: self.monotonic,
        )
        return Ledger(store, retention_days=retention_days, synced=synced, clock=clock)

    def row(self, n: int) -> InferenceRow:
        ended = datetime.fromtimestamp(self.wall, timezone.utc)
        return InferenceRow(
            window_id=f"w{n}",
            started_at=ended - timedelta(seconds=2),
            ended_at=ended,
            duration_s=2.0,
            energy_j=20.0,
            outcome="ok",
            gate_open=True,
            boundary="module input rail (VDD_IN)",
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "joulegate.db")
    yield opened
    opened.close()


def reopen(store: Store) -> Store:
    store.close()
    return Store(store.path)


def ids(ledger: Ledger) -> list[int | None]:
    return [row.id for row in ledger.rows()]


def test_a_start_with_the_clock_400_days_ahead_deletes_nothing(store: Store) -> None:
    world = World(synced=True)
    ledger = world.ledger(store)
    for n in range(10):
        ledger.record(world.row(n))
        world.passes(DAY)
    store = reopen(store)
    world.synced = None  # after the reboot: no word on the clock
    world.reboot(wall=world.wall + 400 * DAY)
    ledger = world.ledger(store)
    ledger.record(world.row(10))
    assert ledger.prune() == 0
    world.passes(3600)
    assert ledger.prune() == 0
    assert len(ids(ledger)) == 11
    store.close()


def test_rows_written_under_a_clock_730_days_behind_survive_its_correction(
    store: Store,
) -> None:
    world = World(synced=True)
    ledger = world.ledger(store)
    ledger.record(world.row(0))
    store = reopen(store)
    world.synced = False
    world.reboot(wall=world.wall + 60 - 730 * DAY)  # no RTC battery: a date two years back
    ledger = world.ledger(store)
    for n in range(1, 4):
        world.passes(60)
        ledger.record(world.row(n))
    world.synced = True  # NTP corrects the clock
    world.wall += 730 * DAY
    assert ledger.prune() == 0
    rows = list(ledger.rows())
    assert len(rows) == 4
    assert [row.clock_synced for row in rows] == [True, False, False, False]
    store.close()


def test_rows_of_a_clock_once_ahead_do_not_move_retention_after_a_restart(store: Store) -> None:
    """A new ledger under a clock 400 days ahead (plausible, not known to be wrong) stamps its
    rows with that time; once NTP corrects the clock and the agent restarts before the next
    synchronisation, those rows must not carry retention 400 days ahead and delete the rows
    written since."""
    world = World(synced=None, wall=TRUE_START + 400 * DAY)
    ledger = world.ledger(store)
    ledger.record(world.row(0))
    world.synced = True  # NTP corrects the clock
    world.wall = TRUE_START + 60
    for n in range(1, 4):
        world.passes(DAY)
        ledger.record(world.row(n))
    assert ledger.prune() == 0
    store = reopen(store)
    world.synced = None  # after the reboot: no word on the clock yet
    world.reboot(wall=world.wall + 60)
    ledger = world.ledger(store)
    assert ledger.prune() == 0
    assert len(ids(ledger)) == 4
    store.close()


def test_a_jump_while_running_is_ignored_until_the_clock_is_synchronised(store: Store) -> None:
    world = World(synced=None)
    ledger = world.ledger(store)
    ledger.record(world.row(0))
    world.passes(3600)
    world.wall += 400 * DAY  # someone sets the clock
    assert ledger.prune() == 0
    world.synced = True  # ... and NTP says that is the time
    assert ledger.prune() == 1


def test_retention_still_prunes_by_a_clock_that_runs_sanely(store: Store) -> None:
    world = World(synced=None)
    ledger = world.ledger(store, retention_days=7)
    ledger.record(world.row(0))
    world.passes(6 * DAY)
    ledger.record(world.row(1))
    assert ledger.prune() == 0
    world.passes(2 * DAY)
    assert ledger.prune() == 1
    assert len(ids(ledger)) == 1


def test_time_the_agent_was_down_counts_once_the_clock_is_synchronised(store: Store) -> None:
    world = World(synced=None)
    ledger = world.ledger(store, retention_days=7)
    ledger.record(world.row(0))
    store = reopen(store)
    world.reboot(wall=world.wall + 10 * DAY)  # ten days powered off
    ledger = world.ledger(store, retention_days=7)
    assert ledger.prune() == 0  # unsure of the clock: kept
    world.synced = True
    assert ledger.prune() == 1
    store.close()


def flag_root(tmp_path: Path, *, timesyncd: bool, synchronized: bool) -> Path:
    if timesyncd:
        (tmp_path / "run/systemd/timesync").mkdir(parents=True)
    if synchronized:
        (tmp_path / "run/systemd/timesync/synchronized").touch()
    return tmp_path


def kernel(status: int | None) -> Any:
    return lambda: status


@pytest.mark.parametrize(
    ("timesyncd", "synchronized", "kernel_status", "expected"),
    [
        (True, True, STA_UNSYNC, True),  # timesyncd's flag is the word
        (False, False, 0, True),  # the kernel says synchronised (chrony, ntpd)
        (False, False, STA_UNSYNC, False),
        (True, False, None, False),  # timesyncd runs, no flag yet; adjtimex not allowed
        (False, False, None, None),  # nobody can tell
    ],
)
def test_clock_synced_reads_timesyncd_then_the_kernel(
    tmp_path: Path,
    timesyncd: bool,
    synchronized: bool,
    kernel_status: int | None,
    expected: bool | None,
) -> None:
    root = flag_root(tmp_path, timesyncd=timesyncd, synchronized=synchronized)
    assert clock_synced(root, kernel(kernel_status)) is expected


def test_rows_written_before_this_column_existed_keep_their_age(tmp_path: Path) -> None:
    path = tmp_path / "joulegate.db"
    old = sqlite3.connect(path, isolation_level=None)
    before = next(n for n, m in enumerate(MIGRATIONS) if "ADD COLUMN clock_synced" in m)
    for number, statement in enumerate(MIGRATIONS[:before], start=1):
        old.execute(statement)
        old.execute(f"PRAGMA user_version={number}")
    old.execute(
        "INSERT INTO inferences (window_id, started_at, ended_at, started_ts, ended_ts,"
        " duration_s, tokens_estimated, energy_j, outcome, gate_open, boundary)"
        " VALUES ('old', '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:02+00:00',"
        f" {TRUE_START - 400 * DAY}, {TRUE_START - 400 * DAY + 2}, 2, 0, 5, 'ok', 1, 'b')"
    )
    old.close()
    store = Store(path)
    ledger = World(synced=True).ledger(store)
    [row] = list(ledger.rows())
    assert row.clock_synced is None
    assert ledger.prune() == 1
    store.close()


async def test_the_row_json_export_and_api_say_whether_the_clock_was_synchronised(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    opened = await api.post("/api/v1/windows", json={}, headers=auth(agent))
    window_id = (await opened.json())["window_id"]
    ended = await api.post(f"/api/v1/windows/{window_id}/end", headers=auth(agent))
    row = await ended.json()
    assert "clock_synced" in row
    assert row["clock_synced"] is clock_synced(agent.config.root)
    page = await (await api.get("/api/v1/inferences", headers=auth(agent))).json()
    assert page["items"][0]["clock_synced"] == row["clock_synced"]
    lines = io.StringIO()
    export_rows(agent.inference.ledger, lines, "jsonl")
    assert json.loads(lines.getvalue())["clock_synced"] == row["clock_synced"]
    table = io.StringIO()
    export_rows(agent.inference.ledger, table, "csv")
    [exported] = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert exported["clock_synced"] in ("true", "false", "")


def test_a_new_ledger_under_a_clock_two_years_behind_keeps_its_rows_a_full_period(
    store: Store,
) -> None:
    world = World(synced=False, wall=TRUE_START - 730 * DAY)  # booted at the image's date
    ledger = world.ledger(store, retention_days=30)
    for n in range(3):
        ledger.record(world.row(n))
        world.passes(60)
    assert ledger.prune() == 0
    world.synced = True  # NTP corrects the clock: the rows look two years old
    world.wall += 730 * DAY
    assert ledger.prune() == 0
    world.passes(29 * DAY)
    assert ledger.prune() == 0
    world.passes(2 * DAY)
    assert ledger.prune() == 3


def test_a_row_costs_one_probe_of_whether_the_clock_is_synchronised(store: Store) -> None:
    probes: list[None] = []

    def synced() -> bool | None:
        probes.append(None)
        return True

    ledger = Ledger(store, synced=synced)
    probes.clear()
    stamped = ledger.stamp(World().row(0))
    ledger.record(stamped)
    assert len(probes) == 1
    assert stamped.clock_synced is True
