"""One focused test for each agent bug the reliability work found (see README, Reliability).

Others are pinned by the tests that found them: disk full / read-only ledger
(test_storage.py), upstream credentials in a 502 and dot segments in proxied paths
(test_security.py), counters across SIGKILL (test_crash.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from joulegate_agent.agent import BOARD_ENERGY
from joulegate_agent.config import AgentConfig, ConfigError
from joulegate_agent.metering.meter import Meter
from joulegate_agent.metering.sampler import Sampler
from joulegate_agent.metering.sources.base import PowerReading, SourceInfo
from joulegate_agent.metering.sources.rails import Channel
from joulegate_agent.metering.sources.rapl import detect_rapl
from joulegate_agent.metering.sysfs import SysfsRoot
from joulegate_agent.proxy.dialects import MAX_COUNT, Dialect, reader_for
from joulegate_agent.storage.store import Store
from tests.agent import sysfs_trees
from tests.agent.llm_fakes import (
    SHAPES,
    FakeUpstream,
    auth,
    proxy_config,
    rows,
    running_agent,
    upstream_server,
)

CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")
JSON = {"Content-Type": "application/json"}


async def test_board_energy_shown_by_status_is_already_on_disk(tmp_path: Path) -> None:
    """A SIGKILL right after a status read cannot take back the energy it showed: status shows
    what is on disk (and reading it writes nothing, so before the first write that is 0)."""
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        await asyncio.sleep(0.3)
        for n in range(3):
            shown = (await (await client.get("/api/v1/status", headers=auth(agent))).json())[
                "energy"
            ]["board_wh"]
            other = sqlite3.connect(agent.store.path)  # what a restarted agent would read
            found = other.execute(
                "SELECT value FROM counters WHERE name = ?", (BOARD_ENERGY,)
            ).fetchone()
            other.close()
            on_disk = found[0] if found else 0.0
            assert (shown > 0) == (n > 0)
            assert shown == round(on_disk / 3600.0, 6)
            await agent.flush_energy()
            await asyncio.sleep(0.1)


async def test_concurrent_flushes_add_the_energy_once(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, _client):
        await asyncio.sleep(0.3)
        await asyncio.gather(*(agent.flush_energy() for _ in range(8)))
        assert agent.store.counter(BOARD_ENERGY) <= agent.meter.total_j + 1e-9


def test_a_full_disk_raises_its_own_error_and_the_store_recovers(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    with store.lock:
        pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
        store.connection.execute(f"PRAGMA max_page_count={pages}")
    failure = None
    for n in range(10_000):
        try:
            store.add_counter(f"counter-{n}", 1.0)
        except sqlite3.OperationalError as err:
            failure = err
            break
    assert str(failure) == "database or disk is full"  # not "cannot rollback - no transaction"
    assert not store.connection.in_transaction
    with store.lock:
        store.connection.execute("PRAGMA max_page_count=1073741823")
    assert store.add_counter("after", 2.0) == 2.0
    store.close()


async def test_token_counts_beyond_an_integer_column_are_a_400(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        for body, status in [
            ({"output_tokens": 2**63}, 400),
            ({"prompt_tokens": 10**30}, 400),
            ({"output_tokens": MAX_COUNT + 1}, 400),
            ({"output_tokens": 1e30}, 400),
            ({"output_tokens": 7.0}, 200),  # an integer, in JSON Schema's sense
            ({"output_tokens": MAX_COUNT}, 200),
        ]:
            started = await client.post("/api/v1/windows", json={}, headers=auth(agent))
            window = (await started.json())["window_id"]
            ended = await client.post(
                f"/api/v1/windows/{window}/end", data=json.dumps(body), headers=auth(agent) | JSON
            )
            assert ended.status == status, body
            if status == 400:
                assert (await ended.json())["error"] == "invalid_body"


def test_absurd_counts_in_a_response_are_not_counts() -> None:
    for value in (2**63, 10**30, MAX_COUNT + 1, -1, float("nan")):
        done = {"done": True, "eval_count": value, "prompt_eval_count": value}
        reader = reader_for(Dialect.OLLAMA, "application/x-ndjson")
        reader.feed(json.dumps(done).encode() + b"\n")
        counts = reader.finish()
        assert counts.output_tokens == 0  # Ollama: a done object without a usable count is 0
        assert counts.prompt_tokens == 0


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


async def test_json_nested_too_deep_is_a_400_not_a_500(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    async with (
        upstream_server(FakeUpstream(current=CHAT)) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        for path in ("/api/v1/gate", "/api/v1/windows"):
            method = "PUT" if path.endswith("gate") else "POST"
            response = await client.request(method, path, data=deep, headers=auth(agent) | JSON)
            assert response.status == 400
            assert (await response.json())["error"] == "invalid_json"
        proxied = await client.post(CHAT.path, data=deep, headers=auth(agent) | JSON)
        assert proxied.status == 200  # relayed: the upstream judges its own request
        [row] = await rows(agent)
    assert row["model"] == CHAT.model


async def test_ledger_query_is_strict(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        for query in ("after=", "limit=", "afer=5", "after=1&cursor=2"):
            response = await client.get(f"/api/v1/inferences?{query}", headers=auth(agent))
            assert response.status == 400, query
            assert (await response.json())["error"] == "invalid_parameter"
        good = await client.get("/api/v1/inferences?after=0&limit=5", headers=auth(agent))
        assert good.status == 200


def test_sysfs_integers_wider_than_64_bits_are_garbage(tmp_path: Path) -> None:
    values = {"a": "9" * 400, "b": str(2**64), "c": str(-(2**63)), "d": str(2**64 - 1)}
    sysfs = SysfsRoot(tmp_path, reader=lambda path: values[path.name])
    assert [sysfs.read_int(tmp_path / name) for name in "abcd"] == [
        None,
        None,
        -(2**63),
        2**64 - 1,
    ]


def test_volts_times_amps_that_overflow_are_no_reading(tmp_path: Path) -> None:
    values = {"in": "1e300", "curr": "1e300"}
    sysfs = SysfsRoot(tmp_path, reader=lambda path: values[path.name])
    rail = Channel("x", voltage=tmp_path / "in", current=tmp_path / "curr").read(sysfs)
    assert rail.power_w is None


class Readings:
    def __init__(self, readings: list[PowerReading]) -> None:
        self._readings = iter(readings)

    @property
    def info(self) -> SourceInfo:
        return SourceInfo("test", "-", "test", ())

    def read(self) -> PowerReading:
        return next(self._readings)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0, 1e12])
def test_implausible_board_power_is_not_metered(bad: float, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    meter = Meter(clock=lambda: 0.0)
    ticks = iter([0.1, 0.2, 0.3, 0.4])
    source = Readings([PowerReading(5.0), PowerReading(bad), PowerReading(5.0), PowerReading(5.0)])
    sampler = Sampler(source, meter, clock=lambda: next(ticks))
    sampler.sample_once()
    sampler.sample_once()
    assert sampler.latest is not None
    assert sampler.latest.board_w is None  # not shown as the board's power either
    sampler.sample_once()
    sampler.sample_once()
    assert math.isclose(meter.total_j, 0.5)  # only the last segment, 5 W for 0.1 s
    assert "unavailable" in caplog.text


def test_an_energy_counter_that_runs_back_is_not_integrated() -> None:
    meter = Meter(clock=lambda: 0.0)
    ticks = iter([1.0, 2.0, 3.0])
    source = Readings(
        [
            PowerReading(5.0, energy_j=100.0),
            PowerReading(5.0, energy_j=50.0),  # reset or garbage: the watts are used instead
            PowerReading(5.0, energy_j=55.0),
        ]
    )
    sampler = Sampler(source, meter, clock=lambda: next(ticks))
    for _ in range(3):
        sampler.sample_once()
    assert math.isclose(meter.total_j, 10.0)


def test_rapl_ignores_a_counter_value_outside_its_range(tmp_path: Path) -> None:
    sysfs_trees.rapl(tmp_path, 1_000_000)
    script: list[str] = []  # what energy_uj reads after detection (which reads it to time its step)

    def reader(path: Path) -> str:
        if path.name == "energy_uj":
            return script.pop(0) if script else "1000000"
        return path.read_text()

    ticks = itertools.count(1.0)
    source = detect_rapl(
        SysfsRoot(tmp_path, reader=reader), clock=lambda: next(ticks), sleep=lambda _s: None
    )
    script += ["-5", str(sysfs_trees.RAPL_MAX_UJ + 1), "2000000"]
    energies = [source.read().energy_j for _ in range(3)]
    assert energies == [None, None, 1.0]  # 1 J counted, not a wrap of 262 kJ


def test_upstream_credentials_in_the_url_and_as_a_key_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        AgentConfig(upstream="http://u:p@127.0.0.1:8080", upstream_api_key="k")
    AgentConfig(upstream="http://u:p@127.0.0.1:8080")
    AgentConfig(upstream="http://127.0.0.1:8080", upstream_api_key="k")
    with pytest.raises(ConfigError, match="not a valid URL"):
        AgentConfig(upstream="http://[::1")


async def test_rows_finishing_together_are_committed_together(tmp_path: Path) -> None:
    """One transaction per row fell behind under load (the backlog grew without bound): rows
    that finish together are now written in groups, in order, each published once."""
    async with running_agent(proxy_config(tmp_path, None)) as (agent, _client):
        service = agent.inference
        calls: list[int] = []
        record_many = service.ledger.record_many

        def counting(rows_: list[Any], *more: Any) -> list[Any]:
            calls.append(len(rows_))
            return record_many(rows_, *more)

        service.ledger.record_many = counting  # type: ignore[method-assign,assignment]
        subscription = service.events.subscribe()
        windows = [service.open_explicit(label=f"w{n}") for n in range(100)]
        await asyncio.sleep(0.15)
        ended = await asyncio.gather(*(service.end_explicit(w.window_id) for w in windows))
        published = []
        while not subscription.queue.empty():
            item = subscription.queue.get_nowait()
            if item is not None and item[0] == "inference":
                published.append(item[1]["id"])
        subscription.close()
    ids = [row.id for row in ended if row.id is not None]
    assert sum(calls) == 100
    assert len(calls) < 20
    assert published == sorted(published) == sorted(ids)


async def test_a_bad_row_in_a_group_loses_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, _client):
        service = agent.inference
        record_many = service.ledger.record_many

        def picky(rows_: list[Any], *more: Any) -> list[Any]:
            if any(row.label == "bad" for row in rows_):
                raise sqlite3.IntegrityError("simulated failure of one row")
            return record_many(rows_, *more)

        service.ledger.record_many = picky  # type: ignore[method-assign,assignment]
        windows = [service.open_explicit(label="bad" if n == 3 else "ok") for n in range(10)]
        await asyncio.sleep(0.15)
        results = await asyncio.gather(
            *(service.end_explicit(w.window_id) for w in windows), return_exceptions=True
        )
        recorded = await rows(agent)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert [r["label"] for r in recorded] == ["ok"] * 9
    assert caplog.text.count("its row is lost") == 1
