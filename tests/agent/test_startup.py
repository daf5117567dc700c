"""Start-up with a damaged data directory: one line that names the file and what to do, and an
exit status (78, EX_CONFIG) that the shipped systemd unit does not restart on; a ledger that was
reset gets a new identity its clients can see."""

from __future__ import annotations

import configparser
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from demo.procs import free_port, simulated_agent_argv
from joulegate_agent.agent import Agent
from joulegate_agent.config import AgentConfig
from joulegate_agent.errors import UnusableDataError
from joulegate_agent.storage.store import Store
from tests.agent.helpers import auth, proxy_config, running_agent
from tests.agent.tmpfs import tmpfs

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "examples" / "joulegate-agent.service"
EX_CONFIG = 78
START_TIMEOUT_S = 30


def serve(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`joulegate-agent serve` as a real process; it must exit by itself."""
    env = {k: v for k, v in os.environ.items() if k != "JOULEGATE_TOKEN"}
    return subprocess.run(
        simulated_agent_argv(free_port(), data_dir, None),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        env=env,
        check=False,
    )


def the_one_line(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def data_dir_holding(tmp_path: Path, name: str, content: bytes) -> Path:
    """A data directory whose only file is `name`, holding `content`."""
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_bytes(content)
    return data


def stopped_naming(result: subprocess.CompletedProcess[str], path: Path) -> str:
    """The one line of an agent that stopped with EX_CONFIG (not restarted) on `path`."""
    assert result.returncode == EX_CONFIG
    line = the_one_line(result)
    assert str(path) in line
    return line


def test_a_corrupt_ledger_stops_the_agent_with_one_line(tmp_path: Path) -> None:
    data = data_dir_holding(tmp_path, "joulegate.db", b"not a database, just bytes\n" * 200)
    result = serve(data)
    line = stopped_naming(result, data / "joulegate.db")
    assert "not a SQLite database" in line
    assert "move it aside" in line


def test_an_empty_ledger_stops_the_agent_instead_of_starting_over_at_zero(tmp_path: Path) -> None:
    data = data_dir_holding(tmp_path, "joulegate.db", b"")
    result = serve(data)
    line = stopped_naming(result, data / "joulegate.db")
    assert "empty" in line
    assert (data / "joulegate.db").stat().st_size == 0  # left for the user to look at


def test_a_read_only_ledger_stops_the_agent_with_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "size=4m") as filesystem:
        data = filesystem / "data"
        data.mkdir()
        (data / "token").write_text("a-token-of-the-agent\n")
        (data / "token").chmod(0o600)  # one others can read is refused before the ledger
        (data / "device_id").write_text("0123456789abcdef\n")
        Store(data / "joulegate.db").close()
        subprocess.run(["mount", "-o", "remount,ro", str(filesystem)], check=True)
        result = serve(data)
    line = stopped_naming(result, data / "joulegate.db")
    assert "read-only" in line


def test_a_token_file_that_is_not_utf8_stops_the_agent_with_one_line(tmp_path: Path) -> None:
    data = data_dir_holding(tmp_path, "token", b"\xff\xfe\xfa garbage")
    result = serve(data)
    line = stopped_naming(result, data / "token")
    assert "token --rotate" in line


def test_a_device_id_file_that_is_not_utf8_stops_the_agent_with_one_line(tmp_path: Path) -> None:
    data = data_dir_holding(tmp_path, "device_id", b"\xff\xfe\xfa garbage")
    result = serve(data)
    line = stopped_naming(result, data / "device_id")
    assert "Home Assistant" in line


def test_the_shipped_unit_does_not_restart_an_agent_that_cannot_start() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    assert str(EX_CONFIG) in unit["Service"]["RestartPreventExitStatus"].split()


def ledger_id_in(database: Path) -> str:
    connection = sqlite3.connect(database)
    try:
        value: str = connection.execute(
            "SELECT value FROM meta WHERE key = 'ledger_id'"
        ).fetchone()[0]
    finally:
        connection.close()
    return value


def test_a_ledger_keeps_its_id_across_restarts_and_a_new_ledger_gets_a_new_one(
    tmp_path: Path,
) -> None:
    first = Store(tmp_path / "joulegate.db")
    ledger_id = first.ledger_id
    first.close()
    again = Store(tmp_path / "joulegate.db")
    assert again.ledger_id == ledger_id == ledger_id_in(tmp_path / "joulegate.db")
    again.close()
    (tmp_path / "joulegate.db").unlink()
    fresh = Store(tmp_path / "joulegate.db")
    assert fresh.ledger_id != ledger_id
    assert len(fresh.ledger_id) == 32
    fresh.close()


def test_a_ledger_from_before_ledger_ids_gets_one_on_upgrade(tmp_path: Path) -> None:
    from joulegate_agent.storage import store as store_module

    path = tmp_path / "joulegate.db"
    old = sqlite3.connect(path, isolation_level=None)
    migrations = store_module.MIGRATIONS
    before = migrations.index("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for number, statement in enumerate(migrations[:before], start=1):
        old.execute(statement)
        old.execute(f"PRAGMA user_version={number}")
    old.execute("INSERT INTO counters (name, value) VALUES ('inferences', 300)")
    old.close()
    upgraded = Store(path)
    assert upgraded.counter("inferences") == 300
    assert len(upgraded.ledger_id) == 32
    upgraded.close()


async def test_info_and_every_ledger_page_name_the_ledger(
    tmp_path: Path, agent_config: AgentConfig
) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        info = await get_json(client, agent, "/api/v1/info")
        page = await get_json(client, agent, "/api/v1/inferences")
        empty_page = await get_json(client, agent, "/api/v1/inferences?after=5000")
    assert info["ledger_id"] == page["ledger_id"] == empty_page["ledger_id"] == agent.ledger_id
    assert {"ledger_id", "storage_health", "clock_synced"} <= set(info["features"])


async def get_json(client: TestClient[Any, Any], agent: Agent, path: str) -> Any:
    response = await client.get(path, headers=auth(agent))
    assert response.status == 200
    return await response.json()


def test_a_new_ledger_that_cannot_be_synced_to_disk_stops_the_agent_with_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk can refuse the fsync after SQLite itself succeeded (an OSError, not a
    sqlite3.Error): it must still be the one-line error, not a traceback the unit restarts."""

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    database = tmp_path / "joulegate.db"
    with pytest.raises(UnusableDataError) as refused:
        Store(database)
    assert str(database) in str(refused.value)
    assert "No space left on device" in str(refused.value)
    assert not database.exists()
